package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"liquidlab/framework/model"
)

// A cancelled context ends abandonable at once, while f still runs; without a
// cancellation it returns f's result.
func TestAbandonable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	defer close(release)
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	t0 := time.Now()
	_, err := abandonable(ctx, "work", func() (int, error) { <-release; return 1, nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("returned %v after the cancellation", d)
	}
	v, err := abandonable(context.Background(), "work", func() (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Errorf("got %d, %v", v, err)
	}
}

// watch ends a run at the next block of logits once the context is done, and
// passes blocks on before.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	c := watch(ctx, func(*model.Block) error { n++; return nil })
	if err := c(&model.Block{}); err != nil || n != 1 {
		t.Fatalf("before the cancellation: %v, %d blocks", err, n)
	}
	cancel()
	if err := c(&model.Block{}); !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("after the cancellation: %v, %d blocks", err, n)
	}
}
