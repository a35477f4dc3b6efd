#!/usr/bin/env bash
# valgrind memcheck over a short run of the multi-mutator stress test (verify mode on, then off).
# The arena is shrunk to 1 GiB (GCCORE_ARENA) so valgrind's address-space manager accepts it.
# Each of the four variants runs 5 s: under valgrind, 2 s gave the span-marking verify-on
# variant 3 cycles, below the test's floor of 5.
# Result goes in docs/verification.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 1; }
bin=$(cargo test -p gc-core --test stress --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*stress[^"]*"' | head -1 | cut -d'"' -f4)
log=target/valgrind.log
GCCORE_ARENA=1GiB GCCORE_STRESS_SECS="${GCCORE_STRESS_SECS:-5}" \
  valgrind --tool=memcheck --error-exitcode=99 --errors-for-leak-kinds=definite \
  --leak-check=full "$bin" --test-threads=1 --nocapture >"$log" 2>&1 && rc=0 || rc=$?
grep -E "^stress|test result|ERROR SUMMARY|definitely lost|Invalid (read|write)" "$log" | cut -c1-200
echo "valgrind exit code: $rc (full log: $log)"
exit $rc
