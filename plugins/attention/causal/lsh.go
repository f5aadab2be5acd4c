package causal

import (
	"math"
	"math/rand/v2"

	"liquidlab/framework/num"
)

// lshPlanner plans the lsh pattern (Reformer-style, causal, streamable).
//
// Keys are shared with queries: per head, k_s = q_s/‖q_s‖. Round r (of
// n_hashes) hashes every position by a random rotation R_r [d, buckets/2]
// drawn from the seed, head and round: bucket_r(s) = argmax [k_s·R_r, −k_s·R_r]
// (angular LSH; the same for q_s and k_s). Sorting by bucket and then position
// puts each bucket's tokens in a run; the run is cut into chunks of `chunk`
// tokens counted from the bucket's first token, so that the chunk of a token
// depends only on the tokens before it (causal and streamable). Token t sees,
// in each round, the tokens s ≤ t of its bucket in its chunk and the previous
// one; A(t) is the union over rounds, without t itself unless nothing else is
// left (with shared keys q_t·k_t = ‖q_t‖ dominates, as in Reformer). The
// softmax runs over the union, so the result is exactly dense attention masked
// by A. Cost: hashing O(T·d·buckets·n_hashes), attention O(T·2·chunk·n_hashes·d);
// a per-token cost independent of the length.
type lshPlanner struct {
	o    *options
	pos0 int
	T    int
	// per (b,h): per round, the bucket and the rank within it of every
	// position, and the positions of every bucket in order.
	rounds [][]lshRound
}

type lshRound struct {
	bucket, rank []int32
	members      [][]int32
}

// lshRotation returns R [d, buckets/2] for head h and round r.
func lshRotation(o *options, h, r int) []float32 {
	g := rand.New(rand.NewPCG(o.seed^0x9e3779b97f4a7c15, uint64(h)<<16|uint64(r)))
	R := make([]float32, o.d*(o.buckets/2))
	for i := range R {
		R[i] = float32(g.NormFloat64())
	}
	return R
}

// newLSHPlanner hashes the T key rows of kc [B,T,H] (normalised keys; row =
// position, the lsh cache holds every position).
func newLSHPlanner(o *options, kc []float32, B, T, pos0 int) *lshPlanner {
	H, d, nb := o.H, o.d, o.buckets
	half := nb / 2
	pl := &lshPlanner{o: o, pos0: pos0, T: T, rounds: make([][]lshRound, B*o.heads)}
	proj := make([]float32, T*half)
	for b := 0; b < B; b++ {
		for h := 0; h < o.heads; h++ {
			rs := make([]lshRound, o.nHashes)
			for r := range rs {
				R := lshRotation(o, h, r)
				num.Gemm(false, false, T, half, d, 1, kc[b*T*H+h*d:], H, R, half, 0, proj, half)
				rd := lshRound{bucket: make([]int32, T), rank: make([]int32, T), members: make([][]int32, nb)}
				for s := 0; s < T; s++ {
					row := proj[s*half : (s+1)*half]
					best, bi := float32(math.Inf(-1)), 0
					for i, v := range row {
						if v > best {
							best, bi = v, i
						}
						if -v > best {
							best, bi = -v, half+i
						}
					}
					rd.bucket[s] = int32(bi)
					rd.rank[s] = int32(len(rd.members[bi]))
					rd.members[bi] = append(rd.members[bi], int32(s))
				}
				rs[r] = rd
			}
			pl.rounds[b*o.heads+h] = rs
		}
	}
	return pl
}

// normalizeKeys writes k = q/‖q‖ per head for N rows of q [N,H] into k (row
// stride H) and the norms into nrm [N·heads].
func normalizeKeys(k, q, nrm []float32, N, H, heads int) {
	d := H / heads
	for r := 0; r < N; r++ {
		for h := 0; h < heads; h++ {
			qv := q[r*H+h*d : r*H+h*d+d]
			var s float64
			for _, v := range qv {
				s += float64(v) * float64(v)
			}
			n := float32(math.Sqrt(s))
			nrm[r*heads+h] = n
			inv := float32(0)
			if n > 0 {
				inv = 1 / n
			}
			kv := k[r*H+h*d : r*H+h*d+d]
			for c, v := range qv {
				kv[c] = v * inv
			}
		}
	}
}

// normalizeBackward adds to dq the gradient through k = q/‖q‖:
// dq += (dk − k(k·dk))/‖q‖.
func normalizeBackward(dq, dk, k, nrm []float32, N, H, heads int) {
	d := H / heads
	for r := 0; r < N; r++ {
		for h := 0; h < heads; h++ {
			n := nrm[r*heads+h]
			if n == 0 {
				continue
			}
			o := r*H + h*d
			kv, gk := k[o:o+d], dk[o:o+d]
			var kd float32
			for c := range kv {
				kd += kv[c] * gk[c]
			}
			for c := range kv {
				dq[o+c] += (gk[c] - kv[c]*kd) / n
			}
		}
	}
}
