#!/usr/bin/env bash
# The style gate, run first by scripts/test.sh (and so by CI): formatting
# (rustfmt.toml) and clippy over every crate and target with every warning
# denied (the lints are declared once in Cargo.toml's [workspace.lints]).
# No cycle between the library's top-level modules (scripts/module_cycles.py).
# A slip fails here in a minute, not after the whole suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in fmt clippy; do
  if ! cargo "$tool" --version >/dev/null 2>&1; then
    echo "fwdb check: cargo $tool is missing; install it with: rustup component add ${tool/fmt/rustfmt}" >&2
    exit 1
  fi
done
if ! cargo fmt --all -- --check; then
  echo "fwdb check: formatting differs (above); run: cargo fmt --all" >&2
  exit 1
fi
if ! python3 scripts/module_cycles.py; then
  echo "fwdb check: the library's modules depend on each other in a cycle (above); see: python3 scripts/module_cycles.py --graph" >&2
  exit 1
fi
cargo clippy --workspace --all-targets -- -D warnings
echo "fwdb check: fmt, module cycles and clippy clean"
