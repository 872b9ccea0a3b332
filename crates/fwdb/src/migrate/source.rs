//! Where migrations come from (compiled in, or a folder) and the loaded,
//! validated set: every file parsed, paired, checksummed and linted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mongodb::bson::Document;
use serde::Serialize;

use super::checksum::checksum;
use super::lint::{lint_mongo, lint_sql, LintFinding};
use super::names::{parse_file_name, Direction};
use crate::error::{Error, ErrorKind, Result};

/// Which database a set of migrations is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    Postgres,
    #[serde(rename = "mongodb")]
    Mongo,
}

impl Store {
    /// The folder under the migrations root: `postgres` or `mongodb`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Store::Postgres => "postgres",
            Store::Mongo => "mongodb",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Store::Postgres => "sql",
            Store::Mongo => "json",
        }
    }
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::Postgres => "PostgreSQL",
            Store::Mongo => "MongoDB",
        })
    }
}

/// The repository's `migrations/` folder, compiled into every build so that
/// a deployed binary carries the schema it expects.
static EMBEDDED: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../migrations");

/// Where to read migrations from.
#[derive(Debug, Clone)]
pub enum MigrationSource {
    /// The migrations compiled into this build (the repository's `migrations/`).
    Embedded,
    /// A migrations root holding `postgres/` and `mongodb/` folders.
    Dir(PathBuf),
}

impl MigrationSource {
    /// Loads and validates the migrations of one store.
    pub fn load(&self, store: Store) -> Result<MigrationSet> {
        let files = match self {
            MigrationSource::Embedded => embedded_files(store)?,
            MigrationSource::Dir(root) => dir_files(root, store)?,
        };
        MigrationSet::from_files(store, files)
    }
}

/// One file: the path shown in messages, its bare name, and its text.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub path: String,
    pub name: String,
    pub text: String,
}

fn embedded_files(store: Store) -> Result<Vec<SourceFile>> {
    let Some(dir) = EMBEDDED.get_dir(store.dir_name()) else { return Ok(Vec::new()) };
    dir.files()
        .map(|f| {
            let name = f.path().file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let text = f.contents_utf8().ok_or_else(|| {
                Error::invalid_input(format!("embedded migration {} is not UTF-8", f.path().display()))
            })?;
            Ok(SourceFile { path: format!("migrations/{}", f.path().display()), name, text: text.to_owned() })
        })
        .collect()
}

fn dir_files(root: &Path, store: Store) -> Result<Vec<SourceFile>> {
    if !root.is_dir() {
        return Err(Error::new(
            ErrorKind::Migration,
            format!("migrations folder {} does not exist (expected it to hold postgres/ and mongodb/)", root.display()),
        ));
    }
    let dir = root.join(store.dir_name());
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        files.push(SourceFile { path: path.display().to_string(), name, text });
    }
    Ok(files)
}

/// One script: an up or a down file.
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) path: String,
    pub(crate) text: String,
    pub(crate) checksum: String,
    pub(crate) no_transaction: bool,
    /// MongoDB only: the commands, each with the line it starts on.
    pub(crate) commands: Vec<(Document, usize)>,
    pub(crate) findings: Vec<LintFinding>,
}

impl Script {
    /// The file, as shown in messages.
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn text(&self) -> &str {
        &self.text
    }
    /// SHA-256 of the file, hex.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
    /// True when the file starts with `-- fwdb:no-transaction`.
    pub fn no_transaction(&self) -> bool {
        self.no_transaction
    }
    /// What the lint flags in this file (destructive or write-blocking statements).
    pub fn findings(&self) -> &[LintFinding] {
        &self.findings
    }
}

/// One migration: a version, a name, an up and a down script.
#[derive(Debug, Clone)]
pub struct Migration {
    pub(crate) version: i64,
    pub(crate) name: String,
    pub(crate) up: Script,
    pub(crate) down: Script,
}

impl Migration {
    pub fn version(&self) -> i64 {
        self.version
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn up(&self) -> &Script {
        &self.up
    }
    pub fn down(&self) -> &Script {
        &self.down
    }
}

/// The validated migrations of one store, in version order.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub(crate) store: Store,
    pub(crate) migrations: Vec<Migration>,
}

impl MigrationSet {
    pub fn store(&self) -> Store {
        self.store
    }
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    /// Builds a set from (path, file name, text) triples: pairs ups with
    /// downs, and rejects duplicates, orphans and unparsable scripts.
    pub(crate) fn from_files(store: Store, files: Vec<SourceFile>) -> Result<MigrationSet> {
        let mut halves: BTreeMap<i64, (String, Option<Script>, Option<Script>)> = BTreeMap::new();
        for file in files {
            let Some(parsed) = parse_file_name(&file.name, store)? else { continue };
            let script = parse_script(store, file.path, file.text)?;
            let entry = halves.entry(parsed.version).or_insert_with(|| (parsed.name.clone(), None, None));
            if entry.0 != parsed.name {
                return Err(Error::invalid_input(format!(
                    "two migrations share version {}: {} and {}; give one a new timestamp",
                    parsed.version, entry.0, parsed.name
                )));
            }
            let slot = if parsed.direction == Direction::Up { &mut entry.1 } else { &mut entry.2 };
            *slot = Some(script);
        }
        let mut migrations = Vec::with_capacity(halves.len());
        for (version, (name, up, down)) in halves {
            let (up, down) = match (up, down) {
                (Some(u), Some(d)) => (u, d),
                (u, _) => {
                    let missing = if u.is_none() { "up" } else { "down" };
                    return Err(Error::invalid_input(format!(
                        "migration {version}_{name} has no .{missing}.{} file: every migration needs both",
                        store.extension()
                    )));
                }
            };
            migrations.push(Migration { version, name, up, down });
        }
        Ok(MigrationSet { store, migrations })
    }
}

fn parse_script(store: Store, path: String, text: String) -> Result<Script> {
    let checksum = checksum(&text);
    match store {
        Store::Postgres => {
            let no_transaction = has_no_transaction_directive(&path, &text)?;
            reject_transaction_control(&path, &text, no_transaction)?;
            let findings = lint_sql(&path, &text);
            Ok(Script { path, text, checksum, no_transaction, commands: Vec::new(), findings })
        }
        Store::Mongo => {
            let commands = parse_mongo_commands(&path, &text)?;
            let findings = lint_mongo(&path, &commands);
            Ok(Script { path, text, checksum, no_transaction: true, commands, findings })
        }
    }
}

const NO_TRANSACTION: &str = "-- fwdb:no-transaction";

/// The directive must be the first line, as in sqlx; a `-- fwdb:` comment
/// anywhere else, or an unknown one, is an error rather than ignored, since
/// a misplaced directive would silently run CONCURRENTLY in a transaction.
fn has_no_transaction_directive(path: &str, text: &str) -> Result<bool> {
    let first = text.lines().next().unwrap_or_default().trim();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with("-- fwdb:") && !(i == 0 && l == NO_TRANSACTION) {
            return Err(Error::invalid_input(format!(
                "{path}:{}: unknown or misplaced directive {l:?}; the only directive is {NO_TRANSACTION:?}, on the first line",
                i + 1
            )));
        }
    }
    Ok(first == NO_TRANSACTION)
}

/// fwdb wraps each migration in its own transaction together with its
/// history row; a COMMIT inside the file would break that promise.
fn reject_transaction_control(path: &str, text: &str, no_transaction: bool) -> Result<()> {
    for stmt in super::sql::split(text) {
        let first = stmt.tokens.first().and_then(|t| t.word()).unwrap_or_default();
        let second = stmt.tokens.get(1).and_then(|t| t.word()).unwrap_or_default();
        let is_tx = matches!(first, "BEGIN" | "COMMIT" | "ROLLBACK" | "END" | "ABORT")
            || (first == "START" && second == "TRANSACTION");
        if is_tx && !(first == "BEGIN" && second == "ATOMIC") {
            let how = if no_transaction {
                "statements run one by one"
            } else {
                "fwdb runs each migration in its own transaction"
            };
            return Err(Error::invalid_input(format!(
                "{path}:{}: {first} in a migration: {how}; remove it",
                stmt.line
            )));
        }
    }
    Ok(())
}

/// A MongoDB migration is a JSON array of database commands, run in order.
fn parse_mongo_commands(path: &str, text: &str) -> Result<Vec<(Document, usize)>> {
    let docs: Vec<Document> = serde_json::from_str(text).map_err(|e| {
        Error::invalid_input(format!("{path}:{}:{}: not a JSON array of MongoDB commands: {e}", e.line(), e.column()))
    })?;
    let lines = top_level_element_lines(text);
    Ok(docs.into_iter().enumerate().map(|(i, d)| (d, lines.get(i).copied().unwrap_or(1))).collect())
}

/// The line each element of a top-level JSON array starts on.
fn top_level_element_lines(text: &str) -> Vec<usize> {
    let (mut depth, mut line, mut in_str, mut escaped) = (0usize, 1usize, false, false);
    let mut out = Vec::new();
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => {
                if depth == 1 {
                    out.push(line);
                }
                depth += 1;
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> SourceFile {
        SourceFile { path: format!("m/{name}"), name: name.into(), text: text.into() }
    }

    #[test]
    fn pairs_ups_and_downs_in_version_order() {
        let set = MigrationSet::from_files(
            Store::Postgres,
            vec![
                file("20240102000000_b.up.sql", "SELECT 2;"),
                file("20240101000000_a.down.sql", "SELECT -1;"),
                file("README.md", "docs"),
                file("20240101000000_a.up.sql", "-- fwdb:no-transaction\nSELECT 1;"),
                file("20240102000000_b.down.sql", "SELECT -2;"),
            ],
        )
        .unwrap();
        let v: Vec<_> = set.migrations().iter().map(|m| (m.version(), m.name(), m.up().no_transaction())).collect();
        assert_eq!(v, vec![(20240101000000, "a", true), (20240102000000, "b", false)]);
    }

    #[test]
    fn rejects_orphans_duplicates_and_misplaced_directives() {
        let orphan = MigrationSet::from_files(Store::Postgres, vec![file("20240101000000_a.up.sql", "")]);
        assert!(orphan.unwrap_err().to_string().contains("no .down.sql"));
        let dup = MigrationSet::from_files(
            Store::Postgres,
            vec![file("20240101000000_a.up.sql", ""), file("20240101000000_b.up.sql", "")],
        );
        assert!(dup.unwrap_err().to_string().contains("share version 20240101000000"));
        let late = MigrationSet::from_files(
            Store::Postgres,
            vec![file("20240101000000_a.up.sql", "\n-- fwdb:no-transaction\n"), file("20240101000000_a.down.sql", "")],
        );
        assert!(late.unwrap_err().to_string().contains("20240101000000_a.up.sql:2"));
        let commit = MigrationSet::from_files(
            Store::Postgres,
            vec![file("20240101000000_a.up.sql", "SELECT 1;\nCOMMIT;"), file("20240101000000_a.down.sql", "")],
        );
        assert!(commit.unwrap_err().to_string().contains("20240101000000_a.up.sql:2: COMMIT"));
    }

    #[test]
    fn mongo_commands_keep_key_order_and_lines() {
        let text = "[\n  {\"createIndexes\": \"d\", \"indexes\": []},\n\n  {\"drop\": \"x\"}\n]";
        let cmds = parse_mongo_commands("f.json", text).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].0.keys().next().map(String::as_str), Some("createIndexes"));
        assert_eq!((cmds[0].1, cmds[1].1), (2, 4));
        let e = parse_mongo_commands("f.json", "[{\"a\": 1},\n {oops}]").unwrap_err().to_string();
        assert!(e.contains("f.json:2:"), "{e}");
    }

    #[test]
    fn embedded_migrations_load_and_match_the_repository() {
        // Also catches a stale build: include_dir does not make cargo rebuild
        // when a migration file changes.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        for store in [Store::Postgres, Store::Mongo] {
            let embedded = MigrationSource::Embedded.load(store).unwrap();
            let disk = MigrationSource::Dir(root.clone()).load(store).unwrap();
            assert!(!embedded.migrations().is_empty());
            let sums = |s: &MigrationSet| -> Vec<_> {
                s.migrations().iter().map(|m| (m.version, m.up.checksum.clone(), m.down.checksum.clone())).collect()
            };
            assert_eq!(sums(&embedded), sums(&disk), "{store}: rebuild (touch crates/fwdb/src/migrate/source.rs)");
        }
    }
}
