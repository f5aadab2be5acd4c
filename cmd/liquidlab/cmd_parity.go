package main

import (
	"context"
	"fmt"
	"strings"

	"liquidlab/framework/model"
	"liquidlab/framework/plugin"
	"liquidlab/framework/safetensors"
	"liquidlab/framework/stage"
	"liquidlab/framework/stagefix"
)

func init() {
	register("parity", command{
		summary: "check the Go model against a PyTorch parity fixture (.safetensors)",
		run:     cmdParity,
	})
}

const parityDoc = `parity [flags] FIXTURE.safetensors...

Loads each fixture (parameters, inputs, outputs and gradients written by the
PyTorch reference, docs/SEED_MODEL.md "Parity fixtures"), builds the model
its metadata describes (dimensions, num_flows, share_params, ode_method, rtol,
atol, pad_token_id), runs forward and backward of the fixture's loss
  cross_entropy(logits, input_ids, ignore_index=pad) + 0.01·mean(h) + 0.001·mean(log_det_jacobian)
and prints the maximum absolute and relative error (max|go−torch| / max(max|torch|, 1e-6))
of every output and every gradient, and the ODE solvers' step counts.
Exits with status 1 when any tensor exceeds its tolerance.

A stage fixture (metadata fixture = "stage", ../shared/FIXTURES.md) checks one
component instead: the built-in implementation its metadata names (kind, impl)
is built with its dims and options, run forward and backward on the file's
parameters, inputs and cotangents, and, when the file gives chunks, forward
again chunk by chunk carrying its state. Errors are relative to
max(max|reference|, 1e-3 × the largest |value| of the file's outputs or
gradients).`

func cmdParity(e *env, args []string) error {
	fs := newFlags(e, "parity", parityDoc)
	outTol := fs.Float64("out-tol", 1e-4, "relative tolerance of outputs")
	gradTol := fs.Float64("grad-tol", 1e-3, "relative tolerance of gradients")
	quiet := fs.Bool("q", false, "print only failures and the summary line")
	viaPlugins := fs.Bool("plugins", false, "run the stages as plugin subprocesses (shared memory) instead of in process")
	implFlag := fs.String("impl", "", "KIND=NAME[,…]: run these built-ins instead of the seed's (whole-model fixtures) or the one the metadata names (stage fixtures of that kind), e.g. flows=coupling-graph")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	impls, err := parseImplFlag(*implFlag)
	if err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("parity: no fixture given: %w", errUsage)
	}
	failed := 0
	for _, path := range fs.Args() {
		if raw, err := safetensors.ReadFile(path); err == nil && stagefix.IsStage(raw) {
			ok, err := parityStage(e, path, raw, impls, *viaPlugins, *outTol, *gradTol, *quiet)
			if err != nil {
				return err
			}
			if !ok {
				failed++
			}
			continue
		}
		fx, err := model.LoadFixture(path)
		if err != nil {
			return err
		}
		rep, err := parityOne(fx, impls, *viaPlugins, *outTol, *gradTol)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintf(e.stdout, "== %s  (V=%d D=%d L=%d H=%d F=%d K=%d share=%v %s rtol=%g atol=%g)\n", path,
			fx.Dims.Vocab, fx.Dims.D, fx.Dims.L, fx.Dims.H, fx.Dims.F, fx.Dims.K, fx.Share, fx.Method, fx.RTol, fx.ATol)
		if !*quiet || !rep.OK() {
			rep.Print(e.stdout)
		}
		fmt.Fprintf(e.stdout, "solver steps: embedding ODE nfe %g accepted %g rejected %g; liquid cell nfe %g accepted %g rejected %g\n",
			rep.Stats["ode.nfe"], rep.Stats["ode.accepted"], rep.Stats["ode.rejected"],
			rep.Stats["liquid.nfe"], rep.Stats["liquid.accepted"], rep.Stats["liquid.rejected"])
		if rep.OK() {
			fmt.Fprintf(e.stdout, "PASS %s: %d outputs, %d gradients within tolerance\n", path, len(rep.Outputs), len(rep.Grads))
		} else {
			failed++
			fmt.Fprintf(e.stdout, "FAIL %s\n", path)
		}
	}
	if failed > 0 {
		return fmt.Errorf("parity: %d of %d fixtures out of tolerance", failed, fs.NArg())
	}
	return nil
}

// parseImplFlag parses -impl's KIND=NAME list into names by kind, checking
// each names a built-in.
func parseImplFlag(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		kind, name, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("parity: -impl %q: want KIND=NAME: %w", kv, errUsage)
		}
		if _, err := builtinStage(kind, name); err != nil {
			return nil, fmt.Errorf("parity: -impl %q: %w", kv, err)
		}
		out[kind] = name
	}
	return out, nil
}

// parityOne runs one fixture, on plugin processes that live only as long as it.
func parityOne(fx *model.Fixture, impls map[string]string, viaPlugins bool, outTol, gradTol float64) (*model.ParityReport, error) {
	names := map[string]string{}
	for kind, name := range defaultNames {
		names[kind] = name
	}
	for kind, name := range impls {
		names[kind] = name
	}
	stages := map[string]stage.Stage{}
	for kind, name := range names {
		st, err := builtinStage(kind, name)
		if err != nil {
			return nil, err
		}
		stages[kind] = st
	}
	if viaPlugins {
		var closeAll func()
		var err error
		if stages, closeAll, err = launchBuiltins(names); err != nil {
			return nil, err
		}
		defer closeAll()
	}
	return model.RunParity(context.Background(), fx, stages, outTol, gradTol)
}

// launchBuiltins starts the named built-ins (by kind) as plugin subprocesses.
func launchBuiltins(names map[string]string) (map[string]stage.Stage, func(), error) {
	out := map[string]stage.Stage{}
	var clients []*plugin.Client
	closeAll := func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}
	for kind, name := range names {
		o := plugin.Builtin(kind, name)
		o.LendOutputs = true // the model's stages hand their outputs on without copies
		c, err := plugin.Launch(context.Background(), o)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		clients = append(clients, c)
		out[kind] = c
	}
	return out, closeAll, nil
}

// parityStage checks one stage fixture; ok is false when a tensor is beyond
// its tolerance.
func parityStage(e *env, path string, raw *safetensors.File, impls map[string]string, viaPlugins bool, outTol, gradTol float64, quiet bool) (bool, error) {
	fx, err := stagefix.FromFile(raw)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	if name, ok := impls[fx.Kind]; ok {
		fx.Impl = name
	}
	fx.Path = path
	var st stage.Stage
	if viaPlugins {
		if _, err := builtinStage(fx.Kind, fx.Impl); err != nil {
			return false, fmt.Errorf("%s: metadata impl: %w", path, err)
		}
		c, err := plugin.Launch(context.Background(), plugin.Builtin(fx.Kind, fx.Impl))
		if err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		defer c.Close()
		st = c
	} else if st, err = builtinStage(fx.Kind, fx.Impl); err != nil {
		return false, fmt.Errorf("%s: metadata impl: %w", path, err)
	}
	rep, err := stagefix.Run(context.Background(), fx, st, outTol, gradTol)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(e.stdout, "== %s  (stage %s/%s options %v dims %v B=%d S=%d chunks %v)\n", path, fx.Kind, fx.Impl, fx.Options, fx.Dims, fx.B, fx.S, fx.Chunks)
	if !quiet || !rep.OK() {
		rep.Print(e.stdout)
	}
	if rep.OK() {
		fmt.Fprintf(e.stdout, "PASS %s: %d tensors within tolerance\n", path, len(rep.Rows))
		return true, nil
	}
	fmt.Fprintf(e.stdout, "FAIL %s\n", path)
	return false, nil
}
