#!/usr/bin/env bash
# README command 2: set up, build, and run the whole test suite (what CI runs).
# Tests start their own PostgreSQL and MongoDB servers on free ports; none
# may be left running afterwards, which the last step checks.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$FWDB_ROOT"
# The style gate first: it fails in a minute where the suite takes fifteen.
scripts/check.sh
start=$(date +%s)
# Integration tests wait on servers far more than on the CPU: run more at once than there are cores.
cargo test --workspace --exclude fwdb-bench --no-fail-fast -- --test-threads="${FWDB_TEST_THREADS:-6}" "$@"
# Every PostgreSQL or MongoDB-compatible server still running, except the
# machine's own cluster. Servers told to stop may take a few seconds to exit
# (secantusdb needs about 3 s after SIGTERM), so wait up to 15 s before judging.
servers() { pgrep -af 'bin/postgres -D|secantusd|mongod ' | grep -v '/var/lib/postgresql/' | grep -v pgrep || true; }
for _ in $(seq 1 30); do
  leftover=$(servers)
  [ -z "$leftover" ] && break
  sleep 0.5
done
if [ -n "$leftover" ]; then
  echo "error: servers of the test stacks are still running after the tests:" >&2
  echo "$leftover" >&2
  exit 1
fi
echo "test suite finished in $(( $(date +%s) - start )) s; no server left running"
