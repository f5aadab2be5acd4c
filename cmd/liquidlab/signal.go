package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/dig"
)

const fxStopTimeout = 15 * time.Second

// signalContext is cancelled by SIGINT or SIGTERM, so a run stops cleanly (its
// plugins are stopped, the current cell is recorded as failed).
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// unwrapFx returns the root cause of an fx construction error, so a bad TOML file
// is reported as itself rather than as a dependency-injection failure.
func unwrapFx(err error) error {
	if root := dig.RootCause(err); root != nil {
		return root
	}
	return errors.Unwrap(err)
}
