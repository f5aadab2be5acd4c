package runner

import (
	"context"
	"io"

	"go.uber.org/fx"

	"liquidlab/framework/registry"
	"liquidlab/framework/results"
)

// Streams are where a run writes: Out for results lines, Log for plugin logs,
// Term for progress (nil when not a terminal).
type Streams struct {
	Out  io.Writer
	Log  io.Writer
	Term io.Writer
}

// LauncherParams are NewLauncher's fx inputs.
type LauncherParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Registry  *registry.Registry
	Streams   Streams
}

// NewLauncher returns a Launcher whose plugin processes are all stopped when the
// fx app stops.
func NewLauncher(p LauncherParams) *Launcher {
	l := &Launcher{Registry: p.Registry, Stderr: p.Streams.Log}
	p.Lifecycle.Append(fx.Hook{OnStop: func(context.Context) error {
		l.CloseAll()
		return nil
	}})
	return l
}

// NewRunner returns a Runner writing under store.
func NewRunner(l *Launcher, store results.Store, s Streams) *Runner {
	return &Runner{Launcher: l, Store: store, Out: s.Out, Term: s.Term}
}

// Module provides the Launcher and the Runner; it needs a *registry.Registry, a
// results.Store and Streams.
var Module = fx.Module("runner", fx.Provide(NewLauncher, NewRunner))
