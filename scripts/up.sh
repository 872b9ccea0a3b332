#!/usr/bin/env bash
# README command 1: set up, build, and run fwdb's main job (`fwdb up`).
# With no fwdb.toml and no FWDB__ variables it starts the local stack itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$FWDB_ROOT"
cargo build -q -p fwdb-cli
exec "$FWDB_ROOT/target/debug/fwdb" up "$@"
