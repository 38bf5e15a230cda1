#!/usr/bin/env bash
# install-bench-tools.sh installs the benchmark peers that `make bench` runs
# Spate against: nats-server (JetStream) and the nats CLI (`nats bench`).
#
# It is idempotent: each tool is built with `go install` into a cache folder
# only when that exact version is missing, so a second run costs nothing.
# The folder is printed on stdout (the last line), for callers that need it.
#
#   SPATE_TOOLS_BIN   where to install (default ${XDG_CACHE_HOME:-$HOME/.cache}/spate/bin)
#   GO                the go command (default go)
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2
NATS_CLI_VERSION=v0.5.1

GO=${GO:-go}
BIN=${SPATE_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/spate/bin}
mkdir -p "$BIN"

command -v "$GO" >/dev/null || { echo "install-bench-tools: '$GO' not found; install Go 1.26 or set GO" >&2; exit 1; }

# install NAME VERSION PACKAGE: go install PACKAGE@VERSION into $BIN as NAME,
# unless $BIN/NAME.version already records VERSION and the binary exists.
install() {
	local name=$1 version=$2 pkg=$3
	if [[ -x "$BIN/$name" && "$(cat "$BIN/$name.version" 2>/dev/null)" == "$version" ]]; then
		return
	fi
	echo "install-bench-tools: building $pkg@$version (a few minutes on 2 cores)" >&2
	# Run outside this module so its go.mod is neither read nor changed.
	local tmp
	tmp=$(mktemp -d)
	if ! (cd "$tmp" && GOBIN="$BIN" GOFLAGS=-mod=mod GOWORK=off "$GO" install "$pkg@$version" >&2); then
		rm -rf "$tmp"
		echo "install-bench-tools: go install $pkg@$version failed; is the Go module proxy reachable (GOPROXY=$("$GO" env GOPROXY))?" >&2
		exit 1
	fi
	rm -rf "$tmp"
	echo "$version" >"$BIN/$name.version"
}

install nats-server "$NATS_SERVER_VERSION" github.com/nats-io/nats-server/v2
install nats "$NATS_CLI_VERSION" github.com/nats-io/natscli/nats

echo "$BIN"
