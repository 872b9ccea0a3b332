#!/usr/bin/env bash
# Installs, once and idempotently, what fwdb's local stack needs on a Debian
# machine with Rust: the PostgreSQL server binaries (when none are found),
# Python's venv (when missing), and the MongoDB-compatible server `secantusdb`
# in .fwdb/venv (unless a real `mongod` is on PATH). Sourced by up.sh and test.sh.
set -euo pipefail

FWDB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export FWDB_ROOT
SECANTUS_VERSION=0.7.0b3

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "fwdb setup: root is needed to run: $*" >&2; exit 1
  fi
}

apt_install() {
  echo "fwdb setup: installing $* with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

have_pg_server() {
  if [ -n "${FWDB_PG_BIN:-}" ] && [ -x "$FWDB_PG_BIN/postgres" ]; then return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/postgres" ]; then return 0; fi
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

have_pg_server || apt_install postgresql
have_pg_server || { echo "fwdb setup: no PostgreSQL server binaries after installing 'postgresql'; set FWDB_PG_BIN" >&2; exit 1; }

if ! command -v mongod >/dev/null 2>&1 && [ ! -x "$FWDB_ROOT/.fwdb/venv/bin/secantusd-py" ]; then
  command -v python3 >/dev/null 2>&1 || apt_install python3
  mkdir -p "$FWDB_ROOT/.fwdb"
  if ! python3 -m venv "$FWDB_ROOT/.fwdb/venv" >/dev/null 2>&1; then
    rm -rf "$FWDB_ROOT/.fwdb/venv"
    apt_install python3-venv
    python3 -m venv "$FWDB_ROOT/.fwdb/venv"
  fi
  echo "fwdb setup: installing secantusdb $SECANTUS_VERSION (MongoDB-compatible server) into .fwdb/venv" >&2
  "$FWDB_ROOT/.fwdb/venv/bin/pip" install -q --disable-pip-version-check --pre "secantusdb==$SECANTUS_VERSION"
  # The marker the testkit checks (crates/fwdb-testkit/src/mongo.rs), so it does not install again.
  echo "secantusdb==$SECANTUS_VERSION" > "$FWDB_ROOT/.fwdb/venv/.fwdb-installed"
fi

# moto[server]: the S3-compatible server the backup tests store to (PyPI `moto`).
if [ ! -x "$FWDB_ROOT/.fwdb/venv/bin/moto_server" ]; then
  command -v python3 >/dev/null 2>&1 || apt_install python3
  mkdir -p "$FWDB_ROOT/.fwdb"
  if [ ! -x "$FWDB_ROOT/.fwdb/venv/bin/pip" ]; then
    rm -rf "$FWDB_ROOT/.fwdb/venv"
    python3 -m venv "$FWDB_ROOT/.fwdb/venv" >/dev/null 2>&1 || { apt_install python3-venv; python3 -m venv "$FWDB_ROOT/.fwdb/venv"; }
  fi
  echo "fwdb setup: installing moto[server] (S3-compatible test server) into .fwdb/venv" >&2
  "$FWDB_ROOT/.fwdb/venv/bin/pip" install -q --disable-pip-version-check "moto[server]>=5,<6"
fi

# Observability tests: headless Chromium renders the status page; promtool
# (Debian package prometheus) checks deploy/prometheus/fwdb-alerts.yml.
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || apt_install chromium
command -v promtool >/dev/null 2>&1 || apt_install prometheus
