package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"unsafe"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/tensor"
)

// Shared memory. A session directory (one per Client) holds the region files;
// the host creates it, creates the regions requests are written into ("h-N"),
// and removes the whole directory on Close. The plugin maps what requests name
// and creates a region ("p-N") only when a reply does not fit in the region the
// host offered; the host then adopts that region into its pool.

const (
	align         = 64      // byte alignment of every tensor in a region
	minRegionSize = 1 << 20 // smallest region the host creates
	maxFreeRegion = 4       // free regions the host keeps mapped for reuse
	maxTensorSize = 1 << 40 // bytes; anything larger is a corrupt descriptor
)

var regionName = regexp.MustCompile(`^[hp]-[0-9]+$`)

// shmBase is where session directories go: /dev/shm, or the temp dir where
// /dev/shm does not exist.
func shmBase() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return os.TempDir()
}

// region is one mapped file.
type region struct {
	name string
	mem  []byte

	// host side (guarded by hostMu)
	owner   *Client
	handle  uint64 // pinned under this forward handle when != 0
	inUse   bool   // a call is using it
	lent    bool   // holds outputs lent to the caller (Options.LendOutputs)
	borrows int    // calls and handles whose inputs alias it
	noReuse bool   // a plugin may still read it: retire, never reuse, once free
	gone    bool   // retired or closed: links to it are stale

	// plugin side
	refs    int  // calls using it
	retired bool // unmap when refs drops to 0
}

func createRegion(dir, name string, size int) (*region, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create shared-memory region: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("size shared-memory region %s to %d bytes: %w", path, size, err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("map shared-memory region %s (%d bytes): %w", path, size, err)
	}
	return &region{name: name, mem: mem}, nil
}

func openRegion(dir, name string, size uint64) (*region, error) {
	if !regionName.MatchString(name) {
		return nil, fmt.Errorf("invalid shared-memory region name %q", name)
	}
	if size == 0 || size > maxTensorSize {
		return nil, fmt.Errorf("shared-memory region %s has invalid size %d", name, size)
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open shared-memory region: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat shared-memory region: %w", err)
	}
	if uint64(fi.Size()) < size {
		return nil, fmt.Errorf("shared-memory region %s has %d bytes, the descriptor says %d", path, fi.Size(), size)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map shared-memory region %s: %w", path, err)
	}
	return &region{name: name, mem: mem}, nil
}

func (r *region) unmap() {
	if r.mem != nil {
		_ = syscall.Munmap(r.mem)
		r.mem = nil
	}
}

func alignUp(n int) int { return (n + align - 1) &^ (align - 1) }

// floats views b (aligned, length a multiple of 4) as float32s.
func floats(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// rawBytes views f as bytes, without copying.
func rawBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), len(f)*4)
}

// mapBytes is the region space a map needs.
func mapBytes(m tensor.Map) int {
	n := 0
	for _, t := range m {
		if t != nil {
			n += alignUp(4 * len(t.Data))
		}
	}
	return n
}

// regionTable is the plugin's view of a session's regions.
type regionTable struct {
	mu   sync.Mutex
	dir  string
	m    map[string]*region
	next int
}

func newRegionTable(dir string) *regionTable {
	return &regionTable{dir: dir, m: map[string]*region{}}
}

// acquire maps the arena's regions (new ones), applies its retire list and
// takes a reference on every region the call will touch.
func (t *regionTable) acquire(a *proto.Arena) (*callRegions, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, name := range a.GetRetire() {
		if r, ok := t.m[name]; ok {
			r.retired = true
			if r.refs == 0 {
				r.unmap()
				delete(t.m, name)
			}
		}
	}
	c := &callRegions{t: t, m: map[string]*region{}}
	use := func(name string, size uint64) error {
		if _, ok := c.m[name]; ok {
			return nil
		}
		r, ok := t.m[name]
		if !ok {
			if size == 0 {
				return fmt.Errorf("the request uses shared-memory region %q without declaring it", name)
			}
			var err error
			if r, err = openRegion(t.dir, name, size); err != nil {
				return err
			}
			t.m[name] = r
		} else if size != 0 && uint64(len(r.mem)) != size {
			return fmt.Errorf("shared-memory region %s is %d bytes, the request says %d", name, len(r.mem), size)
		}
		r.refs++
		c.m[name] = r
		return nil
	}
	for _, rg := range a.GetRegions() {
		if err := use(rg.GetName(), rg.GetSize()); err != nil {
			c.releaseLocked()
			return nil, err
		}
	}
	if a.GetReplyRegion() != "" {
		if err := use(a.GetReplyRegion(), 0); err != nil {
			c.releaseLocked()
			return nil, err
		}
	}
	return c, nil
}

// create makes a plugin-owned region of at least size bytes, referenced by c.
func (t *regionTable) create(c *callRegions, size int) (*region, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	r, err := createRegion(t.dir, fmt.Sprintf("p-%d", t.next), size)
	if err != nil {
		return nil, err
	}
	r.refs++
	t.m[r.name] = r
	c.m[r.name] = r
	return r, nil
}

// unmapAll drops every mapping (the server is exiting).
func (t *regionTable) unmapAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, r := range t.m {
		if r.refs == 0 {
			r.unmap()
			delete(t.m, name)
		}
	}
}

// drop retires a region the plugin made for a reply that was not sent: its
// file goes now, its mapping once no call uses it.
func (t *regionTable) drop(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.m[name]; ok {
		r.retired = true
		os.Remove(filepath.Join(t.dir, name))
	}
}

// callRegions are the regions one call holds references on.
type callRegions struct {
	t *regionTable
	m map[string]*region
}

func (c *callRegions) release() {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	c.releaseLocked()
}

func (c *callRegions) releaseLocked() {
	for name, r := range c.m {
		r.refs--
		if r.refs == 0 && r.retired {
			r.unmap()
			delete(c.t.m, name)
		}
	}
	c.m = nil
}

// view returns the floats a descriptor points at, checked against the region.
func view(r *region, off uint64, n int) ([]float32, error) {
	if r == nil || r.mem == nil {
		return nil, fmt.Errorf("shared-memory region is not mapped")
	}
	size := uint64(n) * 4
	if off%4 != 0 || off > uint64(len(r.mem)) || size > uint64(len(r.mem))-off {
		return nil, fmt.Errorf("descriptor [%d, +%d bytes) lies outside region %s (%d bytes)", off, size, r.name, len(r.mem))
	}
	return floats(r.mem[off : off+size]), nil
}
