package graphstage

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"
)

// TestFastKernelBits: the kernels a build runs (C for long vectors where cgo
// is on) give the Go loops' bits, on lengths around the vector width and the
// cgo threshold, with zeros, infinities, NaN and values past exp's and tanh's
// clamps among the inputs.
func TestFastKernelBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 100, -100, 9, -9, 1e-30, 3e38}
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
	}
	for _, n := range []int{0, 1, 15, 16, 17, cgoMin - 1, cgoMin, cgoMin + 17, 1000} {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()*3), float32(rng.NormFloat64()*3)
			if i < len(special) {
				a[i], b[i] = special[i], special[(i+5)%len(special)]
			}
		}
		s := float32(-1.7)
		got, want := make([]float32, n), make([]float32, n)
		check := func(name string, k fastKind) {
			t.Helper()
			for i := range got {
				if !same(got[i], want[i]) {
					t.Fatalf("n=%d %s kind %d: [%d] = %v (%#x), Go loop %v (%#x); a=%v b=%v", n, name, k, i,
						got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]), a[i], b[i])
				}
			}
		}
		for k := fastAdd; k <= fastDiv; k++ {
			binVV(k, got, a, b)
			binVVGo(k, want, a, b)
			check("vv", k)
			binVS(k, got, a, s)
			binVSGo(k, want, a, s)
			check("vs", k)
			binSV(k, got, s, b)
			binSVGo(k, want, s, b)
			check("sv", k)
		}
		for k := fastAbs; k <= fastSigmoid; k++ {
			unaryKernel(k, got, a)
			unaryGo(k, want, a)
			check("unary", k)
		}
	}
}

// TestFastMatchesGorgonia: every op the kit runs with its own kernel gives
// gorgonia's Do result (the same bits for arithmetic, products, sums, copies;
// within 1e-6 relative for exp, tanh and sigmoid, which are package num's),
// into new memory and into a preallocated output; arguments the kernels do
// not take (float64, views, shapes that differ) are left to gorgonia.
func TestFastMatchesGorgonia(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := G.NewGraph()
	val := func(shape ...int) *T.Dense {
		d := T.New(T.Of(T.Float32), T.WithShape(shape...))
		for i, x := range d.Float32s() {
			d.Float32s()[i] = float32(rng.NormFloat64())
			if x != 0 {
				panic("not zeroed")
			}
		}
		return d
	}
	node := func(name string, v *T.Dense) *G.Node {
		return G.NewTensor(g, T.Float32, v.Dims(), G.WithShape(v.Shape()...), G.WithName(name), G.WithValue(v))
	}
	a, b := val(6, 40), val(6, 40)
	m, w := val(40, 24), val(6, 24)
	c3 := val(6, 3, 40)
	na, nb, nm, nw, nc := node("a", a), node("b", b), node("m", m), node("w", w), node("c3", c3)
	sc := G.NewConstant(float32(0.75))
	pos := G.Must(G.Add(G.Must(G.Square(na)), G.NewConstant(float32(0.5))))
	type tc struct {
		name string
		n    *G.Node
		kind fastKind
		tol  float64
	}
	cases := []tc{
		{"add", G.Must(G.Add(na, nb)), fastAdd, 0},
		{"sub", G.Must(G.Sub(na, nb)), fastSub, 0},
		{"mul", G.Must(G.HadamardProd(na, nb)), fastMul, 0},
		{"div", G.Must(G.HadamardDiv(na, nb)), fastDiv, 0},
		{"add scalar", G.Must(G.Add(na, sc)), fastAdd, 0},
		{"scalar sub", G.Must(G.Sub(sc, na)), fastSub, 0},
		{"scalar div", G.Must(G.Div(sc, na)), fastDiv, 0},
		{"mul scalar", G.Must(G.Mul(na, sc)), fastMul, 0},
		{"abs", G.Must(G.Abs(na)), fastAbs, 0},
		{"sign", G.Must(G.Sign(na)), fastSign, 0},
		{"neg", G.Must(G.Neg(na)), fastNeg, 0},
		{"square", G.Must(G.Square(na)), fastSquare, 0},
		{"sqrt", G.Must(G.Sqrt(pos)), fastSqrt, 0},
		{"inv", G.Must(G.Inverse(na)), fastInv, 0},
		{"invsqrt", G.Must(G.InverseSqrt(pos)), fastInvSqrt, 0},
		{"cube", G.Must(G.Cube(na)), fastCube, 0},
		{"exp", G.Must(G.Exp(na)), fastExp, 1e-6},
		{"tanh", G.Must(G.Tanh(na)), fastTanh, 1e-6},
		{"sigmoid", G.Must(G.Sigmoid(na)), fastSigmoid, 1e-6},
		{"matmul", G.Must(G.Mul(na, nm)), fastMatMul, 0},
		{"sum 0", G.Must(G.Sum(na, 0)), fastSum, 1e-6},
		{"sum 1", G.Must(G.Sum(na, 1)), fastSum, 1e-6},
		{"sum 1 of 3", G.Must(G.Sum(nc, 1)), fastSum, 1e-6},
		{"concat 0", G.Must(G.Concat(0, na, nb)), fastConcat, 0},
		{"concat 1", G.Must(G.Concat(1, na, nw)), fastConcat, 0},
		{"slice 1", G.Must(G.Slice(nc, nil, G.S(1, 3))), fastSlice, 0},
		{"slice dropping an axis", G.Must(G.Slice(nc, nil, G.S(2))), fastSlice, 0},
		{"slice 0", G.Must(G.Slice(na, G.S(2, 5))), fastSlice, 0},
	}
	// the gradient of a product with transposed operands
	cost := G.Must(G.Sum(G.Must(G.Mul(na, nm))))
	if _, err := G.Grad(cost, na, nm); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.AllNodes() {
		if s := n.Op(); s != nil {
			if k, p := fastOf(s); k == fastMatMul && (p[0] == 1 || p[1] == 1) {
				cases = append(cases, tc{"matmul " + s.String(), n, fastMatMul, 0})
			}
		}
	}
	seen := map[fastKind]bool{}
	for _, c := range cases {
		k, p := fastOf(c.n.Op())
		if k != c.kind {
			t.Fatalf("%s: %v is kind %d, want %d", c.name, c.n.Op(), k, c.kind)
		}
		seen[k] = true
		args := argValues(t, g, c.n)
		want, err := c.n.Op().Do(args...)
		if err != nil {
			t.Fatalf("%s: gorgonia: %v", c.name, err)
		}
		st := &step{n: c.n, op: c.n.Op(), fast: k, fastArg: p, shape: c.n.Shape()}
		for _, pre := range []bool{false, true} {
			if pre {
				st.prealloc = T.New(T.Of(T.Float32), T.WithShape(c.n.Shape().Clone()...))
			}
			got, ok := st.fastDo(args)
			if !ok {
				t.Fatalf("%s: the kit's kernel declined", c.name)
			}
			gd, wd := got.(*T.Dense), want.(*T.Dense)
			if !gd.Shape().Eq(wd.Shape()) {
				t.Fatalf("%s: shape %v, gorgonia %v", c.name, gd.Shape(), wd.Shape())
			}
			if pre && gd != st.prealloc {
				t.Fatalf("%s: did not write into the preallocated output", c.name)
			}
			wv := wd.Float32s()
			if wd.IsView() {
				wv = wd.Materialize().(*T.Dense).Float32s()
			}
			for i, x := range gd.Float32s() {
				y := wv[i]
				if d := math.Abs(float64(x - y)); d > c.tol*math.Abs(float64(y)) && !(c.tol == 0 && x == y) {
					t.Fatalf("%s (pre %v): [%d] = %v, gorgonia %v", c.name, pre, i, x, y)
				}
			}
		}
	}
	for k := fastAdd; k <= fastSlice; k++ {
		if !seen[k] {
			t.Errorf("kind %d not tested", k)
		}
	}
	// declined: float64, a view, shapes that differ
	st := &step{fast: fastAdd}
	f64 := T.New(T.Of(T.Float64), T.WithShape(2, 2))
	view, err := a.Slice(nil, T.S(0, 5))
	if err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]G.Value{"float64": {f64, f64}, "view": {view, view}, "shapes": {a, m}} {
		if _, ok := st.fastDo(args); ok {
			t.Errorf("%s: the kit's kernel took arguments it does not handle", name)
		}
	}
}

// kids are n's children in g, in order.
func kids(g *G.ExprGraph, n *G.Node) []*G.Node {
	var out []*G.Node
	for it := g.From(n.ID()); it.Next(); {
		out = append(out, it.Node().(*G.Node))
	}
	return out
}

// argValues are the values of n's children: their own, or computed with
// gorgonia's Do.
func argValues(t *testing.T, g *G.ExprGraph, n *G.Node) []G.Value {
	var vs []G.Value
	for _, c := range kids(g, n) {
		v := c.Value()
		if v == nil {
			v = mustDo(t, g, c)
		}
		vs = append(vs, v)
	}
	return vs
}

// mustDo computes n's value from its children's values with gorgonia's Do.
func mustDo(t *testing.T, g *G.ExprGraph, n *G.Node) G.Value {
	v, err := n.Op().Do(argValues(t, g, n)...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
