#!/usr/bin/env bash
# Installs what liquidlab needs on Debian/Ubuntu (OpenBLAS) and builds ./bin/liquidlab
# and the standalone plugin binaries under ./bin/plugins/.
set -euo pipefail
cd "$(dirname "$0")"
if ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so'; then
	echo "setup: installing libopenblas-dev" >&2
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libopenblas-dev
fi
command -v go >/dev/null || { echo "setup: Go is not installed (https://go.dev/dl/)" >&2; exit 1; }
mkdir -p bin/plugins
echo "setup: building bin/liquidlab" >&2
go build -o bin/liquidlab ./cmd/liquidlab
for kind in flows ode attention liquid; do
	go build -o "bin/plugins/$kind" "./plugins/$kind"
done
# the graph-stage example (examples/gatedrec), run by experiments/graph-example.toml
go build -o bin/plugins/gated-recurrence ./examples/gatedrec/plugin
echo "setup: done (bin/liquidlab, bin/plugins/{flows,ode,attention,liquid,gated-recurrence})" >&2
