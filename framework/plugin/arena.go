package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"liquidlab/framework/plugin/proto"
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
	want := need + c.replyEst[method]
	var best *region
	var free []*region
	for _, r := range c.regions {
		if r.inUse || r.handle != 0 {
			continue
		}
		free = append(free, r)
		if len(r.mem) >= want && (best == nil || len(r.mem) < len(best.mem)) {
			best = r
		}
	}
	if best == nil {
		size := max(minRegionSize, (want+want/4+minRegionSize-1)/minRegionSize*minRegionSize)
		c.next++
		r, err := createRegion(c.dir, fmt.Sprintf("h-%d", c.next), size)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.who, err)
		}
		c.regions[r.name] = r
		best = r
		// Keep a few free regions mapped for reuse; retire the smallest.
		sort.Slice(free, func(i, j int) bool { return len(free[i].mem) < len(free[j].mem) })
		for len(free) >= maxFreeRegion {
			c.retireLocked(free[0])
			free = free[1:]
		}
	}
	best.inUse = true
	a := &proto.Arena{Regions: []*proto.Region{{Name: best.name, Size: uint64(len(best.mem))}}, Retire: c.retire, ReplyRegion: best.name}
	c.retire = nil
	return best, a, nil
}

func (c *Client) retireLocked(r *region) {
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
// request region until Backward or Release of that handle.
func (c *Client) finish(method string, own *region, adopted []*region, done bool, handle uint64, replyBytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if replyBytes > c.replyEst[method] {
		c.replyEst[method] = replyBytes
	}
	for _, r := range append(adopted, own) {
		if r == nil {
			continue
		}
		r.inUse = false
		switch {
		case c.closed:
			r.unmap()
			delete(c.regions, r.name)
		case !done:
			// The plugin may still be writing into it: never reuse it.
			c.retireLocked(r)
		case r == own && handle != 0:
			r.handle = handle
			c.pins[handle] = r
		}
	}
}

// unpin frees the region a handle kept; done as in finish.
func (c *Client) unpin(handle uint64, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.pins[handle]
	if !ok {
		return
	}
	delete(c.pins, handle)
	r.handle = 0
	if c.closed {
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
