//! The history every store keeps: one append-only row per event, so a
//! migration's state is its latest row and every repair keeps its reason.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What happened to a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Its up script ran to completion.
    Applied,
    /// Its up script failed outside a transaction: some statements may have taken effect.
    Failed,
    /// A non-transactional up script began; if this is the latest row once
    /// the lock is ours, its runner died mid-way.
    Started,
    /// Recorded as applied by `baseline`, without running (the database predates fwdb).
    Baseline,
    /// `repair` accepted a changed file, or a failed migration finished by hand; see the reason.
    Repaired,
    /// Its down script ran.
    Reverted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Started => "started",
            Outcome::Baseline => "baseline",
            Outcome::Repaired => "repaired",
            Outcome::Reverted => "reverted",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Applied, Outcome::Failed, Outcome::Started, Outcome::Baseline, Outcome::Repaired, Outcome::Reverted]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// Whether the migration's effects are in the database.
    pub fn is_in_effect(self) -> bool {
        matches!(self, Outcome::Applied | Outcome::Baseline | Outcome::Repaired)
    }
}

/// One row of the history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Order of the rows: a PostgreSQL sequence, or a counter kept under the MongoDB lock.
    pub seq: i64,
    pub version: i64,
    pub name: String,
    /// SHA-256 of the up file as it was when this row was written.
    pub checksum: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub applied_at: DateTime<Utc>,
    pub applied_by: String,
    pub duration_ms: i64,
    /// For `failed`: the error, with file, line and SQLSTATE.
    pub error: Option<String>,
}

/// Who is running: user, host and process, so a history row or a held lock
/// can be traced to a machine.
pub(crate) fn runner_id() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{user}@{host} pid {}", std::process::id())
}
