package plugin

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"liquidlab/framework/num"
	"liquidlab/framework/stage"
)

// Serve serves impl as a stage of the given kind and returns when the host
// closes the plugin, once the calls still running have ended (an
// implementation that ignores its cancelled context is abandoned after a short
// bound, its shared memory left mapped until the process exits). It is what a plugin's main calls; run directly (not by a
// host) the binary prints that it is a plugin and exits with status 1.
//
// The process exits when its host dies, even by SIGKILL: hosts start plugins
// with a parent-death signal, and Serve also exits when its parent changes.
// Logs go to stderr as JSON (hclog), which the host shows as its own log lines;
// LIQUIDLAB_PLUGIN_LOG_LEVEL (trace, debug, info, warn, error) sets the level.
func Serve(kind string, impl stage.Stage) {
	serve(kind, impl, ProtocolVersion)
}

func serve(kind string, impl stage.Stage, version int) {
	level := hclog.LevelFromString(os.Getenv("LIQUIDLAB_PLUGIN_LOG_LEVEL"))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "liquidlab-" + kind,
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	srv := &grpcServer{kind: kind, Impl: impl, log: logger}

	// The stage's parallel sections run on threads pinned one per CPU
	// (num.PinWorkers; the handlers hold the team with num.PinCaller), with
	// one P more than workers so that the Go scheduler does not retake a P
	// from a long cgo call and wake another thread to run it. See num's
	// team.go for why; LIQUIDLAB_PLUGIN_PIN=0 turns it off.
	if os.Getenv("LIQUIDLAB_PLUGIN_PIN") != "0" {
		n, err := num.PinWorkers()
		if n > 1 && os.Getenv("GOMAXPROCS") == "" {
			runtime.GOMAXPROCS(n + 1)
		}
		if err != nil {
			logger.Warn("worker threads not pinned", "err", err)
		} else {
			logger.Debug("worker threads pinned", "cpus", n, "gomaxprocs", runtime.GOMAXPROCS(0))
		}
	}

	// LIQUIDLAB_PLUGIN_CPUPROFILE=DIR writes a CPU profile of this plugin to
	// DIR/<kind>-<pid>.prof, flushed when the plugin is stopped.
	stopProfile := func() {}
	if dir := os.Getenv("LIQUIDLAB_PLUGIN_CPUPROFILE"); dir != "" {
		if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.prof", kind, os.Getpid()))); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
			}
		}
	}
	// LIQUIDLAB_PLUGIN_TRACE=DIR writes a Go execution trace of this plugin to
	// DIR/<kind>-<pid>.trace (go tool trace), flushed when it is stopped:
	// which goroutine ran on which thread, cgo calls, scheduler latency.
	if dir := os.Getenv("LIQUIDLAB_PLUGIN_TRACE"); dir != "" {
		if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.trace", kind, os.Getpid()))); err == nil {
			if trace.Start(f) == nil {
				prev := stopProfile
				stopProfile = func() { prev(); trace.Stop(); f.Close() }
			}
		}
	}
	var once sync.Once
	die := func(why string) {
		once.Do(func() {
			stopProfile()
			// Remove first: with the host gone, writing to stderr may raise
			// SIGPIPE and end the process on the spot.
			srv.removeSession()
			logger.Warn("exiting", "reason", why)
			os.Exit(1)
		})
	}
	// The host starts us with SIGTERM as parent-death signal. SIGHUP (a
	// closed terminal) would otherwise end the process without removing the
	// session's shared memory. SIGINT is ignored (go-plugin does that): the
	// host stops its plugins itself, in order, when it is interrupted.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		name := "SIGTERM"
		if <-sig == syscall.SIGHUP {
			name = "SIGHUP"
		}
		die(name + " (the host exited or asked the plugin to stop)")
	}()
	// Belt and braces: the parent-death signal follows the thread that started
	// us, and hosts other than ours may not set it.
	ppid := os.Getppid()
	go func() {
		for {
			if os.Getppid() != ppid {
				die("the host process exited")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(version, kind, &StagePlugin{Impl: impl, server: srv}),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
			return grpc.NewServer(opts...)
		},
		Logger: logger,
	})
	stopProfile()
	if os.Getppid() != ppid {
		srv.removeSession()
	}
	srv.closeSession()
}
