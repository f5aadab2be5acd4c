package causal

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"liquidlab/framework/num"
)

// The lsh kernel works in Reformer's sorted order: for every round, bucket and
// bucket-chunk holding queries of this chunk, the chunk's queries and the keys
// of the chunk and the previous one are gathered into small dense matrices and
// multiplied by sgemm ([≤C, ≤2C] score blocks). A key can be a candidate of
// the same query in several rounds; each occurrence's score is lowered by
// log m(t,s), m the number of rounds in which s is a candidate of t, so the
// occurrences of a pair add up to exactly one exp(score) and the rounds,
// merged by an online softmax, give the softmax over the union A(t). A token
// with no candidate in any round attends to itself alone.

// lshBlock is one bucket-chunk of one round: member indices [klo,qhi) of the
// bucket's list are keys, [qlo,qhi) queries (those at chunk positions), and
// query member i sees keys klo..i−1.
type lshBlock struct {
	round, bucket int
	klo, qlo, qhi int
}

func (pl *lshPlanner) blocks(b, h int) []lshBlock {
	C := pl.o.chunk
	var out []lshBlock
	for r, rd := range pl.rounds[b*pl.o.heads+h] {
		for bk, m := range rd.members {
			// first member at a chunk position
			first := len(m)
			for lo, hi := 0, len(m); lo < hi; {
				mid := (lo + hi) / 2
				if int(m[mid]) >= pl.pos0 {
					hi = mid
				} else {
					lo = mid + 1
				}
				first = lo
			}
			for c := first / C; c*C < len(m); c++ {
				qlo, qhi := max(c*C, first), min((c+1)*C, len(m))
				out = append(out, lshBlock{r, bk, max(0, (c-1)*C), qlo, qhi})
			}
		}
	}
	return out
}

// mult is m(t,s): in how many rounds s is a candidate of t (s < t).
func (pl *lshPlanner) mult(rs []lshRound, t, s int) int {
	C, n := pl.o.chunk, 0
	for _, rd := range rs {
		if rd.bucket[s] == rd.bucket[t] && int(rd.rank[s]) >= (int(rd.rank[t])/C-1)*C {
			n++
		}
	}
	return n
}

type lshScratch struct {
	qg, kg, vg, dag, dqg, dkg, dvg []float32
	S, DP                          []float32
	logm                           []float32
}

// lshScores gathers a block and computes its adjusted scores S [nq,nk]:
// q·k/√d − log m, −Inf where the key is not earlier in the bucket. It returns
// nq, nk and the member list.
func (pl *lshPlanner) lshScores(s *lshScratch, blk lshBlock, b, h int, q, kc, vc []float32, Sc, T, H, d int, inv float32) (int, int, []int32) {
	rs := pl.rounds[b*pl.o.heads+h]
	m := rs[blk.round].members[blk.bucket]
	nq, nk := blk.qhi-blk.qlo, blk.qhi-1-blk.klo
	if nk <= 0 {
		return nq, 0, m
	}
	s.qg, s.kg, s.vg = grow(s.qg, nq*d), grow(s.kg, nk*d), grow(s.vg, nk*d)
	for i := 0; i < nq; i++ {
		r := b*Sc + int(m[blk.qlo+i]) - pl.pos0
		copy(s.qg[i*d:(i+1)*d], q[r*H+h*d:r*H+h*d+d])
	}
	for k := 0; k < nk; k++ {
		row := (b*T+int(m[blk.klo+k]))*H + h*d
		copy(s.kg[k*d:(k+1)*d], kc[row:row+d])
		copy(s.vg[k*d:(k+1)*d], vc[row:row+d])
	}
	s.S = grow(s.S, nq*nk)
	impl := blas32.Implementation()
	impl.Sgemm(blas.NoTrans, blas.Trans, nq, nk, d, inv, s.qg, d, s.kg, d, 0, s.S, nk)
	ninf := float32(math.Inf(-1))
	for i := 0; i < nq; i++ {
		t := int(m[blk.qlo+i])
		row := s.S[i*nk : (i+1)*nk]
		lim := blk.qlo + i - blk.klo // keys 0..lim−1 are earlier
		for k := range row {
			if k >= lim {
				row[k] = ninf
				continue
			}
			if c := pl.mult(rs, t, int(m[blk.klo+k])); c > 1 {
				row[k] -= float32(math.Log(float64(c)))
			}
		}
	}
	return nq, nk, m
}

// lshFwd fills a [B·Sc,H] and lse [B·Sc·heads]; it returns the (query, key)
// occurrences allowed and computed.
func lshFwd(pl *lshPlanner, q, kc, vc []float32, B, Sc, T, H, heads int, a, lse []float32) (allowed, computed int64) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	var ts []task
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			ts = append(ts, task{b: b, h: h, step: 1, priv: -1})
		}
	}
	al, co := make([]int64, len(ts)), make([]int64, len(ts))
	run(ts, float64(B*Sc*H)*float64(4*pl.o.chunk*pl.o.nHashes), func(_ int, tk task) {
		b, h := tk.b, tk.h
		s := &lshScratch{}
		M, L := make([]float32, Sc), make([]float32, Sc)
		for i := range M {
			M[i] = float32(math.Inf(-1))
		}
		O := make([]float32, Sc*d)
		ob := []float32(nil)
		var na, nc int64
		for _, blk := range pl.blocks(b, h) {
			nq, nk, m := pl.lshScores(s, blk, b, h, q, kc, vc, Sc, T, H, d, inv)
			if nk == 0 {
				continue
			}
			nc += int64(nq * nk)
			ob = grow(ob, nq*d)
			for i := 0; i < nq; i++ {
				row := s.S[i*nk : (i+1)*nk]
				mb := float32(math.Inf(-1))
				for _, v := range row {
					mb = max(mb, v)
				}
				if math.IsInf(float64(mb), -1) {
					clear(row)
					continue
				}
				var lb float32
				for k, v := range row {
					if math.IsInf(float64(v), -1) {
						row[k] = 0
						continue
					}
					p := num.ExpFast(v - mb)
					row[k] = p
					lb += p
					na++
				}
				// merge into the query's running (M, L, O); row is rescaled so
				// that the block's sgemm adds straight into O.
				j := int(m[blk.qlo+i]) - pl.pos0
				nm := max(M[j], mb)
				if nm > M[j] && L[j] > 0 {
					f := num.ExpFast(M[j] - nm)
					L[j] *= f
					for c := range O[j*d : (j+1)*d] {
						O[j*d+c] *= f
					}
				}
				f := num.ExpFast(mb - nm)
				for k := range row {
					row[k] *= f
				}
				L[j] += lb * f
				M[j] = nm
			}
			impl.Sgemm(blas.NoTrans, blas.NoTrans, nq, d, nk, 1, s.S, nk, s.vg, d, 0, ob, d)
			for i := 0; i < nq; i++ {
				j := int(m[blk.qlo+i]) - pl.pos0
				for c, v := range ob[i*d : (i+1)*d] {
					O[j*d+c] += v
				}
			}
		}
		for j := 0; j < Sc; j++ {
			r := b*Sc + j
			av := a[r*H+h*d : r*H+h*d+d]
			if L[j] == 0 { // no candidate in any round: itself
				row := (b*T+pl.pos0+j)*H + h*d
				copy(av, vc[row:row+d])
				var sc float32
				for c, x := range q[r*H+h*d : r*H+h*d+d] {
					sc += x * kc[row+c]
				}
				lse[r*heads+h] = sc * inv
				na++
				continue
			}
			rl := 1 / L[j]
			for c := range av {
				av[c] = O[j*d+c] * rl
			}
			lse[r*heads+h] = M[j] + float32(math.Log(float64(L[j])))
		}
		al[tk.b*heads+tk.h], co[tk.b*heads+tk.h] = na, nc
	})
	for i := range al {
		allowed += al[i]
		computed += co[i]
	}
	return allowed, computed
}

// lshBwd is lshFwd's backward: dq [B·Sc,H] overwritten, dk, dv [B,T,H] added
// to.
func lshBwd(pl *lshPlanner, q, kc, vc, a, lse, da []float32, B, Sc, T, H, heads int, dq, dk, dv []float32) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	var ts []task
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			ts = append(ts, task{b: b, h: h, step: 1, priv: -1})
		}
	}
	for b := 0; b < B; b++ {
		for j := 0; j < Sc; j++ {
			clear(dq[(b*Sc+j)*H : (b*Sc+j+1)*H])
		}
	}
	run(ts, 2.5*float64(B*Sc*H)*float64(4*pl.o.chunk*pl.o.nHashes), func(_ int, tk task) {
		b, h := tk.b, tk.h
		s := &lshScratch{}
		delta := make([]float32, Sc)
		seen := make([]bool, Sc)
		for j := 0; j < Sc; j++ {
			r := b*Sc + j
			var x float32
			for c, v := range a[r*H+h*d : r*H+h*d+d] {
				x += v * da[r*H+h*d+c]
			}
			delta[j] = x
		}
		for _, blk := range pl.blocks(b, h) {
			nq, nk, m := pl.lshScores(s, blk, b, h, q, kc, vc, Sc, T, H, d, inv)
			if nk == 0 {
				continue
			}
			s.dag, s.DP = grow(s.dag, nq*d), grow(s.DP, nq*nk)
			for i := 0; i < nq; i++ {
				r := b*Sc + int(m[blk.qlo+i]) - pl.pos0
				copy(s.dag[i*d:(i+1)*d], da[r*H+h*d:r*H+h*d+d])
			}
			impl.Sgemm(blas.NoTrans, blas.Trans, nq, nk, d, 1, s.dag, d, s.vg, d, 0, s.DP, nk)
			for i := 0; i < nq; i++ {
				j := int(m[blk.qlo+i]) - pl.pos0
				r := b*Sc + j
				lm := lse[r*heads+h]
				row, drow := s.S[i*nk:(i+1)*nk], s.DP[i*nk:(i+1)*nk]
				for k, v := range row {
					if math.IsInf(float64(v), -1) {
						row[k], drow[k] = 0, 0
						continue
					}
					p := num.ExpFast(v - lm)
					row[k] = p
					drow[k] = p * (drow[k] - delta[j])
					seen[j] = true
				}
			}
			s.dqg, s.dkg, s.dvg = grow(s.dqg, nq*d), grow(s.dkg, nk*d), grow(s.dvg, nk*d)
			impl.Sgemm(blas.NoTrans, blas.NoTrans, nq, d, nk, inv, s.DP, nk, s.kg, d, 0, s.dqg, d)
			impl.Sgemm(blas.Trans, blas.NoTrans, nk, d, nq, inv, s.DP, nk, s.qg, d, 0, s.dkg, d)
			impl.Sgemm(blas.Trans, blas.NoTrans, nk, d, nq, 1, s.S, nk, s.dag, d, 0, s.dvg, d)
			for i := 0; i < nq; i++ {
				r := b*Sc + int(m[blk.qlo+i]) - pl.pos0
				dst := dq[r*H+h*d : r*H+h*d+d]
				for c, v := range s.dqg[i*d : (i+1)*d] {
					dst[c] += v
				}
			}
			for k := 0; k < nk; k++ {
				row := (b*T+int(m[blk.klo+k]))*H + h*d
				dkr, dvr := dk[row:row+d], dv[row:row+d]
				for c := 0; c < d; c++ {
					dkr[c] += s.dkg[k*d+c]
					dvr[c] += s.dvg[k*d+c]
				}
			}
		}
		for j := 0; j < Sc; j++ { // tokens that attend to themselves alone
			if seen[j] {
				continue
			}
			r := b*Sc + j
			row := (b*T+pl.pos0+j)*H + h*d
			for c := 0; c < d; c++ {
				dv[row+c] += da[r*H+h*d+c]
			}
		}
	})
}
