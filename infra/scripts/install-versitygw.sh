#!/usr/bin/env bash
# install-versitygw.sh installs the Versity S3 Gateway (versitygw), the real
# S3-compatible server that the tiered-storage object-store tests and
# benchmarks run against (see tiered-storage/objstore/s3/s3test).
#
# It is idempotent: versitygw is built with `go install` into the repository's
# .cache/bin only when that exact version is missing, so a second run costs
# nothing. The binary's path is printed on stdout (the last line).
#
#   SPATE_VERSITYGW_BIN   where to install (default <repo>/.cache/bin)
#   GO                    the go command (default go)
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
PKG=github.com/versity/versitygw/cmd/versitygw

GO=${GO:-go}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${SPATE_VERSITYGW_BIN:-$REPO/.cache/bin}
mkdir -p "$BIN"

command -v "$GO" >/dev/null || { echo "install-versitygw: '$GO' not found; install Go 1.26 or set GO" >&2; exit 1; }

if [[ ! -x "$BIN/versitygw" || "$(cat "$BIN/versitygw.version" 2>/dev/null)" != "$VERSITYGW_VERSION" ]]; then
	echo "install-versitygw: building $PKG@$VERSITYGW_VERSION (about 2 minutes on 2 cores)" >&2
	# Build outside this module so its go.mod is neither read nor changed.
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	if ! (cd "$tmp" && GOBIN="$BIN" GOFLAGS=-mod=mod GOWORK=off "$GO" install "$PKG@$VERSITYGW_VERSION" >&2); then
		echo "install-versitygw: go install $PKG@$VERSITYGW_VERSION failed; is the Go module proxy reachable (GOPROXY=$("$GO" env GOPROXY))?" >&2
		exit 1
	fi
	echo "$VERSITYGW_VERSION" >"$BIN/versitygw.version"
fi

echo "$BIN/versitygw"
