//! The testkit's error type. Every message says what went wrong *and* what to
//! do about it, because the reader is usually someone whose test suite or
//! `fwdb dev up` just failed on a machine they did not set up.

use std::path::PathBuf;

pub type Result<T, E = TestkitError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error(
        "PostgreSQL server binaries not found (looked in: {searched}). Install the server with \
         `sudo apt-get install postgresql` (Debian/Ubuntu), or set FWDB_PG_BIN to the folder that holds \
         postgres, initdb, pg_ctl, pg_basebackup and psql"
    )]
    PgBinariesNotFound { searched: String },

    #[error(
        "PostgreSQL {found} found in {}, but fwdb needs 15 or newer: install a newer server \
         (`sudo apt-get install postgresql`) or set FWDB_PG_BIN to a newer bin folder",
        dir.display()
    )]
    PgTooOld { found: u32, dir: PathBuf },

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("could not run {program}: {source}. Is it installed and executable?")]
    Spawn { program: String, source: std::io::Error },

    #[error("{what} failed{}", tail_suffix(.detail))]
    CommandFailed { what: String, detail: String },

    #[error("{what} did not happen within {secs} s{}", tail_suffix(.detail))]
    Timeout { what: String, secs: u64, detail: String },

    #[error(
        "a stack is already running in {}: see `fwdb dev status --dir {}`, or stop it with `fwdb dev down --dir {}`",
        dir.display(), dir.display(), dir.display()
    )]
    AlreadyRunning { dir: PathBuf },

    #[error(
        "the stack in {} cannot be restarted ({reason}). Clean it with `fwdb dev down --purge --dir {}` \
         (this deletes its data) and start again",
        dir.display(), dir.display()
    )]
    Unrecoverable { dir: PathBuf, reason: String },

    #[error(
        "{} is not empty and does not look like an fwdb stack folder (no stack.json): choose another --dir, \
         or empty it yourself",
        dir.display()
    )]
    NotAStackDir { dir: PathBuf },

    #[error("{0}")]
    InvalidDir(String),

    #[error("invalid argument: {0}")]
    Usage(String),

    #[error("no user `{name}` to run the database servers as (PostgreSQL refuses to run as root): {hint}")]
    NoServerUser { name: String, hint: String },

    #[error(
        "python3 is needed to install the MongoDB-compatible server (secantusdb) but was not found: \
         install it with `sudo apt-get install python3 python3-venv`, or set FWDB_SECANTUS_BIN to an \
         existing secantusd-py"
    )]
    PythonMissing,

    #[error(
        "installing the MongoDB-compatible server failed: {detail}. See {}; to retry by hand: \
         `python3 -m venv {venv} && {venv}/bin/pip install --pre secantusdb==0.7.0b3`",
        log.display(), venv = venv.display()
    )]
    VenvInstall { venv: PathBuf, log: PathBuf, detail: String },

    #[error("{node} is not part of this stack ({why})")]
    NoSuchNode { node: String, why: String },

    #[error("certificate generation failed: {0}")]
    Cert(String),

    #[error("{} is not a valid stack.json ({source}); remove the stack with `fwdb dev down --purge --dir {}`", path.display(), dir.display())]
    BadStackJson { path: PathBuf, dir: PathBuf, source: serde_json::Error },

    #[error("the shared test stack could not be started: {0}")]
    SharedFailed(String),
}

impl TestkitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestkitError::Io { path: path.into(), source }
    }
}

fn tail_suffix(detail: &str) -> String {
    let d = detail.trim();
    if d.is_empty() {
        String::new()
    } else {
        format!(":\n{d}")
    }
}
