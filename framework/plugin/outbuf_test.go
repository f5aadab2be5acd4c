package plugin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// TestOutputBufInReply: stage.OutputBuf in a plugin call places the vector in
// the reply region after the request (zeroed, though the region held other
// values), the reply names it where it lies instead of copying it, tensors
// the stage made itself are copied after it, a vector that does not fit goes
// to a new region the reply declares, and regions made for a reply that is
// not sent are removed.
func TestOutputBufInReply(t *testing.T) {
	dir := t.TempDir()
	tab := newRegionTable(dir)
	host, err := createRegion(dir, "h-1", minRegionSize)
	if err != nil {
		t.Fatal(err)
	}
	defer host.unmap()
	for i := range host.mem {
		host.mem[i] = 0xff
	}
	newCall := func() *call {
		regs, err := tab.acquire(&proto.Arena{Regions: []*proto.Region{{Name: "h-1", Size: uint64(len(host.mem))}}, ReplyRegion: "h-1"})
		if err != nil {
			t.Fatal(err)
		}
		return &call{regs: regs, w: &shmWriter{r: regs.m["h-1"], off: 4096}}
	}
	c := newCall()
	ctx := stage.WithOutputs(context.Background(), c.alloc)
	y := stage.OutputBuf(ctx, 1000)
	for i, v := range y {
		if v != 0 {
			t.Fatalf("OutputBuf's [%d] = %v, want 0", i, v)
		}
		y[i] = float32(i)
	}
	own := tensor.From([]float32{7, 8, 9}, 3)
	if err := c.reserve(tensor.Map{"y": tensor.From(y, 1000), "own": own}); err != nil {
		t.Fatal(err)
	}
	ps, err := c.encode("output", tensor.Map{"y": tensor.From(y, 1000), "own": own})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*proto.Tensor{}
	for _, p := range ps {
		byName[p.GetName()] = p
	}
	if p := byName["y"]; p.GetRegion() != "h-1" || p.GetOffset() != 4096 {
		t.Errorf("y sent at %s+%d, want where OutputBuf put it, h-1+4096", p.GetRegion(), p.GetOffset())
	}
	if p := byName["own"]; p.GetRegion() != "h-1" || p.GetOffset() != 4096+uint64(alignUp(4000)) {
		t.Errorf("own sent at %s+%d, want right after y", p.GetRegion(), p.GetOffset())
	}
	got, err := view(host, 4096, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != float32(i) {
			t.Fatalf("the host reads y[%d] = %v, want %d", i, v, i)
		}
	}
	// too large for the offered region: a region of the plugin's
	big := stage.OutputBuf(ctx, minRegionSize/4)
	if len(c.new) != 1 || c.out[&big[0]].name != c.new[0].GetName() {
		t.Fatalf("a vector larger than the offered region: new regions %v", c.new)
	}
	c.sent = true
	c.end()
	if _, err := os.Stat(filepath.Join(dir, c.new[0].GetName())); err != nil {
		t.Errorf("the region of a sent reply is gone: %v", err)
	}
	// not sent (the stage failed after OutputBuf): its new region is removed
	c2 := newCall()
	stage.OutputBuf(stage.WithOutputs(context.Background(), c2.alloc), minRegionSize/4)
	if len(c2.new) != 1 {
		t.Fatalf("new regions %v, want 1", c2.new)
	}
	c2.end()
	if _, err := os.Stat(filepath.Join(dir, c2.new[0].GetName())); !os.IsNotExist(err) {
		t.Errorf("a region made for an unsent reply is still there (%v)", err)
	}
	tab.mu.Lock()
	_, mapped := tab.m[c2.new[0].GetName()]
	tab.mu.Unlock()
	if mapped {
		t.Error("a region made for an unsent reply is still mapped")
	}
	// in process: a slice of its own
	if v := stage.OutputBuf(context.Background(), 5); len(v) != 5 || cap(v) != 5 {
		t.Errorf("OutputBuf without a plugin call: len %d cap %d", len(v), cap(v))
	}
}
