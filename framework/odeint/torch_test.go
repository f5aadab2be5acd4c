package odeint

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// testdata/torch_ref.json was written by running seed_torch.py's _dopri5 and
// odeint (PyTorch 1.13, autograd through the solver) on the elementwise
// f(t, y) = p⊙y/(1+y⊙y) + q + t·c (fields W = p, B = q, C = c) over 12 elements:
// outputs, NFE, and the gradients of loss = w1·Ys[last] + w2·Ys[mid] w.r.t. y0,
// p and q. f is elementwise so that Go evaluates it bit for bit as PyTorch does:
// the step after a small first step is set by round-off in the error estimate,
// so a Func that differs in the last bit (a matmul, a tanh) may pick other steps.
type torchCase struct {
	Method      string
	Ts          []float64
	Tol         float64
	W, B, C, Y0 []float32
	W1, W2      []float32
	Mid, NFE    int
	Ys          [][]float32
	GY0, GW, GB []float32
}

// ratFunc is f(t, y) = p⊙y/(1+y⊙y) + q + t·c, in PyTorch's float32 operation order.
type ratFunc struct {
	p, q, c, gp, gq []float32
}

func (f *ratFunc) Eval(t float64, y, dy []float32) {
	t32 := float32(t)
	for i, v := range y {
		r := float32(f.p[i]*v) / (1 + float32(v*v))
		dy[i] = r + f.q[i] + float32(t32*f.c[i])
	}
}

func (f *ratFunc) VJP(t float64, y, g, gy []float32) {
	for i, v := range y {
		d := 1 + v*v
		gy[i] += g[i] * f.p[i] * (1 - v*v) / (d * d)
		f.gp[i] += g[i] * v / d
		f.gq[i] += g[i]
	}
}

func closeTo(t *testing.T, what string, got, want []float32, rel float64) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.Abs(g-w) > rel*math.Max(1, math.Abs(w)) {
			t.Errorf("%s[%d] = %.7g, PyTorch %.7g", what, i, g, w)
			return
		}
	}
}

func TestAgainstPyTorch(t *testing.T) {
	raw, err := os.ReadFile("testdata/torch_ref.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []torchCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for ci, c := range cases {
		f := &ratFunc{p: c.W, q: c.B, c: c.C, gp: make([]float32, len(c.W)), gq: make([]float32, len(c.B))}
		sol, err := Solve(f, c.Y0, c.Ts, Options{Method: c.Method, RTol: c.Tol, ATol: c.Tol, Tape: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("case %d %s: stats %+v, PyTorch NFE %d", ci, c.Method, sol.Stats, c.NFE)
		if sol.Stats.NFE != c.NFE {
			t.Errorf("case %d %s: NFE %d, PyTorch %d", ci, c.Method, sol.Stats.NFE, c.NFE)
		}
		for i := range c.Ys {
			closeTo(t, c.Method+" Ys", sol.Ys[i], c.Ys[i], 1e-5)
		}
		gys := make([][]float32, len(c.Ts))
		gys[len(gys)-1] = c.W1
		if c.Mid == len(gys)-1 {
			gys[c.Mid] = make([]float32, len(c.W1))
			for i := range c.W1 {
				gys[c.Mid][i] = c.W1[i] + c.W2[i]
			}
		} else {
			gys[c.Mid] = c.W2
		}
		gy0, err := sol.Backward(f, gys)
		if err != nil {
			t.Fatal(err)
		}
		closeTo(t, c.Method+" dy0", gy0, c.GY0, 1e-4)
		closeTo(t, c.Method+" dp", f.gp, c.GW, 1e-4)
		closeTo(t, c.Method+" dq", f.gq, c.GB, 1e-4)
	}
}
