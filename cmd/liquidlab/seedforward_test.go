package main

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/stage"
)

// The model's own tests are in framework/model; this benchmark stays here
// because its plugin mode runs the test binary as the plugin (see TestMain).

// BenchmarkSeedForward4096 measures the seed's forward pass in process
// (Mode=inprocess) and with every stage in a plugin subprocess (Mode=plugin), so
//
//	go test ./cmd/liquidlab -run X -bench SeedForward4096 -count 8 | benchstat -col /mode -
//
// gives the cost of the process boundary. See benchSeedForward for the setup.
func BenchmarkSeedForward4096(b *testing.B) {
	b.Run("mode=inprocess", func(b *testing.B) { benchSeedForward(b, defaultBuiltins()) })
	b.Run("mode=plugin", func(b *testing.B) {
		st, closeAll, err := launchBuiltins(defaultNames)
		if err != nil {
			b.Fatal(err)
		}
		defer closeAll()
		benchSeedForward(b, st)
	})
}

// benchSeedForward is the seed's forward pass at the README's
// recommended configuration (V=32000, D=512, L=128, H=256, F=128, K=4, dopri5)
// on one sequence of 4096 tokens, on the given stages; the logits of every position are
// produced block by block and dropped. Compare with
// /usr/bin/python3 ../shared/reference/seed_torch.py bench 4096 dopri5.
func benchSeedForward(b *testing.B, stages map[string]stage.Stage) {
	d := model.Dims{Vocab: 32000, D: 512, L: 128, H: 256, F: 128, K: 4}
	m, err := model.New(context.Background(), d, stages, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Init(7); err != nil {
		b.Fatal(err)
	}
	bt := randomBatch(d, 1, 4096, 1)
	drop := func(*model.Block) error { return nil }
	// One untimed batch first: fresh plugin processes (and fresh stages) pay
	// for their first allocations and shared-memory regions on their first call,
	// which would otherwise count against the plugin mode in every sample.
	if _, err := m.Run(context.Background(), bt, model.RunOptions{}, drop); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Run(context.Background(), bt, model.RunOptions{}, drop); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(4096*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// randomBatch is b sequences of s random tokens with increasing timestamps in [0, 1].
func randomBatch(d model.Dims, b, s int, seed uint64) *model.Batch {
	rng := rand.New(rand.NewPCG(seed, 1))
	bt := &model.Batch{B: b, S: s, IDs: make([]int64, b*s), Timestamps: make([]float32, b*s), TSpan: []float32{0, 0.25, 0.5, 0.75, 1}}
	for i := range bt.IDs {
		bt.IDs[i] = rng.Int64N(int64(d.Vocab))
	}
	for i := 0; i < b; i++ {
		acc := float32(0)
		for j := 0; j < s; j++ {
			acc += rng.Float32()
			bt.Timestamps[i*s+j] = acc
		}
		for j := 0; j < s; j++ {
			bt.Timestamps[i*s+j] /= acc
		}
	}
	return bt
}
