package runner

import (
	"strings"
	"testing"
)

func TestParseMemAvailable(t *testing.T) {
	in := "MemTotal:       24601096 kB\nMemFree:         1234 kB\nMemAvailable:   22845112 kB\nBuffers: 1 kB\n"
	if got, want := parseMemAvailable(strings.NewReader(in)), int64(22845112)<<10; got != want {
		t.Errorf("got %d, want %d", got, want)
	}
	if got := parseMemAvailable(strings.NewReader("MemTotal: 5 kB\n")); got != 0 {
		t.Errorf("without MemAvailable: %d", got)
	}
}
