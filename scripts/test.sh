#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, type check, then Jest (native ESM).
# Runs under the Node on PATH when package.json's "engines" allows it; otherwise (Node 20 is end of
# life) under the oldest supported major, whose binary comes from the npm registry (`npx -p node@22`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

oldest_supported=22
if ! node -e 'process.exit(require("semver").satisfies(process.version, require("./package.json").engines.node) ? 0 : 1)'; then
  if [[ -n ${NESTJS_REDIS_PUBSUB_REEXEC:-} ]]; then
    echo "Node $(node --version) from npm is not supported either: giving up" >&2
    exit 1
  fi
  echo "Node $(node --version) is not supported (package.json engines): running the suite under Node $oldest_supported from the npm registry" >&2
  NESTJS_REDIS_PUBSUB_REEXEC=1 exec npx -y -p "node@$oldest_supported" -- bash scripts/test.sh "$@"
fi
echo "node $(node --version)"

npx tsc -p tsconfig.json --noEmit

summary="$(mktemp -t jest-summary.XXXXXX.json)"
trap 'rm -f "$summary"' EXIT
status=0
# --forceExit: a safety net so CI can never hang after the results (open handles are checked with --detectOpenHandles).
NODE_OPTIONS="${NODE_OPTIONS:-} --experimental-vm-modules" npx jest --runInBand --forceExit --json --outputFile="$summary" "$@" || status=$?
# One plain closing line, whatever reads the log.
node -e 'const r = require(process.argv[1]); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`)' "$summary" || true
exit "$status"
