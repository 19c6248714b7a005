#!/usr/bin/env bash
# One-time set-up shared by `npm test`, `npm run sample` and `npm run bench`:
# installs npm dependencies (npm ci) and Debian's redis-server/redis-sentinel when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# `npm ci`: exactly the committed lock, as CI and users install it. The stamp skips it while
# package.json and package-lock.json are unchanged, so repeated runs are fast.
stamp=node_modules/.nestjs-redis-pubsub-setup
wanted=$(cat package.json package-lock.json | cksum)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  npm ci --no-audit --no-fund
  echo "$wanted" > "$stamp"
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-sentinel >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server and redis-sentinel" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq redis-server redis-sentinel >/dev/null
  # Debian's package starts a system-wide server on 6379; nothing here uses it.
  ($SUDO service redis-server stop || $SUDO systemctl stop redis-server || true) >/dev/null 2>&1
fi
