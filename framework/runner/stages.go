package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"liquidlab/framework/config"
	"liquidlab/framework/plugin"
	"liquidlab/framework/registry"
	"liquidlab/framework/results"
	"liquidlab/framework/stage"
)

// Stages are the resolved stage implementations of one cell.
type Stages struct {
	Map     map[string]stage.Stage
	Descs   map[string]*stage.Description // as each stage described itself
	Plugins []results.PluginInfo
	clients []*plugin.Client
	l       *Launcher
}

// PIDs returns the plugin processes' ids.
func (s *Stages) PIDs() []int {
	var out []int
	for _, c := range s.clients {
		out = append(out, c.PID())
	}
	return out
}

// Close stops every plugin process.
func (s *Stages) Close() {
	for _, c := range s.clients {
		_ = c.Close()
		if s.l != nil {
			s.l.track(c, false)
		}
	}
	s.clients = nil
}

// concurrentCells marks the context of a run whose cells run side by side
// (more than one job).
type concurrentCells struct{}

// Launcher starts stage implementations.
type Launcher struct {
	Registry *registry.Registry
	Stderr   io.Writer // plugin logs; nil discards

	mu     sync.Mutex
	hashes map[string]string
	live   map[*plugin.Client]bool
}

// CloseAll stops every plugin process this launcher started that is still
// running; the fx module calls it on stop so no plugin outlives the host.
func (l *Launcher) CloseAll() {
	l.mu.Lock()
	live := l.live
	l.live = nil
	l.mu.Unlock()
	for c := range live {
		_ = c.Close()
	}
}

func (l *Launcher) track(c *plugin.Client, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live == nil {
		l.live = map[*plugin.Client]bool{}
	}
	if on {
		l.live[c] = true
	} else {
		delete(l.live, c)
	}
}

// Resolve starts (or instantiates) the four stages of an experiment.
func (l *Launcher) Resolve(ctx context.Context, e *config.Experiment) (*Stages, error) {
	s := &Stages{Map: map[string]stage.Stage{}, Descs: map[string]*stage.Description{}, l: l}
	for _, kind := range stage.Kinds {
		comp := e.Components[kind]
		info := results.PluginInfo{Kind: kind, Impl: comp.Impl}
		var st stage.Stage
		switch {
		case e.Run.Mode == config.ModeInProcess && comp.IsPath():
			s.Close()
			return nil, fmt.Errorf("%s component %q is a plugin binary; run.mode = \"inprocess\" runs built-in components only: set run.mode = \"plugin\"", kind, comp.Impl)
		case e.Run.Mode == config.ModeInProcess:
			var err error
			if st, err = l.Registry.New(kind, comp.Impl); err != nil {
				s.Close()
				return nil, err
			}
			info.Path = "(in process)"
			if self, err := os.Executable(); err == nil {
				// Provenance: the binary that holds the component.
				info.SHA256, _ = l.hash(self)
			}
		default:
			var o plugin.Options
			if comp.IsPath() {
				o = plugin.Options{Kind: kind, Name: comp.Impl, Path: comp.Impl, SHA256: comp.SHA256}
			} else {
				if _, err := l.Registry.New(kind, comp.Impl); err != nil {
					s.Close()
					return nil, err
				}
				o = plugin.Builtin(kind, comp.Impl)
			}
			o.CallTimeout = e.Run.CallTimeout
			o.Stderr = l.Stderr
			// The model calls each stage once per chunk: its outputs may
			// stay in shared memory and go on to the next stage uncopied.
			o.LendOutputs = true
			if ctx.Value(concurrentCells{}) != nil {
				// Cells run side by side: plugins pinning their threads to the
				// same CPUs and spinning between parts would take turns on
				// them (a 10-cell grid with two jobs: 55 s against 36 s).
				o.Env = append(o.Env, "LIQUIDLAB_PLUGIN_PIN=0")
			}
			c, err := plugin.Launch(ctx, o)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.clients = append(s.clients, c)
			l.track(c, true)
			st = c
			info.Path = o.Path
			if info.SHA256, err = l.hash(o.Path); err != nil {
				s.Close()
				return nil, err
			}
		}
		d, err := st.Describe(ctx, e.StageConfig(kind))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s component %q: %w", kind, comp.Impl, err)
		}
		info.Impl, info.Version = d.Name, d.Version
		s.Map[kind] = st
		s.Descs[kind] = d
		s.Plugins = append(s.Plugins, info)
	}
	return s, nil
}

func (l *Launcher) hash(path string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.hashes[path]; ok {
		return h, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hh := sha256.New()
	if _, err := io.Copy(hh, f); err != nil {
		return "", err
	}
	if l.hashes == nil {
		l.hashes = map[string]string{}
	}
	l.hashes[path] = hex.EncodeToString(hh.Sum(nil))
	return l.hashes[path], nil
}

// Checksums names each component of an experiment with the sha256 of the
// binary that implements it (this executable for built-ins), without starting
// anything: "kind:impl:sha256" per stage kind, in pipeline order.
func (l *Launcher) Checksums(e *config.Experiment) ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kind := range stage.Kinds {
		comp := e.Components[kind]
		path := self
		if comp.IsPath() {
			path = comp.Impl
		}
		h, err := l.hash(path)
		if err != nil {
			return nil, fmt.Errorf("%s component %q: %w", kind, comp.Impl, err)
		}
		out = append(out, kind+":"+comp.Impl+":"+h)
	}
	return out, nil
}

// Identities names each component of an experiment for its cell id, in
// pipeline order, without starting a plugin: a built-in component by
// "kind:impl:version" (its stage.Description's version), so a rebuild of
// liquidlab that leaves a component's version alone keeps every cell id; a
// plugin given by path by "kind:path:sha256" of its binary. The binary's
// sha256 of a built-in stays in the provenance (plugins.json), not in the id.
func (l *Launcher) Identities(ctx context.Context, e *config.Experiment) ([]string, error) {
	var out []string
	for _, kind := range stage.Kinds {
		comp := e.Components[kind]
		if comp.IsPath() {
			h, err := l.hash(comp.Impl)
			if err != nil {
				return nil, fmt.Errorf("%s component %q: %w", kind, comp.Impl, err)
			}
			out = append(out, kind+":"+comp.Impl+":"+h)
			continue
		}
		st, err := l.Registry.New(kind, comp.Impl)
		if err != nil {
			return nil, err
		}
		d, err := st.Describe(ctx, e.StageConfig(kind))
		if err != nil {
			return nil, fmt.Errorf("%s component %q: %w", kind, comp.Impl, err)
		}
		if d.Version == "" {
			return nil, fmt.Errorf("%s component %q has no version in its description: built-in components are identified by name and version", kind, comp.Impl)
		}
		out = append(out, kind+":"+comp.Impl+":version "+d.Version)
	}
	return out, nil
}

// Describer returns a config.Describer that asks built-in components in process
// and plugin binaries by starting them once.
func (l *Launcher) Describer(ctx context.Context, e *config.Experiment) config.Describer {
	return func(kind, impl string, options map[string]string) (*stage.Description, error) {
		cfg := e.StageConfig(kind)
		cfg.Options = options
		if cfg.Options == nil {
			cfg.Options = map[string]string{}
		}
		comp := config.Component{Impl: impl}
		if !comp.IsPath() {
			st, err := l.Registry.New(kind, impl)
			if err != nil {
				return nil, err
			}
			return st.Describe(ctx, cfg)
		}
		o := plugin.Options{Kind: kind, Name: impl, Path: impl, SHA256: e.Components[kind].SHA256, Stderr: l.Stderr}
		c, err := plugin.Launch(ctx, o)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.Describe(ctx, cfg)
	}
}
