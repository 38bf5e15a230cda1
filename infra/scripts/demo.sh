#!/usr/bin/env bash
# demo.sh SPATE_BIN: the demo behind `make run`. It starts a local SPU in the
# background (data in .spate-demo/), creates a topic of two partitions,
# produces a few records, consumes them back, and stops the SPU again.
# SPATE_DEMO_KEEP=1 leaves the SPU running for you to play with.
set -euo pipefail

spate=${1:?usage: demo.sh path/to/spate}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${SPATE_DEMO_DIR:-$root/.spate-demo}
port=${SPATE_DEMO_PORT:-9010}
export SPATE_SPU="http://127.0.0.1:$port"
mkdir -p "$dir"

if curl -fsS "$SPATE_SPU/healthz" >/dev/null 2>&1; then
  echo "An SPU already answers at $SPATE_SPU; using it."
  pid=
else
  echo "==> starting an SPU on 127.0.0.1:$port (data in $dir, log in $dir/spu.log)"
  "$spate" spu serve --addr "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/spu.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$SPATE_SPU/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { echo "the SPU exited; its log:"; cat "$dir/spu.log"; exit 1; }
    sleep 0.1
  done
fi
stop() {
  if [ -n "${pid:-}" ] && [ -z "${SPATE_DEMO_KEEP:-}" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}
trap stop EXIT

set -x
"$spate" partition create greetings --partitions 2
"$spate" partition list
printf 'alice:hello from alice\nbob:hello from bob\ncarol:hello from carol\nalice:alice again\n' |
  "$spate" produce greetings --key-separator :
"$spate" consume greetings --all-partitions --beginning --disable-continuous \
  --format '{{partition}}:{{offset}} {{key}}={{value}}'
set +x
if [ -n "${SPATE_DEMO_KEEP:-}" ] && [ -n "${pid:-}" ]; then
  echo "The SPU keeps running (pid $pid) at $SPATE_SPU. Try: $spate consume greetings -B"
fi
