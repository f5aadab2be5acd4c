//go:build !linux

package plugin

import (
	"sync/atomic"
	"time"
)

// No doorbell off Linux: every call goes over gRPC.
const futexSupported = false

func futexWait(*atomic.Uint32, uint32, time.Duration) {}

func futexWake(*atomic.Uint32) {}
