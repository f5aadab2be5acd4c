package realnvp

import (
	"fmt"
	"math"

	"liquidlab/framework/num"
	"liquidlab/framework/tensor"
)

// layer is one coupling's parameters: Lin(H→F), ReLU, Lin(F→2H) giving the raw
// log-scales (first H outputs) and the shifts (last H).
type layer struct{ w1, b1, w2, b2 []float32 }

type params struct {
	layers []layer
	wp, bp []float32 // out_proj (z_from = projection)
}

// bind checks every declared parameter and copies it (a handle must not depend
// on the host's buffers).
func bind(d dims, m tensor.Map) (*params, error) {
	data := map[string][]float32{}
	for _, spec := range d.params() {
		t, err := m.Need(spec.Name, spec.Shape...)
		if err != nil {
			return nil, fmt.Errorf("realnvp: parameter: %w", err)
		}
		data[spec.Name] = append([]float32(nil), t.Data...)
	}
	p := &params{layers: make([]layer, d.K), wp: data["out_proj.weight"], bp: data["out_proj.bias"]}
	for i := range p.layers {
		p.layers[i] = layer{data[layerName(i, "0.weight")], data[layerName(i, "0.bias")],
			data[layerName(i, "2.weight")], data[layerName(i, "2.bias")]}
	}
	return p, nil
}

// run is one forward pass: what backward reads.
type run struct {
	xs  [][]float32 // K+1 entries [N,D]: the input of every coupling, then the output
	hid [][]float32 // K entries [N,F]: ReLU outputs
	s   [][]float32 // K entries [N,H]: clamped log-scales
	z   []float32   // [N,L]
	ldj []float32   // [N]
}

// halves returns the column offsets of the conditioning and transformed halves
// of coupling i.
func (d dims) halves(i int) (cond, trans int) {
	if d.transformsFirst(i) {
		return d.H, 0
	}
	return 0, d.H
}

func forward(d dims, p *params, x []float32, N int) *run {
	D, H, F, C := d.D, d.H, d.F, d.clamp
	r := &run{xs: make([][]float32, d.K+1), hid: make([][]float32, d.K), s: make([][]float32, d.K), ldj: make([]float32, N)}
	r.xs[0] = x[:N*D] // referenced, never written
	ldj := make([]float64, N)
	o := make([]float32, N*2*H)
	for i, l := range p.layers {
		xi := r.xs[i]
		ca, cb := d.halves(i)
		hid := make([]float32, N*F)
		for n := 0; n < N; n++ {
			copy(hid[n*F:], l.b1)
		}
		num.Gemm(false, true, N, F, H, 1, xi[ca:], D, l.w1, H, 1, hid, F)
		num.ReLUInPlace(hid)
		num.LinearForward(o, hid, l.w2, l.b2, N, F, 2*H)
		s := make([]float32, N*H)
		xo := append([]float32(nil), xi...)
		for n := 0; n < N; n++ {
			on, sn := o[n*2*H:], s[n*H:(n+1)*H]
			var acc float64
			for j := range sn {
				sj := C * num.Tanh(on[j]/C)
				sn[j] = sj
				acc += float64(sj)
				k := n*D + cb + j
				xo[k] = xi[k]*float32(math.Exp(float64(sj))) + on[H+j]
			}
			ldj[n] += acc
		}
		r.xs[i+1], r.hid[i], r.s[i] = xo, hid, s
	}
	for n, v := range ldj {
		r.ldj[n] = float32(v)
	}
	xK := r.xs[d.K]
	r.z = make([]float32, N*d.L)
	if d.zFrom == ZProjection {
		num.LinearForward(r.z, xK, p.wp, p.bp, N, D, d.L)
	} else {
		for n := 0; n < N; n++ {
			copy(r.z[n*d.L:(n+1)*d.L], xK[n*D:])
		}
	}
	return r
}

// backward returns dL/dx and the parameter gradients, given dz [N,L] and dldj
// [N] (either may be nil).
func backward(d dims, p *params, r *run, N int, dz, dldj []float32) ([]float32, tensor.Map) {
	D, H, F, C, L := d.D, d.H, d.F, d.clamp, d.L
	pg := tensor.Map{}
	dx := make([]float32, N*D) // dL/d(output of the coupling being reversed)
	xK := r.xs[d.K]
	if dz != nil {
		if d.zFrom == ZProjection {
			dW, db := make([]float32, L*D), make([]float32, L)
			num.LinearBackward(dx, false, dW, db, dz, xK, p.wp, N, D, L)
			pg["out_proj.weight"], pg["out_proj.bias"] = tensor.From(dW, L, D), tensor.From(db, L)
		} else {
			for n := 0; n < N; n++ {
				copy(dx[n*D:], dz[n*L:(n+1)*L])
			}
		}
	} else if d.zFrom == ZProjection {
		pg["out_proj.weight"], pg["out_proj.bias"] = tensor.New(L, D), tensor.New(L)
	}
	do := make([]float32, N*2*H)
	dhid := make([]float32, N*F)
	for i := d.K - 1; i >= 0; i-- {
		l := p.layers[i]
		xi, s, hid := r.xs[i], r.s[i], r.hid[i]
		ca, cb := d.halves(i)
		for n := 0; n < N; n++ {
			dn, sn := do[n*2*H:(n+1)*2*H], s[n*H:(n+1)*H]
			var gl float32
			if dldj != nil {
				gl = dldj[n]
			}
			for j, sj := range sn {
				k := n*D + cb + j
				g := dx[k]
				e := float32(math.Exp(float64(sj)))
				ds := g*xi[k]*e + gl
				t := sj / C
				dn[j] = ds * (1 - t*t)
				dn[H+j] = g
				dx[k] = g * e
			}
		}
		dW1, db1, dW2, db2 := make([]float32, F*H), make([]float32, F), make([]float32, D*F), make([]float32, D)
		num.LinearBackward(dhid, false, dW2, db2, do, hid, l.w2, N, F, 2*H)
		num.ReLUBackward(dhid, hid)
		// dW1 += dhidᵀ·x_a, dx_a += dhid·W1 (x_a: the strided conditioning half)
		num.Gemm(true, false, F, H, N, 1, dhid, F, xi[ca:], D, 1, dW1, H)
		num.ColSumAdd(db1, dhid, N, F)
		num.Gemm(false, false, N, H, F, 1, dhid, F, l.w1, H, 1, dx[ca:], D)
		pg[layerName(i, "0.weight")], pg[layerName(i, "0.bias")] = tensor.From(dW1, F, H), tensor.From(db1, F)
		pg[layerName(i, "2.weight")], pg[layerName(i, "2.bias")] = tensor.From(dW2, D, F), tensor.From(db2, D)
	}
	return dx, pg
}
