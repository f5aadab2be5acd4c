package odefunc

import (
	"os"
	"runtime"
	"testing"

	"liquidlab/framework/num"
)

func TestMain(m *testing.M) {
	if os.Getenv("TMP_TEAM") == "1" {
		num.PinWorkers()
		runtime.GOMAXPROCS(3)
		runtime.LockOSThread()
		release := num.PinCaller()
		defer release()
	}
	os.Exit(m.Run())
}
