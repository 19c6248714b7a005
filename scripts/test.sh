#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up, type check, then Jest (native ESM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
NODE_OPTIONS="${NODE_OPTIONS:-} --experimental-vm-modules" npx jest --runInBand "$@"
