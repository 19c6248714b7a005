#!/usr/bin/env bash
# `npm run bench [-- section ...]`: set-up, build, run the benchmarks, write bench/results/
# (RESULTS.md, throughput.svg, results.json). Sections: throughput telemetry latency rpc recovery resubscribe cost profile delivery cluster
# (default: all, ~8 minutes on 2 cores). BENCH_QUICK=1: ~1 minute smoke run into bench/results/quick/.
# Every redis-server and worker the run starts is killed on exit, even if node itself dies hard.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
npx tsc -p tsconfig.build.json

PIDFILE="$(mktemp -t nestjs-redis-pubsub-bench.XXXXXX)"
cleanup() {
  # run.js normally cleans up itself; this is the backstop for a node that was killed or crashed.
  # A pid is only killed if it still is one of ours (pids get reused).
  while read -r pid; do
    [[ -n "$pid" && -r /proc/$pid/cmdline ]] || continue
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -Eq 'redis-server|dist/bench/workers/'; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  done <"$PIDFILE"
  rm -f "$PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

BENCH_PIDFILE="$PIDFILE" node dist/bench/run.js "$@"
