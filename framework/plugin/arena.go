package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"unsafe"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/tensor"
)

// The host side of the shared-memory arena: which region a call writes into,
// which regions a reply may use, and when a region is reused, pinned under a
// handle or retired (see "Transports and shared memory" in doc.go).

// take returns a free region with room for need request bytes plus the reply
// this method usually sends, creating one if none fits.
func (c *Client) take(method string, need int) (*region, *proto.Arena, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return nil, nil, fmt.Errorf("%s cannot run %s: %w", c.who, method, c.dead)
	}
	c.dropStaleLinksLocked()
	c.needEst[method] = max(c.needEst[method], need)
	want := need + c.replyEst[method]
	var best *region
	var free []*region
	for _, r := range c.regions {
		if !r.free() {
			continue
		}
		if r.noReuse {
			c.retireLocked(r)
			continue
		}
		free = append(free, r)
		if len(r.mem) >= want && (best == nil || len(r.mem) < len(best.mem)) {
			best = r
		}
	}
	if best == nil {
		r, err := c.newRegionLocked(want, free)
		if err != nil {
			return nil, nil, err
		}
		best = r
	}
	best.inUse = true
	a := &proto.Arena{Regions: []*proto.Region{{Name: best.name, Size: uint64(len(best.mem))}}, Retire: c.retire, ReplyRegion: best.name}
	c.retire = nil
	return best, a, nil
}

// newRegionLocked creates a free region with room for want bytes and keeps
// fewer than maxFreeRegion of the other free regions mapped (the smallest go).
func (c *Client) newRegionLocked(want int, free []*region) (*region, error) {
	size := max(minRegionSize, (want+want/4+minRegionSize-1)/minRegionSize*minRegionSize)
	c.next++
	r, err := createRegion(c.dir, fmt.Sprintf("h-%d", c.next), size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.who, err)
	}
	r.owner = c
	c.regions[r.name] = r
	sort.Slice(free, func(i, j int) bool { return len(free[i].mem) < len(free[j].mem) })
	for len(free) >= maxFreeRegion {
		c.retireLocked(free[0])
		free = free[1:]
	}
	return r, nil
}

// growLocked runs when a method's reply outgrew its estimate: the next call
// would find no free region for request and reply together and create one
// then, inside the caller's second batch (measured: the seed's second
// 4096-token forward pass took 0.34–0.40 s against 0.21–0.25 s later, all
// four stages slower). It creates that region now, while the first call is
// ending, and touches its pages so that their first use does not fault.
func (c *Client) growLocked(method string) {
	if c.closed || c.dir == "" {
		return
	}
	want := c.needEst[method] + c.replyEst[method]
	var free []*region
	for _, r := range c.regions {
		if r.free() && !r.noReuse {
			if len(r.mem) >= want {
				return
			}
			free = append(free, r)
		}
	}
	r, err := c.newRegionLocked(want, free)
	if err != nil {
		return // take will try again, and report
	}
	for i := 0; i < len(r.mem); i += os.Getpagesize() {
		r.mem[i] = 0
	}
}

func (c *Client) retireLocked(r *region) {
	r.gone = true
	r.unmap()
	delete(c.regions, r.name)
	_ = os.Remove(filepath.Join(c.dir, r.name))
	c.retire = append(c.retire, r.name)
}

// lookup finds a region a reply refers to; replies may only use the call's own
// region or the regions the plugin created for it (adopt marks them in use).
func (c *Client) lookup(own *region, adopted []*region) func(string) *region {
	return func(name string) *region {
		if own != nil && own.name == name {
			return own
		}
		for _, r := range adopted {
			if r.name == name {
				return r
			}
		}
		return nil
	}
}

// adopt maps the regions the plugin created for a reply.
func (c *Client) adopt(rs []*proto.Region) ([]*region, error) {
	var out []*region
	for _, rg := range rs {
		r, err := openRegion(c.dir, rg.GetName(), rg.GetSize())
		if err != nil {
			for _, r := range out {
				r.unmap()
			}
			return nil, err
		}
		r.inUse = true
		r.owner = c
		out = append(out, r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range out {
		if old, dup := c.regions[r.name]; dup {
			old.unmap()
		}
		c.regions[r.name] = r
	}
	return out, nil
}

// finish ends a call's use of its regions. done says the plugin finished the
// call (so it no longer touches the region); a non-zero handle pins the
// request region, and the regions of other calls its inputs alias (borrowed),
// until Backward or Release of that handle. lend (a Forward that succeeded,
// with Options.LendOutputs) lends the regions holding the reply to the caller
// and ends the lend of the same method's previous reply.
func (c *Client) finish(method string, own *region, adopted []*region, done bool, handle uint64, replyBytes int, borrowed []*region, lend bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if replyBytes > c.replyEst[method] {
		c.replyEst[method] = replyBytes
		defer c.growLocked(method) // after this call's regions are free again
	}
	if handle != 0 && done && !c.closed {
		c.borrowPins[handle] = append(c.borrowPins[handle], borrowed...)
	} else {
		releaseBorrowsLocked(borrowed, done)
	}
	for _, r := range append(adopted, own) {
		if r == nil {
			continue
		}
		r.inUse = false
		switch {
		case c.closed:
			// Closed while the call ran. Its reply, when lent, is views
			// into these regions that the caller is about to read: they
			// stay mapped (the pages go when the process ends; Close has
			// removed the files), a rare, bounded leak instead of a read of
			// unmapped memory.
			r.gone = true
			if !(lend && done) {
				r.unmap()
			}
			delete(c.regions, r.name)
		case !done:
			// The plugin may still be writing into it: never reuse it.
			c.retireLocked(r)
		case r == own && handle != 0:
			r.handle = handle
			c.pins[handle] = r
		}
	}
	if !lend || !done || c.closed || c.dir == "" {
		return
	}
	for _, r := range c.lent[method] {
		r.lent = false
		delete(lentRegions, r)
	}
	if c.lent == nil {
		c.lent = map[string][]*region{}
	}
	c.lent[method] = nil
	for _, r := range append(adopted, own) {
		if r != nil && r.mem != nil {
			r.lent = true
			lentRegions[r] = struct{}{}
			c.lent[method] = append(c.lent[method], r)
		}
	}
}

// unpin frees the region a handle kept, and the borrowed ones; done as in finish.
func (c *Client) unpin(handle uint64, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rs, ok := c.borrowPins[handle]; ok {
		delete(c.borrowPins, handle)
		releaseBorrowsLocked(rs, done)
	}
	r, ok := c.pins[handle]
	if !ok {
		return
	}
	delete(c.pins, handle)
	r.handle = 0
	if c.closed {
		r.gone = true
		r.unmap()
		delete(c.regions, r.name)
	} else if !done {
		c.retireLocked(r)
	}
}

// pendingRetire hands the retire list to a call without tensors.
func (c *Client) pendingRetire() *proto.Arena {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == "" || len(c.retire) == 0 {
		return nil
	}
	a := &proto.Arena{Retire: c.retire}
	c.retire = nil
	return a
}

// Zero-copy hand-off. With Options.LendOutputs a Forward's outputs (its
// state is copied out) stay in the regions the plugin wrote them to, lent to
// the caller until the Client's next Forward returns, and a Backward's
// gradients until its next Backward returns. When the caller passes such a tensor as an input or
// state to a Client (the same one, or another of this process), it is sent as
// a descriptor into that region: a region of the Client itself by its name,
// one of another Client through a hard link in this Client's session
// directory (same tmpfs pages, made once per region and reused). The region
// is pinned (borrows) for the call, and under the handle the call returns,
// so the plugin may keep the input as it may keep any other; its owner reuses
// it only once no lend, call or handle uses it. A link whose region its owner
// retired is removed at this Client's next call and retired in its plugin.

// lentRegions holds every region whose outputs are lent, across Clients
// (guarded by hostMu).
var lentRegions = map[*region]struct{}{}

// handoffStats counts what the zero-copy hand-off saved (guarded by hostMu).
type handoffStats struct {
	tensors int   // inputs sent as descriptors into lent regions
	bytes   int64 // their size
	links   int   // hard links made into this Client's directory
}

// handoff is where an input that already lies in shared memory is, as this
// Client's plugin names it.
type handoff struct {
	name string
	off  uint64
}

// free reports whether nothing uses r: no call, handle, lend or borrow.
func (r *region) free() bool {
	return !r.inUse && r.handle == 0 && !r.lent && r.borrows == 0
}

// lentAt returns the lent region that holds the n bytes at p, or nil.
func lentAt(p, n uintptr) *region {
	for r := range lentRegions {
		if r.mem == nil {
			continue
		}
		base := uintptr(unsafe.Pointer(&r.mem[0]))
		if p >= base && p-base <= uintptr(len(r.mem)) && n <= uintptr(len(r.mem))-(p-base) {
			return r
		}
	}
	return nil
}

// borrowInputs finds the tensors of ms (a request's inputs and state) that
// lie in lent regions, pins those regions and returns where each tensor is
// (by its first element), the pinned regions, their declarations for the
// request's arena, and the region space the tensors no longer need.
func (c *Client) borrowInputs(ms ...tensor.Map) (map[*float32]handoff, []*region, []*proto.Region, int) {
	if c.dir == "" {
		return nil, nil, nil, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(lentRegions) == 0 || c.dead != nil {
		return nil, nil, nil, 0
	}
	var (
		out    map[*float32]handoff
		pinned []*region
		decl   []*proto.Region
		saved  int
	)
	for _, m := range ms {
		for _, name := range m.Names() {
			t := m[name]
			if t == nil || len(t.Data) == 0 {
				continue
			}
			p, n := uintptr(unsafe.Pointer(&t.Data[0])), uintptr(len(t.Data))*4
			src := lentAt(p, n)
			if src == nil {
				continue
			}
			rname := src.name
			if src.owner != c {
				var ok bool
				if rname, ok = c.links[src]; !ok {
					if rname = c.linkLocked(src); rname == "" {
						continue // the input is copied as before
					}
				}
			}
			if _, dup := out[&t.Data[0]]; !dup {
				saved += alignUp(len(t.Data) * 4)
			}
			if out == nil {
				out = map[*float32]handoff{}
			}
			out[&t.Data[0]] = handoff{name: rname, off: uint64(p - uintptr(unsafe.Pointer(&src.mem[0])))}
			c.handoff.tensors++
			c.handoff.bytes += int64(n)
			if !slices.Contains(pinned, src) {
				src.borrows++
				pinned = append(pinned, src)
				decl = append(decl, &proto.Region{Name: rname, Size: uint64(len(src.mem))})
			}
		}
	}
	return out, pinned, decl, saved
}

// linkLocked hard-links a region of another Client into c's directory and
// returns the link's name, or "" when it cannot (the input is then copied).
func (c *Client) linkLocked(src *region) string {
	if src.owner == nil || src.owner.dir == "" || src.gone {
		return ""
	}
	c.next++
	name := fmt.Sprintf("h-%d", c.next)
	if err := os.Link(filepath.Join(src.owner.dir, src.name), filepath.Join(c.dir, name)); err != nil {
		return ""
	}
	c.links[src] = name
	c.handoff.links++
	return name
}

// dropStaleLinksLocked removes the links to regions their owner retired or
// closed, once no handle of c pins them, and retires them in c's plugin.
func (c *Client) dropStaleLinksLocked() {
	for src, name := range c.links {
		if !src.gone || src.borrows > 0 {
			continue
		}
		_ = os.Remove(filepath.Join(c.dir, name))
		c.retire = append(c.retire, name)
		delete(c.links, src)
	}
}

// releaseBorrowsLocked drops one borrow of each region; !done marks them
// never to be reused (the plugin may still read them).
func releaseBorrowsLocked(rs []*region, done bool) {
	for _, r := range rs {
		r.borrows--
		if !done {
			r.noReuse = true
		}
	}
}

// releaseBorrows is releaseBorrowsLocked for a call that never reached the plugin.
func (c *Client) releaseBorrows(rs []*region) {
	c.mu.Lock()
	defer c.mu.Unlock()
	releaseBorrowsLocked(rs, true)
}
