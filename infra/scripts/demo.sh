#!/usr/bin/env bash
# demo.sh SPATE_BIN: the demo behind `make run`. It starts a local cluster
# with `spate local up` (a control plane and three SPUs in the background,
# data and logs in .spate-demo/), creates a topic of three partitions,
# produces a few keyed records, consumes them back, describes the topic, and
# stops the cluster again with `spate local down`, deleting the demo's data.
#
# SPATE_DEMO_KEEP=1 leaves the cluster running for you to play with.
# SPATE_DEMO_DIR and SPATE_DEMO_PORT choose the data dir and the control
# plane's port (default 9100). The profile "local" is written to your spate
# config (~/.spate/config.toml, or $SPATE_CONFIG) and made current.
set -euo pipefail

spate=${1:?usage: demo.sh path/to/spate}
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${SPATE_DEMO_DIR:-$root/.spate-demo}
port=${SPATE_DEMO_PORT:-9100}
unset SPATE_SPU SPATE_PROFILE # talk to the demo cluster through its profile

"$spate" local up --spus 3 --data-dir "$dir" --port "$port"
stop() {
  if [ -z "${SPATE_DEMO_KEEP:-}" ]; then
    "$spate" local down --data-dir "$dir" --delete-data # the next run starts afresh
  fi
}
trap stop EXIT

set -x
"$spate" topic describe greetings >/dev/null 2>&1 || # kept from an earlier run?
  "$spate" topic create greetings --partitions 3
printf 'alice:hello from alice\nbob:hello from bob\ncarol:hello from carol\nalice:alice again\n' |
  "$spate" produce greetings --key-separator :
"$spate" consume greetings --all-partitions --beginning --disable-continuous \
  --format '{{partition}}:{{offset}} {{key}}={{value}}'
sleep 1.2 # the SPUs report their offsets with their next heartbeat
"$spate" topic describe greetings
set +x
if [ -n "${SPATE_DEMO_KEEP:-}" ]; then
  echo "The cluster keeps running (data in $dir). Try: $spate consume greetings -B; stop it with: $spate local down --data-dir $dir"
fi
