#!/usr/bin/env bash
# `npm run sample`: builds and starts the sample app (sample/) on PORT (default 3000), using
# REDIS_URL, or a redis-server of its own on a free local port when REDIS_URL is not set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.build.json
exec node dist/sample/main.js
