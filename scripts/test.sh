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

node_modules/.bin/tsc -p tsconfig.json --noEmit

# No --forceExit: every test closes what it opens, so Jest exits by itself (a hang is a bug to fix;
# `--detectOpenHandles` finds it). The preload drops only Node's VM-modules ExperimentalWarning.
# The closing line `jest: N passed, N failed` comes from scripts/jest-closing-line.cjs.
NODE_OPTIONS="${NODE_OPTIONS:-} --experimental-vm-modules --require ./scripts/quiet-vm-modules-warning.cjs" \
  exec node_modules/.bin/jest --runInBand "$@"
