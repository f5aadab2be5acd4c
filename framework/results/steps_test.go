package results

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestStepsRoundTrip(t *testing.T) {
	c := Cell{Dir: t.TempDir()}
	w, err := c.CreateSteps()
	if err != nil {
		t.Fatal(err)
	}
	vl := 1.25
	w.SetRepeat(1)
	w.Write(StepRecord{Step: 1, Loss: 2.5, LR: 1e-4, GradNorm: Num(math.Inf(1)), TokensPerS: 100, ElapsedS: 0.5})
	w.SetRepeat(2)
	w.Write(StepRecord{Step: 1, Loss: Num(math.NaN()), ValidLoss: &vl})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSteps(c.StepsPath())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Repeat != 1 || got[1].Repeat != 2 || got[0].Loss != 2.5 ||
		!math.IsInf(float64(got[0].GradNorm), 1) || !math.IsNaN(float64(got[1].Loss)) ||
		got[1].ValidLoss == nil || *got[1].ValidLoss != 1.25 || got[0].ValidLoss != nil {
		t.Errorf("round trip: %+v", got)
	}
}

func TestStepsTruncatedLastLine(t *testing.T) {
	recs, err := readSteps(strings.NewReader("{\"repeat\":1,\"step\":1,\"loss\":2}\n{\"repeat\":1,\"st"), "x")
	if err != nil || len(recs) != 1 {
		t.Errorf("truncated last line: %v, %d records; want it ignored", err, len(recs))
	}
	_, err = readSteps(strings.NewReader("{\"step\":1}\nnot json\n{\"step\":3}\n"), filepath.Join("d", StepsFile))
	if err == nil || !strings.Contains(err.Error(), StepsFile+":2") {
		t.Errorf("malformed middle line: %v, want an error naming line 2", err)
	}
}
