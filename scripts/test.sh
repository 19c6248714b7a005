#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, type check, then Jest (native ESM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit

summary="$(mktemp -t jest-summary.XXXXXX.json)"
trap 'rm -f "$summary"' EXIT
status=0
# --forceExit: a safety net so CI can never hang after the results (open handles are checked with --detectOpenHandles).
NODE_OPTIONS="${NODE_OPTIONS:-} --experimental-vm-modules" npx jest --runInBand --forceExit --json --outputFile="$summary" "$@" || status=$?
# One plain closing line, whatever reads the log.
node -e 'const r = require(process.argv[1]); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`)' "$summary" || true
exit "$status"
