//! The lint: flags statements that lose data or block writes (6.2's safety
//! checks). Under the production profile a flagged migration needs
//! `--allow-destructive`. It reads tokens, not text, so words inside strings
//! and comments never trigger it; it errs on the side of flagging.

use std::collections::HashSet;

use mongodb::bson::Document;
use serde::Serialize;

use super::sql::{split, Statement, Tok, Token};

/// One flagged statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintFinding {
    pub file: String,
    pub line: usize,
    /// A stable rule name, e.g. `drop-table`, `index-without-concurrently`.
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for LintFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: [{}] {}", self.file, self.line, self.rule, self.message)
    }
}

/// Functions whose value differs per row: a column added with such a default
/// rewrites the whole table under an ACCESS EXCLUSIVE lock (PostgreSQL 11+
/// adds columns with a non-volatile default without a rewrite).
const VOLATILE: &[&str] = &[
    "RANDOM",
    "GEN_RANDOM_UUID",
    "UUID_GENERATE_V1",
    "UUID_GENERATE_V1MC",
    "UUID_GENERATE_V4",
    "CLOCK_TIMESTAMP",
    "TIMEOFDAY",
    "NEXTVAL",
    "GEN_RANDOM_BYTES",
    "TXID_CURRENT",
];

pub(crate) fn lint_sql(path: &str, sql: &str) -> Vec<LintFinding> {
    let mut created: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for stmt in split(sql) {
        let mut add = |rule: &'static str, message: String| {
            out.push(LintFinding { file: path.to_owned(), line: stmt.line, rule, message })
        };
        lint_statement(&stmt, &created, &mut add);
        if let Some(table) = created_table(&stmt.tokens) {
            created.insert(table);
        }
    }
    out
}

fn w(t: &[Token], i: usize) -> &str {
    t.get(i).and_then(Token::word).unwrap_or_default()
}

fn lint_statement(stmt: &Statement<'_>, created: &HashSet<String>, add: &mut impl FnMut(&'static str, String)) {
    let t = &stmt.tokens;
    match (w(t, 0), w(t, 1)) {
        ("DROP", kind @ ("TABLE" | "SCHEMA" | "DATABASE")) => {
            add(rule_for_drop(kind), format!("DROP {kind} deletes data"));
        }
        ("DROP", _) if t.iter().any(|x| x.is_word("CASCADE")) => {
            add("drop-cascade", "DROP ... CASCADE also drops every object that depends on it".into())
        }
        ("TRUNCATE", _) => add("truncate", "TRUNCATE deletes every row".into()),
        ("DELETE", _) if !t.iter().any(|x| x.is_word("WHERE")) => {
            add("delete-all", "DELETE without WHERE deletes every row".into())
        }
        ("UPDATE", _) if !t.iter().any(|x| x.is_word("WHERE")) => {
            add("update-all", "UPDATE without WHERE rewrites every row and locks them all; batch it".into())
        }
        ("LOCK", _) => add("lock-table", "LOCK TABLE blocks other sessions for the rest of the transaction".into()),
        ("VACUUM", _) if t.iter().any(|x| x.is_word("FULL")) => {
            add("exclusive-lock", "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock".into())
        }
        ("CLUSTER", _) => add("exclusive-lock", "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock".into()),
        ("REINDEX", _) if !t.iter().any(|x| x.is_word("CONCURRENTLY")) => {
            add("exclusive-lock", "REINDEX without CONCURRENTLY blocks writes; use REINDEX ... CONCURRENTLY".into())
        }
        ("CREATE", _) => lint_create_index(t, created, add),
        ("ALTER", "TABLE") => lint_alter_table(t, created, add),
        _ => {}
    }
}

fn rule_for_drop(kind: &str) -> &'static str {
    match kind {
        "TABLE" => "drop-table",
        "SCHEMA" => "drop-schema",
        _ => "drop-database",
    }
}

/// `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON [ONLY] table`
fn lint_create_index(t: &[Token], created: &HashSet<String>, add: &mut impl FnMut(&'static str, String)) {
    let mut i = 1;
    if w(t, i) == "UNIQUE" {
        i += 1;
    }
    if w(t, i) != "INDEX" || t.iter().any(|x| x.is_word("CONCURRENTLY")) {
        return;
    }
    let Some(on) = t.iter().position(|x| x.is_word("ON")) else { return };
    let mut j = on + 1;
    if w(t, j) == "ONLY" {
        j += 1;
    }
    let table = qualified_name(t, j).0;
    if !created.contains(&table) {
        add(
            "index-without-concurrently",
            format!("CREATE INDEX on existing table {table} blocks writes while it builds; use CREATE INDEX CONCURRENTLY in a -- fwdb:no-transaction migration"),
        );
    }
}

/// Checks each comma-separated action of `ALTER TABLE [IF EXISTS] [ONLY] name ...`.
fn lint_alter_table(t: &[Token], created: &HashSet<String>, add: &mut impl FnMut(&'static str, String)) {
    let mut i = 2;
    if w(t, i) == "IF" && w(t, i + 1) == "EXISTS" {
        i += 2;
    }
    if w(t, i) == "ONLY" {
        i += 1;
    }
    let (table, next) = qualified_name(t, i);
    let is_new = created.contains(&table);
    for action in split_actions(&t[next.min(t.len())..]) {
        lint_alter_action(action, &table, is_new, add);
    }
}

fn lint_alter_action(a: &[Token], table: &str, is_new: bool, add: &mut impl FnMut(&'static str, String)) {
    let has = |word: &str| a.iter().any(|x| x.is_word(word));
    match (w(a, 0), w(a, 1)) {
        ("DROP", next) if !matches!(next, "CONSTRAINT" | "DEFAULT" | "NOT" | "EXPRESSION" | "IDENTITY") => {
            add("drop-column", format!("dropping a column of {table} deletes its data"))
        }
        ("RENAME", _) => add(
            "rename",
            format!("renaming in {table} breaks code still using the old name; add, backfill, then drop instead"),
        ),
        ("ALTER", _) if has("TYPE") && !is_new => add(
            "column-type-rewrite",
            format!("changing a column type of {table} may rewrite the table under an ACCESS EXCLUSIVE lock"),
        ),
        ("ALTER", _) if has("SET") && has("NOT") && has("NULL") && !is_new => add(
            "set-not-null",
            format!("SET NOT NULL scans {table} under an ACCESS EXCLUSIVE lock; add a CHECK (...) NOT VALID, VALIDATE it, then SET NOT NULL"),
        ),
        ("ADD", _) if !is_new => lint_add(a, table, add),
        _ => {}
    }
}

fn lint_add(a: &[Token], table: &str, add: &mut impl FnMut(&'static str, String)) {
    let has = |word: &str| a.iter().any(|x| x.is_word(word));
    let is_constraint = matches!(w(a, 1), "CONSTRAINT" | "CHECK" | "FOREIGN" | "UNIQUE" | "PRIMARY" | "EXCLUDE");
    if is_constraint {
        if (has("CHECK") || has("FOREIGN")) && !has("VALID") {
            add(
                "constraint-scan",
                format!("adding a CHECK or FOREIGN KEY to {table} scans it while blocking writes; add it NOT VALID, then VALIDATE CONSTRAINT"),
            );
        } else if (has("UNIQUE") || has("PRIMARY") || has("EXCLUDE")) && !has("USING") {
            add(
                "constraint-index",
                format!("this constraint builds an index on {table} while blocking writes; CREATE UNIQUE INDEX CONCURRENTLY, then ADD ... USING INDEX"),
            );
        }
        return;
    }
    let volatile_default =
        a.windows(2).any(|p| p[1].is_punct('(') && p[0].word().is_some_and(|f| VOLATILE.contains(&f)))
            && has("DEFAULT");
    if volatile_default {
        add(
            "add-column-volatile-default",
            format!("a column with a volatile DEFAULT rewrites {table} under an ACCESS EXCLUSIVE lock; add it without a default, then backfill in batches"),
        );
    } else if has("GENERATED") && has("STORED") {
        add("add-column-rewrite", format!("a stored generated column rewrites {table} under an ACCESS EXCLUSIVE lock"));
    }
}

/// Splits ALTER TABLE actions on commas outside parentheses.
fn split_actions(t: &[Token]) -> Vec<&[Token]> {
    let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
    for (i, tok) in t.iter().enumerate() {
        match tok.kind {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                out.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&t[start..]);
    out
}

/// Reads `a.b.c` starting at `i`: the lower-cased name and the index after it.
fn qualified_name(t: &[Token], mut i: usize) -> (String, usize) {
    let mut parts = Vec::new();
    while let Some(tok) = t.get(i) {
        match &tok.kind {
            Tok::Word(w) => parts.push(w.to_ascii_lowercase()),
            Tok::Ident(s) => parts.push(s.clone()),
            _ => break,
        }
        i += 1;
        if t.get(i).is_some_and(|x| x.is_punct('.')) {
            i += 1;
        } else {
            break;
        }
    }
    (parts.join("."), i)
}

/// The table a `CREATE [UNLOGGED|TEMP] TABLE [IF NOT EXISTS] name` creates.
fn created_table(t: &[Token]) -> Option<String> {
    if w(t, 0) != "CREATE" {
        return None;
    }
    let pos = t.iter().take(5).position(|x| x.is_word("TABLE"))?;
    let mut i = pos + 1;
    if w(t, i) == "IF" {
        i += 3;
    }
    Some(qualified_name(t, i).0)
}

/// MongoDB commands that delete data.
pub(crate) fn lint_mongo(path: &str, commands: &[(Document, usize)]) -> Vec<LintFinding> {
    let mut out = Vec::new();
    for (cmd, line) in commands {
        let Some(name) = cmd.keys().next() else { continue };
        let message = match name.as_str() {
            "drop" => "drop deletes the collection and its documents",
            "dropDatabase" => "dropDatabase deletes every collection",
            "delete" => "delete removes documents",
            "renameCollection" => "renameCollection breaks code still using the old name",
            _ => continue,
        };
        out.push(LintFinding {
            file: path.to_owned(),
            line: *line,
            rule: "mongo-destructive",
            message: message.into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<&'static str> {
        lint_sql("f.sql", sql).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn flags_each_destructive_statement() {
        let cases: &[(&str, &str)] = &[
            ("DROP TABLE shared.users", "drop-table"),
            ("drop schema audit cascade", "drop-schema"),
            ("TRUNCATE catalog.items", "truncate"),
            ("ALTER TABLE shared.users DROP COLUMN role", "drop-column"),
            ("ALTER TABLE shared.users DROP role", "drop-column"),
            ("ALTER TABLE shared.users ALTER COLUMN role TYPE text", "column-type-rewrite"),
            ("ALTER TABLE shared.users ALTER role SET DATA TYPE text", "column-type-rewrite"),
            ("ALTER TABLE t ADD COLUMN k uuid NOT NULL DEFAULT gen_random_uuid()", "add-column-volatile-default"),
            ("ALTER TABLE t ALTER COLUMN c SET NOT NULL", "set-not-null"),
            ("ALTER TABLE t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES u(id)", "constraint-scan"),
            ("CREATE INDEX i ON shared.users (email)", "index-without-concurrently"),
            ("CREATE UNIQUE INDEX IF NOT EXISTS i ON ONLY shared.users (email)", "index-without-concurrently"),
            ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "lock-table"),
            ("DELETE FROM t", "delete-all"),
            ("ALTER TABLE t RENAME COLUMN a TO b", "rename"),
            ("VACUUM FULL t", "exclusive-lock"),
        ];
        for (sql, rule) in cases {
            assert_eq!(rules(sql), vec![*rule], "{sql}");
        }
    }

    #[test]
    fn leaves_safe_statements_alone() {
        for sql in [
            "CREATE TABLE t (id int); CREATE INDEX i ON t (id)",
            "CREATE INDEX CONCURRENTLY i ON shared.users (email)",
            "ALTER TABLE t ADD COLUMN c timestamptz NOT NULL DEFAULT now()",
            "ALTER TABLE t ADD COLUMN c text",
            "ALTER TABLE t DROP CONSTRAINT c, DROP DEFAULT",
            "ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID",
            "DELETE FROM t WHERE id = 1",
            "COMMENT ON TABLE t IS 'DROP TABLE t; TRUNCATE'",
            "-- DROP TABLE t\nSELECT 1",
            "DROP INDEX CONCURRENTLY IF EXISTS i",
            "CREATE TABLE a (id int); ALTER TABLE a ALTER COLUMN id TYPE bigint, ALTER COLUMN id SET NOT NULL",
        ] {
            assert_eq!(rules(sql), Vec::<&str>::new(), "{sql}");
        }
    }

    #[test]
    fn findings_name_file_and_line() {
        let f = lint_sql("m/x.up.sql", "SELECT 1;\n\n  TRUNCATE t;");
        assert_eq!((f[0].file.as_str(), f[0].line), ("m/x.up.sql", 3));
        assert!(f[0].to_string().starts_with("m/x.up.sql:3: [truncate]"));
    }

    #[test]
    fn flags_destructive_mongo_commands() {
        let cmds = vec![
            (mongodb::bson::doc! {"createIndexes": "d", "indexes": []}, 2),
            (mongodb::bson::doc! {"drop": "d"}, 5),
        ];
        let f = lint_mongo("m.json", &cmds);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].line, f[0].rule), (5, "mongo-destructive"));
    }
}
