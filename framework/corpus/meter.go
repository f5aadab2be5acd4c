package corpus

import (
	"fmt"
	"math"
)

// Bucket is a range of token positions [Lo, Hi) of a document.
type Bucket struct {
	Lo, Hi int
	Name   string
}

// Buckets are the position ranges loss is reported by.
var Buckets = []Bucket{{0, 1024, "0-1k"}, {1024, 4096, "1k-4k"}, {4096, 16384, "4k-16k"}, {16384, 32768, "16k-32k"}}

// BitsPerByte converts a total loss in nats over text of the given UTF-8
// bytes to bits per byte (NaN for no bytes).
func BitsPerByte(nats float64, bytes int64) float64 {
	if bytes <= 0 {
		return math.NaN()
	}
	return nats / math.Ln2 / float64(bytes)
}

// Meter accumulates next-token loss over documents: in total and by the
// position of the predicted token.
type Meter struct {
	// ByteLen is the UTF-8 length of each token id's text (its exact bytes).
	ByteLen []int
	Nats    float64
	Bytes   int64
	Tokens  int
	// Per bucket (index as Buckets): summed nats and tokens; positions past
	// the last bucket count only in the total.
	BucketNats   []float64
	BucketTokens []int
}

// NewMeter returns a meter for a vocabulary whose token i is byteLen[i] bytes.
func NewMeter(byteLen []int) *Meter {
	return &Meter{ByteLen: byteLen, BucketNats: make([]float64, len(Buckets)), BucketTokens: make([]int, len(Buckets))}
}

// Row adds the loss of predicting next, the token at position pos+1, from the
// logits of position pos.
func (m *Meter) Row(pos int, logits []float32, next int64) error {
	if next < 0 || int(next) >= len(logits) || int(next) >= len(m.ByteLen) {
		return fmt.Errorf("corpus: token %d outside the %d logits", next, len(logits))
	}
	mx := logits[0]
	for _, x := range logits {
		mx = max(mx, x)
	}
	var z float64
	for _, x := range logits {
		z += math.Exp(float64(x - mx))
	}
	nll := math.Log(z) - float64(logits[next]-mx)
	m.Nats += nll
	m.Bytes += int64(m.ByteLen[next])
	m.Tokens++
	for i, b := range Buckets {
		if p := pos + 1; p >= b.Lo && p < b.Hi {
			m.BucketNats[i] += nll
			m.BucketTokens[i]++
		}
	}
	return nil
}

// BPB is the meter's bits per byte.
func (m *Meter) BPB() float64 { return BitsPerByte(m.Nats, m.Bytes) }

// BucketLoss is the mean loss in nats per token of bucket i (NaN when empty).
func (m *Meter) BucketLoss(i int) float64 {
	if m.BucketTokens[i] == 0 {
		return math.NaN()
	}
	return m.BucketNats[i] / float64(m.BucketTokens[i])
}
