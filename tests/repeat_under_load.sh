#!/usr/bin/env bash
# tests/repeat_under_load.sh: runs one integration test N times in a row while
# a busy loop runs on every core (the load that once made the failover test
# fail), and prints "passes: P/N". Build first (scripts/dev build).
#   tests/repeat_under_load.sh [N] [TEST]     default: 20 runs of test_failover.py
# Environment: BUILD_DIR (default build). Logs of each run: $TMPDIR/swisd-repeat-*/runK.log
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
n=${1:-20}
test=${2:-tests/test_failover.py}
build=${BUILD_DIR:-build}
logs=$(mktemp -d "${TMPDIR:-/tmp}/swisd-repeat-XXXXXX")
hogs=()
for _ in $(seq 1 "$(nproc)"); do
    (while :; do :; done) &
    hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
pass=0
for k in $(seq 1 "$n"); do
    start=$(date +%s)
    if SWISD_BUILD="$here/$build" python3 "$test" "$build/cli/swisd" "$build/broker/swisd-broker" \
            "$build/stage/swisd-stage" "$build/gateway/swisd-gateway" >"$logs/run$k.log" 2>&1; then
        pass=$((pass + 1)); r=PASS
    else
        r=FAIL
    fi
    echo "run $k: $r $(( $(date +%s) - start )) s; $(tail -1 "$logs/run$k.log")"
done
echo "passes: $pass/$n (logs in $logs)"
[ "$pass" -eq "$n" ]
