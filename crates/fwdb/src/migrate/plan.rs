//! Status: the migrations on disk matched against the history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::checksum::short;
use super::history::{HistoryEntry, Outcome};
use super::lint::LintFinding;
use super::source::{MigrationSet, Store};

/// The state of one migration in one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In effect and its file is unchanged.
    Applied,
    /// Not in effect (never run, or reverted).
    Pending,
    /// Failed (or its runner died) outside a transaction: needs a decision.
    Failed,
    /// In effect, but its up file changed since: drift.
    Changed,
    /// In effect, but no file here: applied by a newer release, or deleted.
    Unknown,
}

/// One migration's line of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationStatus {
    pub version: i64,
    pub name: String,
    pub state: State,
    /// The up file (None for `unknown`).
    pub file: Option<String>,
    pub no_transaction: bool,
    /// The latest history row's outcome, if any.
    pub outcome: Option<Outcome>,
    pub applied_at: Option<DateTime<Utc>>,
    pub applied_by: Option<String>,
    pub duration_ms: Option<i64>,
    pub checksum_file: Option<String>,
    pub checksum_recorded: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    /// The lint's findings in the up file.
    pub findings: Vec<LintFinding>,
}

/// Every migration of one store in one database.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub store: Store,
    pub migrations: Vec<MigrationStatus>,
}

impl Status {
    pub fn with_state(&self, state: State) -> impl Iterator<Item = &MigrationStatus> {
        self.migrations.iter().filter(move |m| m.state == state)
    }

    pub fn count(&self, state: State) -> usize {
        self.with_state(state).count()
    }

    /// The newest version in effect.
    pub fn current_version(&self) -> Option<i64> {
        self.migrations.iter().filter(|m| m.outcome.is_some_and(Outcome::is_in_effect)).map(|m| m.version).max()
    }
}

/// Matches files against the latest history row of each version.
pub(crate) fn compute(set: &MigrationSet, history: &[HistoryEntry]) -> Status {
    let mut latest: BTreeMap<i64, &HistoryEntry> = BTreeMap::new();
    let mut rows: Vec<&HistoryEntry> = history.iter().collect();
    rows.sort_by_key(|e| e.seq);
    for row in rows {
        latest.insert(row.version, row);
    }
    let mut out = Vec::new();
    for m in set.migrations() {
        let row = latest.remove(&m.version);
        let state = match row.map(|r| r.outcome) {
            None | Some(Outcome::Reverted) => State::Pending,
            Some(Outcome::Failed) | Some(Outcome::Started) => State::Failed,
            Some(_) if row.is_some_and(|r| r.checksum != m.up.checksum) => State::Changed,
            Some(_) => State::Applied,
        };
        out.push(MigrationStatus {
            version: m.version,
            name: m.name.clone(),
            state,
            file: Some(m.up.path.clone()),
            no_transaction: m.up.no_transaction,
            checksum_file: Some(m.up.checksum.clone()),
            findings: m.up.findings.clone(),
            ..from_row(m.version, &m.name, row)
        });
    }
    for (version, row) in latest {
        if row.outcome.is_in_effect() {
            out.push(MigrationStatus { state: State::Unknown, ..from_row(version, &row.name, Some(row)) });
        }
    }
    out.sort_by_key(|m| m.version);
    Status { store: set.store(), migrations: out }
}

fn from_row(version: i64, name: &str, row: Option<&HistoryEntry>) -> MigrationStatus {
    MigrationStatus {
        version,
        name: name.to_owned(),
        state: State::Pending,
        file: None,
        no_transaction: false,
        outcome: row.map(|r| r.outcome),
        applied_at: row.map(|r| r.applied_at),
        applied_by: row.map(|r| r.applied_by.clone()),
        duration_ms: row.map(|r| r.duration_ms),
        checksum_file: None,
        checksum_recorded: row.map(|r| r.checksum.clone()),
        reason: row.and_then(|r| r.reason.clone()),
        error: row.and_then(|r| r.error.clone()),
        findings: Vec::new(),
    }
}

/// "file: applied with sha256 abc…, file now def…": the drift message.
pub(crate) fn describe_drift(m: &MigrationStatus) -> String {
    format!(
        "{} (version {}) changed after it was applied: recorded sha256 {}, file now {}",
        m.file.as_deref().unwrap_or("?"),
        m.version,
        short(m.checksum_recorded.as_deref().unwrap_or("")),
        short(m.checksum_file.as_deref().unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::super::source::SourceFile;
    use super::*;

    fn set() -> MigrationSet {
        let f = |n: &str, t: &str| SourceFile { path: n.into(), name: n.into(), text: t.into() };
        MigrationSet::from_files(
            Store::Postgres,
            vec![
                f("20240101000000_a.up.sql", "SELECT 1;"),
                f("20240101000000_a.down.sql", ""),
                f("20240102000000_b.up.sql", "SELECT 2;"),
                f("20240102000000_b.down.sql", ""),
                f("20240103000000_c.up.sql", "SELECT 3;"),
                f("20240103000000_c.down.sql", ""),
                f("20240104000000_d.up.sql", "SELECT 4;"),
                f("20240104000000_d.down.sql", ""),
            ],
        )
        .unwrap()
    }

    fn row(seq: i64, version: i64, checksum: &str, outcome: Outcome) -> HistoryEntry {
        HistoryEntry {
            seq,
            version,
            name: "x".into(),
            checksum: checksum.into(),
            outcome,
            reason: None,
            applied_at: Utc::now(),
            applied_by: "t".into(),
            duration_ms: 1,
            error: None,
        }
    }

    #[test]
    fn latest_row_decides_and_checksums_reveal_drift() {
        let s = set();
        let sum = |v| s.get(v).unwrap().up.checksum.clone();
        let history = vec![
            row(1, 20240101000000, &sum(20240101000000), Outcome::Applied),
            row(2, 20240102000000, &sum(20240102000000), Outcome::Applied),
            row(3, 20240102000000, &sum(20240102000000), Outcome::Reverted),
            row(4, 20240103000000, "0000", Outcome::Applied),
            row(5, 20240104000000, &sum(20240104000000), Outcome::Started),
            row(6, 20250101000000, "ffff", Outcome::Applied),
        ];
        let st = compute(&s, &history);
        let states: Vec<_> = st.migrations.iter().map(|m| (m.version, m.state)).collect();
        assert_eq!(
            states,
            vec![
                (20240101000000, State::Applied),
                (20240102000000, State::Pending),
                (20240103000000, State::Changed),
                (20240104000000, State::Failed),
                (20250101000000, State::Unknown),
            ]
        );
        assert_eq!(st.current_version(), Some(20250101000000));
        let drift = describe_drift(st.with_state(State::Changed).next().unwrap());
        assert!(drift.contains("20240103000000_c.up.sql") && drift.contains("recorded sha256 0000"), "{drift}");
    }
}
