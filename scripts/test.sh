#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, type check, then Jest (native ESM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
# --forceExit: a safety net so CI can never hang after the results (open handles are checked with --detectOpenHandles).
NODE_OPTIONS="${NODE_OPTIONS:-} --experimental-vm-modules" npx jest --runInBand --forceExit "$@"
