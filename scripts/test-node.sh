#!/usr/bin/env bash
# `npm run test:node -- 22 24 26 [-- jest args]`: the whole suite (scripts/test.sh) under each given
# Node major, one after the other, with Node binaries from the npm registry (the `node` package,
# run through `npx -p node@<major>`). With no major given: every supported major.
# Prints one closing line per major and exits non-zero if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

majors=()
while [[ $# -gt 0 && $1 != -- ]]; do majors+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
[[ ${#majors[@]} -gt 0 ]] || majors=(22 24 26)

log="$(mktemp -t test-node.XXXXXX.log)"
trap 'rm -f "$log"' EXIT
status=0
results=()
for major in "${majors[@]}"; do
  echo "=== Node $major ==="
  run_status=0
  npx -y -p "node@$major" -- bash scripts/test.sh "$@" 2>&1 | tee "$log" || run_status=$?
  [[ $run_status -eq 0 ]] || status=1
  version=$(grep -m1 '^node v' "$log" | cut -d' ' -f2 || true)
  results+=("node ${version:-$major} (exit $run_status): $(grep '^jest:' "$log" | tail -1 || echo 'no result')")
done
printf '%s\n' "${results[@]}"
exit "$status"
