// Package plugin carries the stage contract (package stage) across a process
// boundary: a stage implementation runs in a hashicorp/go-plugin subprocess and
// the host talks to it over gRPC, with tensors in shared memory.
//
// # Plugin side
//
// A plugin's main calls Serve(kind, impl); see plugins/flows/main.go. The
// handshake (Handshake, one value for both sides; ProtocolVersion) is fixed here; a
// plugin built against another protocol version is refused at start with a
// message that says which versions each side speaks. Logs are hclog JSON on
// stderr. The plugin exits when its host dies, even by SIGKILL: the host sets
// SIGTERM as parent-death signal, and Serve also exits when its parent changes;
// either way it removes the session's shared memory first. When the host asks
// it to stop, Serve refuses new calls, waits (briefly) for the running ones and
// only then unmaps the session, so no call ever reads memory that is gone.
//
// # Host side
//
// Launch(ctx, Options) starts a plugin binary (Builtin returns Options that run
// the current executable as `liquidlab plugin serve <kind> <name>`), verifies an
// optional sha256 pin, negotiates the protocol and checks the kind. The *Client
// is a stage.Stage; Close stops the process (in order: the plugin is asked to
// exit, then its process group is killed) and removes its shared memory. A
// plugin runs in a process group of its own, so the terminal's signals reach
// only the host, and stopping a plugin also ends every process it started;
// no wait for a plugin to stop is unbounded, and cancelling Launch's context
// ends a start at once. A crashing plugin's goroutine dump is kept out of the
// host's log and stderr stream; errors quote the crash report's first lines.
//
// Failures are sentences naming the plugin (kind/name at path) and what to do:
// a pin mismatch, a protocol mismatch, a crash mid-call (with the exit status
// and the last lines of the plugin's stderr), a call running past CallTimeout
// (the plugin is killed), or an error of the implementation (*StageError). After
// a crash or a kill every further call fails at once; launch a new Client.
//
// # Transports and shared memory
//
// With TransportShm (the default) tensors never travel inside messages: each
// Client has a session directory under /dev/shm (os.TempDir() where /dev/shm is
// absent) holding mmapped region files, and messages carry descriptors (region,
// offset, shape, dtype float32, 64-byte aligned, machine byte order). The
// directory is named liquidlab-<pid>-<start time>-<random> after the host
// process and locked by it, so Launch can remove the sessions that dead hosts
// left behind without ever touching a live one (see session.go).
//
//   - Who allocates: the host creates regions ("h-N") and writes a request's
//     params, inputs and state into one free region, offering the rest of it
//     for the reply. The plugin writes the reply there, or, when it does not
//     fit, into a region it creates ("p-N") that the host then adopts. The host
//     sizes regions from the largest reply seen per method, keeps up to four
//     free ones for reuse and retires others (file removed; the plugin unmaps
//     it once no call uses it). Regions never grow in place: a bigger one is a
//     new region with a new name.
//   - Aliasing, plugin side: tensors handed to the implementation alias the
//     request region (no copy). When Forward returns a handle, the host pins
//     that region until Backward or Release of the handle, so an implementation
//     may keep its inputs (and params) under a handle as it may in process.
//     Nothing else may be kept past a call.
//   - Aliasing, host side: results are copied out of shared memory; the caller
//     owns them. Parameters are rewritten on every call (they are small next to
//     activations, and a region may be pinned by an earlier handle).
//   - Zero-copy hand-off (Options.LendOutputs, which the runner sets): Forward's
//     outputs (not its state, which is copied) stay where the plugin wrote
//     them, lent to the caller until that Client's next Forward returns, and
//     Backward's gradients until its next Backward returns. An input, state or
//     output gradient that lies in
//     a lent region goes to any Client of the process as a descriptor, not a
//     copy: to the region's own Client by name, to another through a hard link
//     in its session directory (the same tmpfs pages; one link per region,
//     kept while the region lives). The call pins the region, and so does the
//     handle it returns, exactly as for its own request region. So e goes from
//     the ode plugin to the attention plugin without passing through the
//     host's memory. See arena.go.
//   - A call that fails without the plugin finishing it (timeout, cancelled
//     context, broken connection) retires its region instead of reusing it.
//   - The doorbell (Linux): Forward and Backward messages themselves go
//     through a page of the session directory, the two processes waking each
//     other with futexes, instead of over gRPC (a trivial call after 200 ms
//     idle: 0.3–0.8 ms against 0.8–1.8 ms). Same messages, same handlers;
//     gRPC carries everything else and any call the doorbell cannot take.
//     See doorbell.go; LIQUIDLAB_PLUGIN_DOORBELL=0 turns it off.
//
// # Threads
//
// A plugin process runs its stage's parallel sections on worker threads
// pinned one per CPU (num.PinWorkers), held by the Forward and Backward
// handlers, with GOMAXPROCS one above the workers (unless GOMAXPROCS is set);
// LIQUIDLAB_PLUGIN_PIN=0 turns that off. See framework/num/team.go for the
// measurements behind it.
//
// TransportBytes puts tensors into the messages (gRPC limits raised to
// MaxMessageSize on both sides); it is the fallback when the plugin cannot map
// the host's directory. Results do not depend on the transport.
//
// Nil tensors in a Map are not sent (to a stage, nil and missing are alike).
//
// # Layout
//
// As in go-plugin's own gRPC example, the generated wire types live in their
// own package, framework/plugin/proto (stage.proto and the code protoc makes
// from it; `go generate ./framework/plugin/proto`). This package holds the
// hand-written parts: plugin.go (the one Handshake value and the go-plugin
// plugin), serve.go and server.go (the plugin side), launch.go (starting and
// stopping a plugin process), client.go (the host's stage.Stage methods),
// arena.go, shm.go, session.go and doorbell.go (shared memory), errors.go (turning failures into
// sentences) and convert.go (stage types to and from wire messages). Linux is
// the supported platform (mmap, parent-death signal).
package plugin
