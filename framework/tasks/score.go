package tasks

import (
	"fmt"
	"math"
)

// Score is what the logits of a sample got right.
type Score struct {
	Groups, Correct int     // target groups, and those whose every target's argmax is right
	Targets         int     // targets scored
	NLL             float64 // summed −log p(target), nats
}

// Add adds o to s.
func (s *Score) Add(o Score) {
	s.Groups += o.Groups
	s.Correct += o.Correct
	s.Targets += o.Targets
	s.NLL += o.NLL
}

// Acc is the fraction of groups right (NaN with no groups).
func (s Score) Acc() float64 {
	if s.Groups == 0 {
		return math.NaN()
	}
	return float64(s.Correct) / float64(s.Groups)
}

// Scorer scores one sample from its rows of logits, given in any order and in
// any blocks; only the rows just before a target are looked at.
type Scorer struct {
	s      *Sample
	at     map[int]int // row position → target index
	wrong  []bool      // per group
	seen   []bool      // per target
	nll    float64
	scored int
}

// NewScorer returns a scorer for s.
func NewScorer(s *Sample) *Scorer {
	sc := &Scorer{s: s, at: make(map[int]int, len(s.Targets)), wrong: make([]bool, s.Groups), seen: make([]bool, len(s.Targets))}
	for i, t := range s.Targets {
		sc.at[t.Pos-1] = i
	}
	return sc
}

// Rows marks, in a slice of n positions, the positions whose logits Row
// reads (the position before each target), for model.RunOptions.Rows.
func (sc *Scorer) Rows(n int) []bool {
	read := make([]bool, n)
	for p := range sc.at {
		if p >= 0 && p < n {
			read[p] = true
		}
	}
	return read
}

// Row scores the logits of position pos (one row of V values).
func (sc *Scorer) Row(pos int, logits []float32) error {
	i, ok := sc.at[pos]
	if !ok {
		return nil
	}
	t := sc.s.Targets[i]
	if int(t.ID) >= len(logits) || t.ID < 0 {
		return fmt.Errorf("tasks: target id %d outside the %d logits", t.ID, len(logits))
	}
	best := 0
	mx := logits[0]
	for j, x := range logits {
		if x > mx {
			best, mx = j, x
		}
	}
	var z float64
	for _, x := range logits {
		z += math.Exp(float64(x - mx))
	}
	sc.nll += math.Log(z) - float64(logits[t.ID]-mx)
	// A tie with the target counts as wrong unless the target is the first
	// maximum: argmax picks one token.
	if int64(best) != t.ID {
		sc.wrong[t.Group] = true
	}
	if !sc.seen[i] {
		sc.seen[i] = true
		sc.scored++
	}
	return nil
}

// Score returns the result; it is an error when a target's row was never seen.
func (sc *Scorer) Score() (Score, error) {
	if sc.scored != len(sc.s.Targets) {
		return Score{}, fmt.Errorf("tasks: %d of %d target rows were scored", sc.scored, len(sc.s.Targets))
	}
	out := Score{Groups: sc.s.Groups, Targets: sc.scored, NLL: sc.nll}
	for _, w := range sc.wrong {
		if !w {
			out.Correct++
		}
	}
	return out, nil
}
