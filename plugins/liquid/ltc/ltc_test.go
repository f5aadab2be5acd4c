package ltc

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// perturbedNeuron is the seed's initial neuron moved off its initial values, as
// the parity fixtures do, so every path is exercised.
func perturbedNeuron(r *rand.Rand, H int) (*AdaptiveLiquidNeuron, []float32) {
	n := NewAdaptiveLiquidNeuron(H)
	n.InitSeed(r)
	for _, t := range n.tensors(H) {
		for i := range *t.s {
			(*t.s)[i] += float32(0.2 * r.NormFloat64())
		}
	}
	return n, []float32{float32(0.2 * r.NormFloat64())}
}

func paramMap(n *AdaptiveLiquidNeuron, gate []float32, H int, r *rand.Rand) tensor.Map {
	m := tensor.Map{"stability_gate": tensor.From(gate, 1)}
	for _, t := range n.tensors(H) {
		shape := []int{H}
		if t.size == H*H {
			shape = []int{H, H}
		}
		m[t.name] = tensor.From(*t.s, shape...)
	}
	// the warping layer is declared but never read
	m["warping_layer.0.weight"] = tensor.From(stagetest.Randn(r, H*H, 1), H, H)
	m["warping_layer.0.bias"] = tensor.From(stagetest.Randn(r, H, 1), H)
	m["warping_layer.3.weight"] = tensor.From(stagetest.Randn(r, H, 1), 1, H)
	m["warping_layer.3.bias"] = tensor.From(stagetest.Randn(r, 1, 1), 1)
	return m
}

// TestNeuronEqualsExplicitBHH compares the row-scaling form with the seed's
// literal computation through a B×H×H tensor, in float64.
func TestNeuronEqualsExplicitBHH(t *testing.T) {
	const B, H = 3, 6
	r := rand.New(rand.NewPCG(1, 2))
	n, _ := perturbedNeuron(r, H)
	h, c := stagetest.Randn(r, B*H, 1), stagetest.Randn(r, B*H, 1)
	got := make([]float32, B*H)
	n.Forward(h, c, B, got)

	lin := func(l Linear, x []float64) []float64 {
		y := make([]float64, H)
		for o := range y {
			y[o] = float64(l.B[o])
			for i, v := range x {
				y[o] += float64(l.W[o*H+i]) * v
			}
		}
		return y
	}
	bp := n.Base
	for b := 0; b < B; b++ {
		hb, cb := make([]float64, H), make([]float64, H)
		for i := range hb {
			hb[i], cb[i] = float64(h[b*H+i]), float64(c[b*H+i])
		}
		z := lin(n.Encoder0, hb)
		for i := range z {
			z[i] = math.Max(z[i], 0)
		}
		adj := lin(n.Modulator, lin(n.Encoder3, z))
		W := make([][]float64, H) // W[i][j] = W_rec[i,j]·(1+adj_i), the seed's bmm operand
		for i := range W {
			W[i] = make([]float64, H)
			for j := range W[i] {
				W[i][j] = float64(bp.WRec[i*H+j]) * (1 + adj[i])
			}
		}
		dh := make([]float64, H)
		var mean float64
		for i := range dh {
			m := 0.0
			for j := range cb {
				m += cb[j] * W[i][j]
			}
			sig := 1 / (1 + math.Exp(-adj[i]))
			dh[i] = (-float64(bp.Decay[i])*hb[i] + m + float64(bp.Bias[i])) / (float64(bp.Tau[i]) * sig)
			mean += dh[i] / H
		}
		var vr float64
		for _, v := range dh {
			vr += (v - mean) * (v - mean) / H
		}
		for i, v := range dh {
			want := (v-mean)/math.Sqrt(vr+1e-5)*float64(bp.LNWeight[i]) + float64(bp.LNBias[i])
			if g := float64(got[b*H+i]); math.Abs(g-want) > 1e-4*(1+math.Abs(want)) {
				t.Errorf("f[%d,%d] = %v, explicit B×H×H gives %v", b, i, g, want)
			}
		}
	}
}

// TestCellVJP checks the cell's VJP against finite differences of rᵀ·f(h).
func TestCellVJP(t *testing.T) {
	const B, H = 2, 5
	r := rand.New(rand.NewPCG(3, 4))
	n, gate := perturbedNeuron(r, H)
	h, c, rg := stagetest.Randn(r, B*H, 1), stagetest.Randn(r, B*H, 1), stagetest.Randn(r, B*H, 1)
	loss := func() float64 {
		cell, err := NewImprovedLiquidTimeCell(n, gate, c, B, false)
		if err != nil {
			t.Fatal(err)
		}
		dy := make([]float32, B*H)
		cell.Eval(0.3, h, dy)
		var l float64
		for i, v := range dy {
			l += float64(v) * float64(rg[i])
		}
		return l
	}
	cell, err := NewImprovedLiquidTimeCell(n, gate, c, B, true)
	if err != nil {
		t.Fatal(err)
	}
	gy := make([]float32, B*H)
	for i := range gy {
		gy[i] = 1 // VJP adds to gy
	}
	cell.VJP(0.3, h, rg, gy)
	for i := range gy {
		gy[i]--
	}
	g := cell.Grads()
	numtest.CheckGrad(t, "h", h, gy, loss, 1e-3, 1e-3, 1e-2)
	numtest.CheckGrad(t, "c", c, g.C, loss, 1e-3, 1e-3, 1e-2)
	numtest.CheckGrad(t, "stability_gate", gate, g.StabilityGate, loss, 1e-3, 1e-3, 1e-2)
	gts := g.Neuron.tensors(H)
	for i, p := range n.tensors(H) {
		numtest.CheckGrad(t, p.name, *p.s, *gts[i].s, loss, 1e-3, 1e-3, 1e-2)
	}
	// A second VJP accumulates.
	before := append([]float32(nil), g.StabilityGate...)
	cell.VJP(0.3, h, rg, make([]float32, B*H))
	if g2 := cell.Grads(); math.Abs(float64(g2.StabilityGate[0]-2*before[0])) > 1e-5*(1+math.Abs(float64(before[0]))) {
		t.Errorf("gate gradient after two VJPs %v, want twice %v", g2.StabilityGate[0], before[0])
	}
}

func testConfig(H int, method string) stage.Config {
	return stage.Config{Dims: map[string]int{"hidden_size": H}, Options: map[string]string{"method": method}}
}

// TestStageGradients checks Backward against finite differences of rᵀ·h(1) for
// c, h(0) and every parameter. Adaptive steps are held constant by Backward, as
// by the reference, so dopri5 runs with tolerances tight enough that the step
// sizes' own dependence is below the check's tolerance.
func TestStageGradients(t *testing.T) {
	const B, H = 2, 4
	for _, tc := range []struct {
		method string
		tol    string
	}{{"euler", ""}, {"midpoint", ""}, {"heun", ""}, {"rk4", ""}, {"dopri5", "1e-6"}} {
		t.Run(tc.method+tc.tol, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			n, gate := perturbedNeuron(r, H)
			pm := paramMap(n, gate, H, r)
			cfg := testConfig(H, tc.method)
			if tc.tol != "" {
				cfg.Options["rtol"], cfg.Options["atol"] = tc.tol, tc.tol
			}
			in := tensor.Map{"c": tensor.From(stagetest.Randn(r, B*H, 3), B, H), "h": tensor.From(stagetest.Randn(r, B*H, 0.5), B, H)}
			rg := stagetest.Randn(r, B*H, 1)
			s := New()
			var nfe float64
			loss := func() float64 {
				res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in})
				if err != nil {
					t.Fatal(err)
				}
				nfe = res.Stats["nfe"]
				var l float64
				for i, v := range res.Outputs["h"].Data {
					l += float64(v) * float64(rg[i])
				}
				return l
			}
			res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, NeedGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			g, err := s.Backward(context.Background(), res.Handle, tensor.Map{"h": tensor.From(rg, B, H)})
			if err != nil {
				t.Fatal(err)
			}
			loss()
			t.Logf("nfe %v", nfe)
			atol, rtol := 1e-3, 1e-2
			if tc.method == "dopri5" {
				atol, rtol = 5e-3, 5e-2 // the finite differences also see the step sizes move
			}
			for _, name := range []string{"c", "h"} {
				numtest.CheckGrad(t, name, in[name].Data, g.InputGrads[name].Data, loss, 1e-3, atol, rtol)
			}
			for _, name := range pm.Names() {
				grad, ok := g.ParamGrads[name]
				if strings.HasPrefix(name, "warping_layer.") {
					if ok {
						t.Errorf("gradient for NoGrad parameter %s", name)
					}
					continue
				}
				if !ok {
					t.Errorf("no gradient for %s", name)
					continue
				}
				numtest.CheckGrad(t, name, pm[name].Data, grad.Data, loss, 1e-3, atol, rtol)
			}
		})
	}
}

// TestDescribeMatchesFixture checks local names, shapes and NoGrad flags against
// the seed fixture's state_dict and gradient entries.
func TestDescribeMatchesFixture(t *testing.T) {
	raw, err := os.ReadFile("/work/shared/fixtures/seed/seed_rk4.safetensors")
	if err != nil {
		t.Skipf("seed fixture not available: %v", err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	const prefix = "liquid_cell.liquid_cell."
	want, withGrad := map[string]string{}, map[string]bool{}
	for k, v := range header {
		var e struct{ Shape []int }
		if json.Unmarshal(v, &e) != nil {
			continue
		}
		if name, ok := strings.CutPrefix(k, "param."+prefix); ok {
			want[name] = fmt.Sprint(e.Shape)
		}
		if name, ok := strings.CutPrefix(k, "grad."+prefix); ok {
			withGrad[name] = true
		}
	}
	d, err := New().Describe(context.Background(), testConfig(8, ""))
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "liquid" || d.Name != "ltc" || d.Version != "1.0.0" {
		t.Errorf("identity %s/%s/%s", d.Kind, d.Name, d.Version)
	}
	if len(d.Params) != len(want) {
		t.Errorf("%d params, fixture has %d", len(d.Params), len(want))
	}
	for _, p := range d.Params {
		if want[p.Name] != fmt.Sprint(p.Shape) {
			t.Errorf("param %s shape %v, fixture %q", p.Name, p.Shape, want[p.Name])
		}
		if p.NoGrad == withGrad[p.Name] {
			t.Errorf("param %s NoGrad = %v, fixture has a gradient: %v", p.Name, p.NoGrad, withGrad[p.Name])
		}
	}
}

func TestErrors(t *testing.T) {
	const B, H = 2, 3
	r := rand.New(rand.NewPCG(7, 8))
	n, gate := perturbedNeuron(r, H)
	pm := paramMap(n, gate, H, r)
	good := tensor.Map{"c": tensor.New(B, H), "h": tensor.New(B, H)}
	with := func(m tensor.Map, k string, v *tensor.Tensor) tensor.Map {
		out := tensor.Map{}
		for n, t := range m {
			out[n] = t
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	cfg := testConfig(H, "rk4")
	cases := []struct {
		name   string
		cfg    stage.Config
		params tensor.Map
		in     tensor.Map
		want   string
	}{
		{"no hidden_size", stage.Config{}, pm, good, "hidden_size"},
		{"bad method", testConfig(H, "rk45"), pm, good, "method"},
		{"bad rtol", stage.Config{Dims: cfg.Dims, Options: map[string]string{"rtol": "-1"}}, pm, good, "rtol"},
		{"bad atol", stage.Config{Dims: cfg.Dims, Options: map[string]string{"atol": "x"}}, pm, good, "atol"},
		{"empty batch", cfg, pm, with(with(good, "c", tensor.New(0, H)), "h", tensor.New(0, H)), "empty"},
	}
	s := New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: tc.params, Inputs: tc.in})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ltc: ") {
				t.Errorf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	res, _ := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: good, NeedGrad: true})
	if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"c": tensor.New(B, H)}); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("gradient for an input accepted: %v", err)
	}
	res, _ = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: good, NeedGrad: true})
	g, err := s.Backward(context.Background(), res.Handle, tensor.Map{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range g.InputGrads["h"].Data {
		if v != 0 {
			t.Fatal("nonzero gradient without an output gradient")
		}
	}
	if _, err := NewImprovedLiquidTimeCell(n, gate, make([]float32, H), B, false); err == nil {
		t.Error("short context accepted")
	}
	if err := NewAdaptiveLiquidNeuron(H).Validate(H + 1); err == nil {
		t.Error("wrong width accepted")
	}
}

// TestForwardRepeatable checks that the same call gives the same result (the
// conformance kit checks that inputs and parameters are not modified).
func TestForwardRepeatable(t *testing.T) {
	const B, H = 2, 4
	r := rand.New(rand.NewPCG(9, 10))
	n, gate := perturbedNeuron(r, H)
	pm := paramMap(n, gate, H, r)
	in := tensor.Map{"c": tensor.From(stagetest.Randn(r, B*H, 1), B, H), "h": tensor.From(stagetest.Randn(r, B*H, 1), B, H)}
	s := New()
	cfg := testConfig(H, "dopri5")
	a, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(context.Background(), a.Handle, tensor.Map{"h": tensor.From(stagetest.Randn(r, B*H, 1), B, H)}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Outputs["h"].Data {
		if a.Outputs["h"].Data[i] != b.Outputs["h"].Data[i] {
			t.Fatal("results differ between identical calls")
		}
	}
	if a.Stats["nfe"] <= 0 || a.Stats["accepted"] <= 0 {
		t.Errorf("stats %v", a.Stats)
	}
}
