// Package registry lists the stage implementations a host can run in process or
// serve as plugins. Components reach it through an fx value group
// (`group:"components"`), which fx hands over in random order; the registry sorts
// them by kind and name so listings, help texts and cell ids never depend on it.
package registry

import (
	"fmt"
	"sort"
	"strings"

	"go.uber.org/fx"

	"liquidlab/framework/stage"
)

// Component is one implementation of a stage kind.
type Component struct {
	Kind, Name string
	New        func() stage.Stage
}

// Registry is the sorted set of known components.
type Registry struct {
	list []Component
}

// Params are the registry's fx inputs.
type Params struct {
	fx.In
	Components []Component `group:"components"`
}

// New sorts the components by kind and name and refuses duplicates.
func New(p Params) (*Registry, error) { return FromList(p.Components) }

// FromList builds a registry without fx.
func FromList(cs []Component) (*Registry, error) {
	list := append([]Component(nil), cs...)
	sort.Slice(list, func(i, j int) bool {
		if list[i].Kind != list[j].Kind {
			return list[i].Kind < list[j].Kind
		}
		return list[i].Name < list[j].Name
	})
	for i := 1; i < len(list); i++ {
		if list[i].Kind == list[i-1].Kind && list[i].Name == list[i-1].Name {
			return nil, fmt.Errorf("registry: two %s components named %q", list[i].Kind, list[i].Name)
		}
	}
	return &Registry{list: list}, nil
}

// Provide registers a component in the fx value group.
func Provide(c Component) fx.Option {
	return fx.Supply(fx.Annotate(c, fx.ResultTags(`group:"components"`)))
}

// Module provides the *Registry.
var Module = fx.Module("registry", fx.Provide(New))

// List returns the components, sorted.
func (r *Registry) List() []Component { return append([]Component(nil), r.list...) }

// Names returns the component names of a kind, sorted.
func (r *Registry) Names(kind string) []string {
	var out []string
	for _, c := range r.list {
		if c.Kind == kind {
			out = append(out, c.Name)
		}
	}
	return out
}

// New returns a fresh instance of a component.
func (r *Registry) New(kind, name string) (stage.Stage, error) {
	for _, c := range r.list {
		if c.Kind == kind && c.Name == name {
			return c.New(), nil
		}
	}
	names := r.Names(kind)
	if names == nil {
		return nil, fmt.Errorf("unknown stage kind %q (kinds: %s)", kind, strings.Join(stage.Kinds, ", "))
	}
	return nil, fmt.Errorf("no built-in %s implementation %q (built-in: %s; or give a path to a plugin binary)", kind, name, strings.Join(names, ", "))
}
