package odeint

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"liquidlab/framework/stage"
)

// Option names every stage that integrates with this package accepts.
const (
	OptionMethod = "method"
	OptionRTol   = "rtol"
	OptionATol   = "atol"
)

// OptionSpecs describes the solver options (method, rtol, atol) for a stage's
// Describe; methodHelp explains what the stage integrates.
func OptionSpecs(methodHelp string) []stage.OptionSpec {
	tol := strconv.FormatFloat(DefaultTol, 'g', -1, 64)
	return []stage.OptionSpec{
		{Name: OptionMethod, Type: "string", Default: "dopri5", Choices: Methods(), Help: methodHelp},
		{Name: OptionRTol, Type: "float", Default: tol, Help: "relative tolerance of the adaptive methods (bosh3, dopri5)"},
		{Name: OptionATol, Type: "float", Default: tol, Help: "absolute tolerance of the adaptive methods (bosh3, dopri5)"},
	}
}

// ParseOptions reads the solver options from a stage's options: method
// (default dopri5, the seed's), rtol and atol (default DefaultTol, positive and
// finite). Errors name the option and say what is valid.
func ParseOptions(opts map[string]string) (Options, error) {
	o := Options{Method: "dopri5", RTol: DefaultTol, ATol: DefaultTol}
	if v := opts[OptionMethod]; v != "" {
		if !slices.Contains(Methods(), v) {
			return o, fmt.Errorf("option %s = %q is not a known method (valid: %s)", OptionMethod, v, strings.Join(Methods(), ", "))
		}
		o.Method = v
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{OptionRTol, &o.RTol}, {OptionATol, &o.ATol}} {
		v := opts[f.name]
		if v == "" {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || !(x > 0) || math.IsInf(x, 0) {
			return o, fmt.Errorf("option %s = %q must be a positive number", f.name, v)
		}
		*f.dst = x
	}
	return o, nil
}
