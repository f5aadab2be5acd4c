package num

import (
	"strings"
	"testing"
)

func TestCoretypeWarning(t *testing.T) {
	feats := []string{"avx2", "fma", "avx512f"}
	if w := coretypeWarning("Haswell", "Haswell", feats); !strings.Contains(w, "OPENBLAS_CORETYPE=Haswell") {
		t.Errorf("forced Haswell on an AVX-512 CPU: %q", w)
	}
	for _, c := range []struct{ env, core string }{{"", "Haswell"}, {"SkylakeX", "SkylakeX"}} {
		if w := coretypeWarning(c.env, c.core, feats); w != "" {
			t.Errorf("env %q core %q: unexpected warning %q", c.env, c.core, w)
		}
	}
	if w := coretypeWarning("Haswell", "Haswell", []string{"avx2"}); w != "" {
		t.Errorf("no AVX-512 on the CPU: unexpected warning %q", w)
	}
}

func TestInfo(t *testing.T) {
	info := Info()
	if info.Backend == "" {
		t.Error("no backend")
	}
	t.Logf("%s; config %q; warning %q", info, info.Config, info.Warning)
}
