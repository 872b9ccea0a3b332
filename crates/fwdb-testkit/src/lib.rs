//! fwdb-testkit: the local stack (a PostgreSQL primary with streaming
//! replicas, and a MongoDB server) started and stopped without Docker, for
//! tests, benchmarks and `fwdb dev`.
//!
//! The API is synchronous on purpose: tests create many tokio runtimes, and
//! the one shared stack of a test binary ([`shared`]) must outlive each of
//! them, so nothing here runs on a runtime.
//!
//! Servers never outlive their owner unless asked to ([`Lifetime::Detached`]):
//! see `process.rs` for how attached servers die with the process even when it
//! is SIGKILLed, and `layout.rs` for the sweeping of folders left by dead
//! processes.

pub mod app;
mod certs;
mod config;
mod control;
mod error;
mod info;
mod layout;
mod mongo;
mod pg;
mod pg_bins;
mod ports;
mod probe;
mod process;
mod stack;
mod start;
mod tls_faults;
mod wire;

use std::sync::OnceLock;

pub use app::{scratch_tables, shared_stack, superuser, TestApp};
pub use control::{down, health, purge, status, ServerHealth, ServerKind, ServerState, ServerStatus, StackStatus};
pub use error::{Result, TestkitError};
pub use info::{load, Lifetime, MongoKind, MongoNode, PgNode, StackInfo, TlsFiles};
pub use mongo::{project_root, SECANTUS_REQUIREMENT};
pub use pg::{PgBinaries, MIN_PG_VERSION};
pub use ports::{is_listening, pick_free_port};
pub use process::{processes_mentioning, ProcInfo};
pub use stack::{Node, Stack, StackOptions};

/// A fresh folder `$TMPDIR/fwdb-testkit/stack-<pid>-<rand>` owned by this
/// process, for a stack started with `dir: Some(..)` (e.g. a detached one in a
/// test). Once this process is gone, the next temporary stack's start stops
/// any server still running there and deletes it, so even a killed test
/// leaves nothing behind for long.
pub fn temp_stack_dir() -> Result<std::path::PathBuf> {
    let dir = layout::new_temp_dir()?;
    // The server user must be able to walk through it to a stack inside.
    process::RunAs::detect()?.chown(&dir)?;
    Ok(dir)
}

/// `ping` against a MongoDB server on 127.0.0.1:`port` (a tiny OP_MSG
/// exchange; no driver needed).
pub fn mongo_ping(port: u16) -> std::io::Result<()> {
    wire::ping(port)
}

static SHARED: OnceLock<std::result::Result<Stack, String>> = OnceLock::new();

/// The test binary's stack: started on first use (tests calling this at once
/// wait for the one start), attached, default options. It is stopped and its
/// folder deleted when the process exits normally (an `atexit` hook: statics
/// are never dropped); if the process is killed instead, the servers die with
/// it and the next start sweeps the folder.
pub fn shared() -> Result<&'static Stack, TestkitError> {
    let r = SHARED.get_or_init(|| {
        let r = Stack::start(StackOptions::default()).map_err(|e| e.to_string());
        if r.is_ok() {
            // SAFETY: registering a plain extern "C" function.
            unsafe { libc::atexit(stop_shared_at_exit) };
        }
        r
    });
    match r {
        Ok(s) => Ok(s),
        Err(msg) => Err(TestkitError::SharedFailed(msg.clone())),
    }
}

extern "C" fn stop_shared_at_exit() {
    if let Some(Ok(stack)) = SHARED.get() {
        // Never unwind out of an atexit handler.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stack.stop_at_exit()));
    }
}

/// Waits for SIGINT or SIGTERM (for `fwdb dev up --foreground`). Create it
/// before starting the stack so that an early Ctrl-C is not lost: the signal
/// is then delivered to [`wait`](Self::wait) instead of killing the process.
pub struct ShutdownSignal {
    signals: signal_hook::iterator::Signals,
}

impl ShutdownSignal {
    pub fn register() -> Result<ShutdownSignal> {
        let signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
            .map_err(|e| TestkitError::io("signal handlers (SIGINT, SIGTERM)", e))?;
        Ok(ShutdownSignal { signals })
    }

    /// Blocks until SIGINT or SIGTERM arrives; returns its number.
    pub fn wait(&mut self) -> i32 {
        self.signals.forever().next().unwrap_or(libc::SIGTERM)
    }
}
