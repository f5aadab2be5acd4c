package causal

import (
	"liquidlab/framework/num"
)

// Linear attention (pattern "linear"): per head, φ(x) = elu(x)+1 and
//
//	a_t = Σ_{s≤t} (φ(q_t)·φ(k_s)) v_s / Σ_{s≤t} φ(q_t)·φ(k_s)
//	    = φ(q_t)ᵀZ_t / φ(q_t)·z_t,   Z_t = Σ_{s≤t} φ(k_s)v_sᵀ [d,d],  z_t = Σ_{s≤t} φ(k_s).
//
// The kernel runs blocks of linBlock tokens: inside a block the masked
// [n,n] kernel matrix (sgemm), across blocks the running sums Z, z, which are
// also the streaming state. Backward runs the blocks in reverse with the
// reverse sums G = Σ_{t later} φ(q_t)dn_tᵀ, g = Σ_{t later} φ(q_t)dden_t.
// No ε is added to the denominator: φ > 0, so it is positive.

const linBlock = 64

// phi writes φ(x) = elu(x)+1 elementwise.
func phi(dst, x []float32) {
	for i, v := range x {
		if v > 0 {
			dst[i] = v + 1
		} else {
			dst[i] = num.ExpFast(v)
		}
	}
}

// linearFwd computes a [N,H] from fq, fk = φ(q), φ(k) and v [N,H], with the
// running sums zs [B,H,d] and ks [B,H] (updated in place to the chunk's end).
// It saves per (b,h,block) the sums before the block in zsave
// [B·heads·nblk·(d·d+d)] and the denominators den [N·heads].
func linearFwd(o *options, fq, fk, v []float32, B, Sc int, zs, ks, a, den, zsave []float32) {
	H, heads, d := o.H, o.heads, o.d
	nblk := (Sc + linBlock - 1) / linBlock
	ts, _ := tasks(B, heads, Sc)
	one := make([]task, 0, B*heads)
	for _, t := range ts {
		if t.j0 == 0 {
			one = append(one, t) // one task per (b,h): the recurrence is sequential
		}
	}
	run(one, float64(B*Sc*H)*float64(2*linBlock+2*d), func(_ int, tk task) {
		b, h := tk.b, tk.h
		Z := zs[(b*H+h*d)*d : (b*H+h*d+d)*d]
		z := ks[b*H+h*d : b*H+h*d+d]
		A := make([]float32, linBlock*linBlock)
		for k := 0; k < nblk; k++ {
			t0 := k * linBlock
			n := min(linBlock, Sc-t0)
			base := (b*Sc+t0)*H + h*d
			sv := zsave[((b*heads+h)*nblk+k)*(d*d+d):]
			copy(sv[:d*d], Z)
			copy(sv[d*d:d*d+d], z)
			Q, K, V, Av := fq[base:], fk[base:], v[base:], a[base:]
			num.Gemm(false, true, n, n, d, 1, Q, H, K, H, 0, A, n)
			for t := 0; t < n; t++ {
				row := A[t*n : (t+1)*n]
				clear(row[t+1:])
				var s float32
				for _, x := range row[:t+1] {
					s += x
				}
				qv := Q[t*H : t*H+d]
				for c, x := range qv {
					s += x * z[c]
				}
				den[(b*Sc+t0+t)*heads+h] = s
			}
			num.Gemm(false, false, n, d, n, 1, A, n, V, H, 0, Av, H)
			num.Gemm(false, false, n, d, d, 1, Q, H, Z, d, 1, Av, H)
			for t := 0; t < n; t++ {
				r := 1 / den[(b*Sc+t0+t)*heads+h]
				row := Av[t*H : t*H+d]
				for c := range row {
					row[c] *= r
				}
			}
			num.Gemm(true, false, d, d, n, 1, K, H, V, H, 1, Z, d)
			for t := 0; t < n; t++ {
				for c, x := range K[t*H : t*H+d] {
					z[c] += x
				}
			}
		}
	})
}

// linearBwd turns da [N,H] into dq, dk, dv [N,H] (overwritten), the gradients
// with respect to q and k (through φ) and v, with the carried sums constant.
func linearBwd(o *options, q, k, fq, fk, v, a, den, zsave, da []float32, B, Sc int, dq, dk, dv []float32) {
	H, heads, d := o.H, o.heads, o.d
	nblk := (Sc + linBlock - 1) / linBlock
	ts, _ := tasks(B, heads, Sc)
	one := make([]task, 0, B*heads)
	for _, t := range ts {
		if t.j0 == 0 {
			one = append(one, t)
		}
	}
	run(one, float64(B*Sc*H)*float64(4*linBlock+4*d), func(_ int, tk task) {
		b, h := tk.b, tk.h
		G := make([]float32, d*d)
		g := make([]float32, d)
		A := make([]float32, linBlock*linBlock)
		D := make([]float32, linBlock*linBlock)
		dn := make([]float32, linBlock*d)
		dd := make([]float32, linBlock)
		for k := nblk - 1; k >= 0; k-- {
			t0 := k * linBlock
			n := min(linBlock, Sc-t0)
			base := (b*Sc+t0)*H + h*d
			sv := zsave[((b*heads+h)*nblk+k)*(d*d+d):]
			Z, z := sv[:d*d], sv[d*d:d*d+d]
			Q, K, V := fq[base:], fk[base:], v[base:]
			dQ, dK, dV := dq[base:], dk[base:], dv[base:]
			for t := 0; t < n; t++ {
				r := (b*Sc + t0 + t)
				inv := 1 / den[r*heads+h]
				dav := da[r*H+h*d : r*H+h*d+d]
				av := a[r*H+h*d : r*H+h*d+d]
				var s float32
				for c, x := range dav {
					dn[t*d+c] = x * inv
					s += x * av[c]
				}
				dd[t] = -s * inv
			}
			// A = φQφKᵀ masked; D = dN Vᵀ + dden 1ᵀ masked.
			num.Gemm(false, true, n, n, d, 1, Q, H, K, H, 0, A, n)
			num.Gemm(false, true, n, n, d, 1, dn, d, V, H, 0, D, n)
			for t := 0; t < n; t++ {
				clear(A[t*n+t+1 : (t+1)*n])
				clear(D[t*n+t+1 : (t+1)*n])
				for s := 0; s <= t; s++ {
					D[t*n+s] += dd[t]
				}
			}
			// dφQ = D φK + dN Zᵀ + dden zᵀ
			num.Gemm(false, false, n, d, n, 1, D, n, K, H, 0, dQ, H)
			num.Gemm(false, true, n, d, d, 1, dn, d, Z, d, 1, dQ, H)
			// dφK = Dᵀ φQ + V Gᵀ + 1 gᵀ;  dV = Aᵀ dN + φK G
			num.Gemm(true, false, n, d, n, 1, D, n, Q, H, 0, dK, H)
			num.Gemm(false, true, n, d, d, 1, V, H, G, d, 1, dK, H)
			num.Gemm(true, false, n, d, n, 1, A, n, dn, d, 0, dV, H)
			num.Gemm(false, false, n, d, d, 1, K, H, G, d, 1, dV, H)
			for t := 0; t < n; t++ {
				rq, rk := dQ[t*H:t*H+d], dK[t*H:t*H+d]
				for c := range rq {
					rq[c] += dd[t] * z[c]
					rk[c] += g[c]
				}
			}
			// G += φQᵀ dN, g += φQᵀ dden
			num.Gemm(true, false, d, d, n, 1, Q, H, dn, d, 1, G, d)
			for t := 0; t < n; t++ {
				for c, x := range Q[t*H : t*H+d] {
					g[c] += x * dd[t]
				}
			}
		}
	})
	// through φ: φ'(x) = 1 for x > 0, else e^x = φ(x)
	for i := range dq {
		if q[i] <= 0 {
			dq[i] *= fq[i]
		}
		if k[i] <= 0 {
			dk[i] *= fk[i]
		}
	}
}
