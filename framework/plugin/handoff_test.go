package plugin

import (
	"context"
	"math/rand"
	"reflect"
	"testing"
	"unsafe"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// TestZeroCopyHandoff chains two plugins with LendOutputs, as the model
// chains its stages: A's output goes to B without a copy (through a hard link
// into B's session), A's output goes back into A by its region's name, state
// is copied, the results are those of copying, and a region pinned under B's
// handle is not reused by A however often A runs.
func TestZeroCopyHandoff(t *testing.T) {
	ctx, cfg, a, b := lendingPair(t)
	r := rand.New(rand.NewSource(3))
	w := tensor.Map{"w": tensor.From([]float32{2, 0, 0, 0}, 2, 2)}
	x := randTensor(r, 64, 1024) // 256 KiB
	in := x.Clone()

	fa, err := a.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": x}})
	if err != nil {
		t.Fatal(err)
	}
	ya := fa.Outputs["y"]
	src := lentBy(t, a, ya, "A's output")
	yaCopy := ya.Clone()

	fb, err := b.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": ya}, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.handoff.tensors != 1 || b.handoff.links != 1 {
		t.Fatalf("B: %d inputs handed off through %d links, want 1 and 1", b.handoff.tensors, b.handoff.links)
	}
	for i, v := range fb.Outputs["y"].Data {
		if want := 4 * in.Data[i]; v != want {
			t.Fatalf("B's y[%d] = %v, want %v", i, v, want)
		}
	}
	// A runs on: its first region stays pinned by B's handle (B's plugin keeps
	// its input, which is that region), so it must not be overwritten.
	state, y := fa.State, randTensor(r, 64, 1024)
	want0 := y.Clone()
	for i := 0; i < 3; i++ {
		f, err := a.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": y}, State: state})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.State["n"].Data[0]; got != float32(i+2) {
			t.Fatalf("A's counter after %d calls = %v", i+2, got)
		}
		hostMu.Lock()
		if lentAt(uintptrOf(f.State["n"].Data), 4) != nil {
			t.Error("A's state was lent, not copied")
		}
		hostMu.Unlock()
		state, y = f.State, f.Outputs["y"]
	}
	for i, v := range y.Data {
		if want := 8 * want0.Data[i]; v != want {
			t.Fatalf("A∘A∘A: y[%d] = %v, want %v", i, v, want)
		}
	}
	if a.handoff.tensors != 2 || a.handoff.links != 0 {
		t.Errorf("A: %d outputs handed back to A, %d links; want 2 and 0", a.handoff.tensors, a.handoff.links)
	}
	if !reflect.DeepEqual(ya, yaCopy) {
		t.Fatal("a region pinned under B's handle was reused by A")
	}
	g := randTensor(r, 64, 1024)
	bb, err := b.Backward(ctx, fb.Handle, tensor.Map{"y": g})
	if err != nil {
		t.Fatal(err)
	}
	want := float32(0)
	for i := range g.Data {
		want += g.Data[i] * yaCopy.Data[i]
	}
	if got := bb.ParamGrads["w"].Data[0]; got != want {
		t.Errorf("B's dw[0] = %v, want %v (its saved input was overwritten?)", got, want)
	}
	hostMu.Lock()
	borrows := src.borrows
	hostMu.Unlock()
	if borrows != 0 {
		t.Errorf("A's region still has %d borrows after B's backward", borrows)
	}

	// Without LendOutputs the same chain copies, with the same numbers.
	c := launch(t, testOptions(TransportShm))
	fc, err := c.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": in}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fc.Outputs["y"], yaCopy) {
		t.Error("lent and copied outputs differ")
	}
	if c.handoff.tensors != 0 {
		t.Errorf("a Client without LendOutputs handed off %d tensors", c.handoff.tensors)
	}
}

// TestHandoffSurvivesClose closes the producer while its output is pinned
// under the consumer's handle: the consumer's plugin keeps its own mapping
// (the hard link) and its backward still sees the data; the stale link is
// retired at the consumer's next call.
func TestHandoffSurvivesClose(t *testing.T) {
	ctx, cfg, a, b := lendingPair(t)
	w := tensor.Map{"w": tensor.From([]float32{1, 0, 0, 0}, 2, 2)}
	x := randTensor(rand.New(rand.NewSource(4)), 8, 8)
	fa, err := a.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": x}})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := b.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": fa.Outputs["y"]}, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	g := tensor.New(8, 8)
	g.Data[5] = 1
	bb, err := b.Backward(ctx, fb.Handle, tensor.Map{"y": g})
	if err != nil {
		t.Fatal(err)
	}
	if got := bb.ParamGrads["w"].Data[0]; got != x.Data[5] {
		t.Errorf("dw[0] = %v, want %v", got, x.Data[5])
	}
	if _, err := b.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": x}}); err != nil {
		t.Fatal(err)
	}
	hostMu.Lock()
	links := len(b.links)
	hostMu.Unlock()
	if links != 0 {
		t.Errorf("B keeps %d links to a closed Client's regions", links)
	}
}

// lendingPair launches two plugins of the test stage with LendOutputs.
func lendingPair(t *testing.T) (context.Context, stage.Config, *Client, *Client) {
	o := testOptions(TransportShm)
	o.LendOutputs = true
	return context.Background(), stage.Config{Options: map[string]string{"mode": ""}}, launch(t, o), launch(t, o)
}

// lentBy is the region c lent that holds x, or fails the test.
func lentBy(t *testing.T, c *Client, x *tensor.Tensor, what string) *region {
	t.Helper()
	hostMu.Lock()
	src := lentAt(uintptrOf(x.Data), uintptr(4*len(x.Data)))
	hostMu.Unlock()
	if src == nil || src.owner != c {
		t.Fatalf("%s does not lie in a region its Client lent (region %+v)", what, src)
	}
	return src
}

func uintptrOf(f []float32) uintptr { return uintptr(unsafe.Pointer(&f[0])) }

// TestRegionGrowsAfterFirstReply: when a reply outgrows the method's estimate,
// the region request and reply need together is created as the first call
// ends, so that the second call creates none (it did, inside the caller's
// second batch). Its results are unchanged.
func TestRegionGrowsAfterFirstReply(t *testing.T) {
	ctx := context.Background()
	cfg := stage.Config{Options: map[string]string{"mode": ""}}
	a := launch(t, testOptions(TransportShm))
	r := rand.New(rand.NewSource(4))
	w := tensor.Map{"w": tensor.From([]float32{2, 0, 0, 0}, 2, 2)}
	for call := 0; call < 3; call++ {
		x := randTensor(r, 1024, 1024) // 4 MiB in, 4 MiB out: the reply does not fit beside the request
		a.mu.Lock()
		before := a.next
		a.mu.Unlock()
		f, err := a.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": x}})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range f.Outputs["y"].Data {
			if v != 2*x.Data[i] {
				t.Fatalf("call %d: y[%d] = %v, want %v", call, i, v, 2*x.Data[i])
			}
		}
		a.mu.Lock()
		created := a.next - before
		a.mu.Unlock()
		if call > 0 && created != 0 {
			t.Errorf("call %d created %d regions, want 0", call, created)
		}
	}
}

// TestBackwardLends: with LendOutputs a Backward's gradients stay in shared
// memory, lent until the Client's next Backward returns: a Forward in
// between leaves them intact, the next Backward does not write over them,
// and then their region is free again; passed as another Client's output
// gradient they travel as a descriptor. The numbers are those of copying.
func TestBackwardLends(t *testing.T) {
	ctx, cfg, a, b := lendingPair(t)
	r := rand.New(rand.NewSource(5))
	w := tensor.Map{"w": tensor.From([]float32{3, 0, 0, 0}, 2, 2)}
	step := func(c *Client, x, g *tensor.Tensor) *stage.BackwardResult {
		t.Helper()
		f, err := c.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": x}, NeedGrad: true})
		if err != nil {
			t.Fatal(err)
		}
		bb, err := c.Backward(ctx, f.Handle, tensor.Map{"y": g})
		if err != nil {
			t.Fatal(err)
		}
		return bb
	}
	x, g := randTensor(r, 256, 256), randTensor(r, 256, 256)
	b1 := step(a, x, g)
	dx := b1.InputGrads["x"]
	src := lentBy(t, a, dx, "A's input gradient")
	for i, v := range dx.Data {
		if v != 3*g.Data[i] {
			t.Fatalf("dx[%d] = %v, want %v", i, v, 3*g.Data[i])
		}
	}
	keep := dx.Clone()
	// B's backward takes A's lent gradient as its output gradient, uncopied
	xb := randTensor(r, 256, 256)
	fb, err := b.Forward(ctx, cfg, &stage.ForwardRequest{Params: w, Inputs: tensor.Map{"x": xb}, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	before := b.handoff.tensors
	bb, err := b.Backward(ctx, fb.Handle, tensor.Map{"y": dx})
	if err != nil {
		t.Fatal(err)
	}
	if b.handoff.tensors != before+1 {
		t.Errorf("B's backward handed off %d tensors, want 1", b.handoff.tensors-before)
	}
	for i, v := range bb.InputGrads["x"].Data {
		if v != 3*keep.Data[i] {
			t.Fatalf("B's dx[%d] = %v, want %v", i, v, 3*keep.Data[i])
		}
	}
	// A's next forward, then its next backward: the first gradients survive
	// both calls, and are free once the second backward returned
	x2, g2 := randTensor(r, 256, 256), randTensor(r, 256, 256)
	b2 := step(a, x2, g2)
	if !reflect.DeepEqual(dx, keep) {
		t.Fatal("the first backward's gradient was overwritten before the next backward returned")
	}
	for i, v := range b2.InputGrads["x"].Data {
		if v != 3*g2.Data[i] {
			t.Fatalf("second dx[%d] = %v, want %v", i, v, 3*g2.Data[i])
		}
	}
	hostMu.Lock()
	lent, free := src.lent, src.free()
	hostMu.Unlock()
	if lent || !free {
		t.Errorf("the first backward's region: lent %v, free %v after the next backward; want false, true", lent, free)
	}
}
