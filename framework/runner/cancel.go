package runner

import (
	"context"
	"fmt"

	"liquidlab/framework/config"
	"liquidlab/framework/data"
	"liquidlab/framework/model"
	"liquidlab/framework/tokenizer"
)

// abandonable runs f and returns its result, or ctx's error as soon as ctx is
// done: f then runs on unobserved until it returns, and its result is
// dropped. It is for long work that cannot be interrupted (tokenising a large
// text in one call) on the way to the process's exit: the interrupted run
// ends without waiting for it.
func abandonable[T any](ctx context.Context, what string, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// loadCorpusCtx is loadCorpus that returns when ctx is cancelled (reading and
// tokenising up to data.max_bytes of text can take minutes).
func loadCorpusCtx(ctx context.Context, e *config.Experiment, tok *tokenizer.Tokenizer) (*data.Corpus, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return abandonable(ctx, "preparing the data", func() (*data.Corpus, error) { return loadCorpus(e, tok) })
}

// watch returns a consumer of logits that ends the run with ctx's error
// before each block once ctx is done. The head of a long chunk is many blocks
// (at V = 32000, 4096 tokens are four blocks of 1024 rows, each three large
// matrix products when training), and Run checks ctx only between chunks.
func watch(ctx context.Context, c model.Consumer) model.Consumer {
	return func(b *model.Block) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return c(b)
	}
}
