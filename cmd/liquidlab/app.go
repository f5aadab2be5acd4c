package main

import (
	"context"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"liquidlab/framework/config"
	"liquidlab/framework/registry"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
)

// experimentArgs are what the config module reads the experiment from.
type experimentArgs struct {
	Path      string
	Overrides []string
}

// configModule provides the experiment named on the command line.
var configModule = fx.Module("config", fx.Provide(func(a experimentArgs) (*config.Experiment, error) {
	return config.Load(a.Path, a.Overrides)
}))

// componentsModule registers the built-in components and provides the registry.
func componentsModule() fx.Option {
	opts := []fx.Option{registry.Module}
	for _, c := range builtinComponents {
		opts = append(opts, registry.Provide(c))
	}
	return fx.Module("components", opts...)
}

// appOptions is the whole host: config, components, runner, result store.
func appOptions(e *env, a experimentArgs, resultsDir string, populate ...any) []fx.Option {
	var term io.Writer
	if f, ok := e.stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		term = e.stderr
	}
	return []fx.Option{
		fx.WithLogger(func() fxevent.Logger { return fxevent.NopLogger }),
		fx.Supply(a, results.Store{Root: resultsDir}, runner.Streams{Out: e.stdout, Log: e.stderr, Term: term}),
		configModule,
		componentsModule(),
		runner.Module,
		fx.Populate(populate...),
	}
}

// withApp builds and starts the fx app, runs fn, and stops the app (which stops
// every plugin process), whatever fn returns.
func withApp(e *env, a experimentArgs, resultsDir string, fn func(ctx context.Context, exp *config.Experiment, r *runner.Runner) error) error {
	var exp *config.Experiment
	var r *runner.Runner
	app := fx.New(appOptions(e, a, resultsDir, &exp, &r)...)
	if err := app.Err(); err != nil {
		return unwrapFx(err)
	}
	ctx, cancel := signalContext()
	defer cancel()
	if err := app.Start(ctx); err != nil {
		return err
	}
	runErr := fn(ctx, exp, r)
	stopCtx, stop := context.WithTimeout(context.Background(), fxStopTimeout)
	defer stop()
	if err := app.Stop(stopCtx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
