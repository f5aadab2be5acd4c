package registry

import (
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"liquidlab/framework/stage"
)

func TestSortedThroughFx(t *testing.T) {
	var r *Registry
	app := fxtest.New(t,
		Provide(Component{Kind: "ode", Name: "b"}),
		Provide(Component{Kind: "flows", Name: "z"}),
		Provide(Component{Kind: "ode", Name: "a"}),
		Module,
		fx.Populate(&r),
	)
	app.RequireStart().RequireStop()
	got := ""
	for _, c := range r.List() {
		got += c.Kind + "/" + c.Name + " "
	}
	if got != "flows/z ode/a ode/b " {
		t.Errorf("order %q", got)
	}
	if _, err := r.New("ode", "c"); err == nil {
		t.Error("unknown name accepted")
	}
	if _, err := r.New(stage.KindLiquid, "x"); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestDuplicate(t *testing.T) {
	if _, err := FromList([]Component{{Kind: "a", Name: "x"}, {Kind: "a", Name: "x"}}); err == nil {
		t.Error("duplicate accepted")
	}
}
