package causal

import (
	"math"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"liquidlab/framework/num"
)

// The blocked softmax kernel of the positional patterns (full, window,
// dilated, global, bigbird): per batch row, head and query block (posPlanner.
// qblocks), the block's scores against the union of its queries' keys by
// sgemm, masked by allowed, a row softmax, and the weighted sum by sgemm.
// Forward keeps only the log-sum-exp of every (query, head); backward
// recomputes the block's scores (FlashAttention's scheme), so no score matrix
// outlives a block: memory is O(tokens·H) whatever the pattern.

type blockScratch struct {
	sp    []span
	S, DP []float32
	mask  []bool
}

func growBool(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}

// maskRow marks in mask which keys of the spans query t sees, sets the others'
// scores in row to −Inf, and returns their number and the largest score seen.
func (pl *posPlanner) maskRow(t int, sp []span, row []float32, mask []bool) (int, float32) {
	mx := float32(math.Inf(-1))
	n, off := 0, 0
	for _, x := range sp {
		for k := 0; k < x.cnt; k++ {
			ok := pl.allowed(t, x.pos+k*x.stride)
			mask[off+k] = ok
			if ok {
				mx = max(mx, row[off+k])
				n++
			} else {
				row[off+k] = float32(math.Inf(-1))
			}
		}
		off += x.cnt
	}
	return n, mx
}

// blockedFwd fills a [B·Sc,H] and lse [B·Sc·heads]; it returns the number of
// (query, head, key) triples the pattern allows, and the number the blocks
// computed (the FLOPs spent).
func blockedFwd(pl *posPlanner, q, kc, vc []float32, B, Sc, T, H, heads int, a, lse []float32) (allowedPairs, computed int64) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	qbs := pl.qblocks(Sc)
	ts, _ := tasks(B, heads, len(qbs))
	scr := make([]blockScratch, num.Workers())
	var na, nc atomic.Int64
	run(ts, float64(B*Sc*T)*float64(H), func(w int, tk task) {
		s := &scr[w]
		b, h := tk.b, tk.h
		kb, vb := kc[b*T*H+h*d:], vc[b*T*H+h*d:]
		var ca, cc int64
		for qi := tk.j0; qi < len(qbs); qi += tk.step {
			qb := qbs[qi]
			if pl.skip(b, Sc, qb) { // input "rows": nobody reads these outputs
				for i := 0; i < qb.n; i++ {
					r := b*Sc + qb.j0 + i*qb.stride
					clear(a[r*H+h*d : r*H+h*d+d])
					lse[r*heads+h] = 0
				}
				continue
			}
			s.sp = pl.bkeys(qb, s.sp[:0])
			Lk := 0
			for _, x := range s.sp {
				Lk += x.cnt
			}
			nq := qb.n
			cc += int64(nq * Lk)
			s.S = grow(s.S, nq*Lk)
			r0 := b*Sc + qb.j0
			ld := qb.stride * H
			qp := q[r0*H+h*d:]
			off := 0
			for _, x := range s.sp {
				impl.Sgemm(blas.NoTrans, blas.Trans, nq, x.cnt, d, inv, qp, ld, kb[x.row*H:], x.stride*H, 0, s.S[off:], Lk)
				off += x.cnt
			}
			s.mask = growBool(s.mask, Lk)
			for i := 0; i < nq; i++ {
				t := pl.pos0 + qb.j0 + i*qb.stride
				row := s.S[i*Lk : (i+1)*Lk]
				n, mx := pl.maskRow(t, s.sp, row, s.mask)
				ca += int64(n)
				for k := range row {
					row[k] -= mx
				}
				num.ExpFastSlice(row, row)
				var z float32
				for k, ok := range s.mask {
					if !ok {
						row[k] = 0
					}
					z += row[k]
				}
				rz := 1 / z
				for k := range row {
					row[k] *= rz
				}
				lse[(r0+i*qb.stride)*heads+h] = mx + float32(math.Log(float64(z)))
			}
			ap := a[r0*H+h*d:]
			off = 0
			for k, x := range s.sp {
				beta := float32(1)
				if k == 0 {
					beta = 0
				}
				impl.Sgemm(blas.NoTrans, blas.NoTrans, nq, d, x.cnt, 1, s.S[off:], Lk, vb[x.row*H:], x.stride*H, beta, ap, ld)
				off += x.cnt
			}
		}
		na.Add(ca)
		nc.Add(cc)
	})
	return na.Load(), nc.Load()
}

// blockedBwd is blockedFwd's backward: dq [B·Sc,H] overwritten, dk, dv
// [B,T,H] added to.
func blockedBwd(pl *posPlanner, q, kc, vc, a, lse, da []float32, B, Sc, T, H, heads int, dq, dk, dv []float32) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	qbs := pl.qblocks(Sc)
	ts, nPriv := tasks(B, heads, len(qbs))
	priv := make([][2][]float32, nPriv)
	for i := range priv {
		priv[i] = [2][]float32{num.GetBuf(T * H), num.GetBuf(T * H)}
		clear(priv[i][0])
		clear(priv[i][1])
	}
	scr := make([]blockScratch, num.Workers())
	run(ts, 2.5*float64(B*Sc*T)*float64(H), func(w int, tk task) {
		s := &scr[w]
		b, h := tk.b, tk.h
		kb, vb := kc[b*T*H+h*d:], vc[b*T*H+h*d:]
		dkb, dvb := dk[b*T*H+h*d:], dv[b*T*H+h*d:]
		if tk.priv >= 0 {
			dkb, dvb = priv[tk.priv][0][h*d:], priv[tk.priv][1][h*d:]
		}
		for qi := tk.j0; qi < len(qbs); qi += tk.step {
			qb := qbs[qi]
			s.sp = pl.bkeys(qb, s.sp[:0])
			Lk := 0
			for _, x := range s.sp {
				Lk += x.cnt
			}
			nq := qb.n
			s.S, s.DP = grow(s.S, nq*Lk), grow(s.DP, nq*Lk)
			s.mask = growBool(s.mask, Lk)
			r0 := b*Sc + qb.j0
			ld := qb.stride * H
			qp, dap, dqp := q[r0*H+h*d:], da[r0*H+h*d:], dq[r0*H+h*d:]
			off := 0
			for _, x := range s.sp {
				impl.Sgemm(blas.NoTrans, blas.Trans, nq, x.cnt, d, inv, qp, ld, kb[x.row*H:], x.stride*H, 0, s.S[off:], Lk)
				impl.Sgemm(blas.NoTrans, blas.Trans, nq, x.cnt, d, 1, dap, ld, vb[x.row*H:], x.stride*H, 0, s.DP[off:], Lk)
				off += x.cnt
			}
			for i := 0; i < nq; i++ {
				r := r0 + i*qb.stride
				t := pl.pos0 + qb.j0 + i*qb.stride
				m := lse[r*heads+h]
				row, drow := s.S[i*Lk:(i+1)*Lk], s.DP[i*Lk:(i+1)*Lk]
				pl.maskRow(t, s.sp, row, s.mask)
				for k := range row {
					row[k] -= m
				}
				num.ExpFastSlice(row, row)
				// δ = Σ P·dP (= da·a in exact arithmetic; this way a lone key
				// gets dS = 0 exactly)
				var delta float32
				for k, ok := range s.mask {
					if !ok {
						row[k], drow[k] = 0, 0
					}
					delta += row[k] * drow[k]
				}
				for k, p := range row {
					drow[k] = p * (drow[k] - delta)
				}
			}
			off = 0
			for k, x := range s.sp {
				beta := float32(1)
				if k == 0 {
					beta = 0
				}
				impl.Sgemm(blas.NoTrans, blas.NoTrans, nq, d, x.cnt, inv, s.DP[off:], Lk, kb[x.row*H:], x.stride*H, beta, dqp, ld)
				impl.Sgemm(blas.Trans, blas.NoTrans, x.cnt, d, nq, inv, s.DP[off:], Lk, qp, ld, 1, dkb[x.row*H:], x.stride*H)
				impl.Sgemm(blas.Trans, blas.NoTrans, x.cnt, d, nq, 1, s.S[off:], Lk, dap, ld, 1, dvb[x.row*H:], x.stride*H)
				off += x.cnt
			}
		}
	})
	for _, t := range ts {
		if t.priv < 0 {
			continue
		}
		for row := 0; row < T; row++ {
			o := (t.b*T+row)*H + t.h*d
			po := row*H + t.h*d
			pk, pv := priv[t.priv][0][po:po+d], priv[t.priv][1][po:po+d]
			for c := 0; c < d; c++ {
				dk[o+c] += pk[c]
				dv[o+c] += pv[c]
			}
		}
	}
	for _, p := range priv {
		num.PutBuf(p[0], p[1])
	}
}
