//! Layers of configuration and where each value came from.
//!
//! Every layer is flattened to dotted keys (`postgres.pool.max_size`) with
//! an [`Origin`]; later layers replace earlier ones key by key; the result is
//! unflattened and deserialized. Keeping the origin per key is what lets an
//! error say "fwdb.toml:12" or "env FWDB__POSTGRES__POOL__MAX_SIZE".

use crate::error::ConfigProblem;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize, profile: Option<String> },
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line, profile: None } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line, profile: Some(p) } => write!(f, "{}:{line} [{p}]", path.display()),
            Origin::Env(var) => write!(f, "env {var}"),
        }
    }
}

/// A flat map of dotted keys to values and their origins.
#[derive(Debug, Default, Clone)]
pub struct Layered {
    entries: BTreeMap<String, (Value, Origin)>,
}

impl Layered {
    pub fn add_table(&mut self, table: &Table, origin: impl Fn(&str) -> Origin) {
        let mut flat = Vec::new();
        flatten("", table, &mut flat);
        for (key, value) in flat {
            let o = origin(&key);
            self.set(key, value, o);
        }
    }

    /// Sets a key, dropping anything the new value shadows (a table replaced
    /// by a scalar, or a scalar replaced by a table).
    pub fn set(&mut self, key: String, value: Value, origin: Origin) {
        let child_prefix = format!("{key}.");
        self.entries.retain(|k, _| !k.starts_with(&child_prefix) && !key.starts_with(&format!("{k}.")));
        self.entries.insert(key, (value, origin));
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    /// Records where a value derived from another key (a secret read from a file) came from.
    pub fn set_origin(&mut self, key: &str, value: Value, origin: Origin) {
        self.entries.insert(key.to_string(), (value, origin));
    }

    pub fn get(&self, key: &str) -> Option<&(Value, Origin)> {
        self.entries.get(key)
    }

    /// The origin of `key`, or of the nearest enclosing key that has one.
    pub fn origin_of(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            if let Some((_, o)) = self.entries.get(k) {
                return o.clone();
            }
            if let Some((_, o)) = self.entries.iter().find(|(e, _)| e.starts_with(&format!("{k}."))).map(|(_, v)| v) {
                return o.clone();
            }
            match k.rsplit_once('.') {
                Some((parent, _)) => k = parent,
                None => return Origin::Default,
            }
        }
    }

    pub fn to_table(&self) -> Table {
        let mut root = Table::new();
        for (key, (value, _)) in &self.entries {
            insert_path(&mut root, key, value.clone());
        }
        root
    }
}

fn flatten(prefix: &str, table: &Table, out: &mut Vec<(String, Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Table(t) if !t.is_empty() => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

fn insert_path(root: &mut Table, key: &str, value: Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = root;
    for p in parts {
        let entry = cur.entry(p.to_string()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        match entry {
            Value::Table(t) => cur = t,
            _ => return,
        }
    }
    cur.insert(last.to_string(), value);
}

/// A parsed configuration file, with the line of every key.
pub struct ParsedFile {
    pub path: PathBuf,
    pub table: Table,
    lines: BTreeMap<String, usize>,
}

impl ParsedFile {
    pub fn parse(path: &Path, text: &str) -> Result<ParsedFile, ConfigProblem> {
        let problem = |message: String| ConfigProblem { key: "(file)".into(), origin: path.display().to_string(), message };
        let table: Table = toml::from_str(text).map_err(|e| problem(format!("not valid TOML: {}", e.to_string().trim())))?;
        let doc = toml_edit::Document::parse(text).map_err(|e| problem(format!("not valid TOML: {e}")))?;
        let mut lines = BTreeMap::new();
        key_lines("", doc.as_table(), text, &mut lines);
        Ok(ParsedFile { path: path.to_path_buf(), table, lines })
    }

    pub fn line_of(&self, key: &str) -> usize {
        let mut k = key;
        loop {
            if let Some(l) = self.lines.get(k) {
                return *l;
            }
            match k.rsplit_once('.') {
                Some((parent, _)) => k = parent,
                None => return 1,
            }
        }
    }
}

fn key_lines(prefix: &str, table: &toml_edit::Table, text: &str, out: &mut BTreeMap<String, usize>) {
    for (k, item) in table.iter() {
        let key = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        let span = table.key(k).and_then(|kk| kk.span()).or_else(|| item.span());
        if let Some(span) = span {
            out.insert(key.clone(), line_at(text, span.start));
        }
        match item {
            toml_edit::Item::Table(t) => key_lines(&key, t, text, out),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                key_lines_inline(&key, t, text, out);
            }
            _ => {}
        }
    }
}

fn key_lines_inline(prefix: &str, table: &toml_edit::InlineTable, text: &str, out: &mut BTreeMap<String, usize>) {
    for (k, v) in table.iter() {
        let key = format!("{prefix}.{k}");
        if let Some(span) = table.key(k).and_then(|kk| kk.span()).or_else(|| v.span()) {
            out.insert(key.clone(), line_at(text, span.start));
        }
        if let toml_edit::Value::InlineTable(t) = v {
            key_lines_inline(&key, t, text, out);
        }
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset).map(|s| s.matches('\n').count() + 1).unwrap_or(1)
}

/// The prefix of fwdb's environment variables; `__` separates key parts.
pub const ENV_PREFIX: &str = "FWDB__";

/// Turns `FWDB__POSTGRES__POOL__MAX_SIZE` into `postgres.pool.max_size`.
pub fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    if rest.is_empty() || rest.split("__").any(str::is_empty) {
        return None;
    }
    Some(rest.split("__").map(str::to_ascii_lowercase).collect::<Vec<_>>().join("."))
}

/// Reads an environment value as the type the default of that key has, so
/// that `FWDB__POSTGRES__PASSWORD=12345` stays a string while
/// `FWDB__POSTGRES__POOL__MAX_SIZE=50` becomes a number.
pub fn env_value(raw: &str, like: Option<&Value>) -> Value {
    let parse_toml = |s: &str| toml::from_str::<Table>(&format!("v = {s}")).ok().and_then(|mut t| t.remove("v"));
    match like {
        Some(Value::Integer(_)) | Some(Value::Float(_)) | Some(Value::Boolean(_)) => {
            parse_toml(raw.trim()).unwrap_or_else(|| Value::String(raw.to_string()))
        }
        Some(Value::Array(_)) if raw.trim_start().starts_with('[') => {
            parse_toml(raw.trim()).unwrap_or_else(|| Value::String(raw.to_string()))
        }
        Some(Value::Array(_)) if raw.contains(',') => {
            Value::Array(raw.split(',').map(|s| Value::String(s.trim().to_string())).collect())
        }
        _ => Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_map_to_dotted_keys() {
        assert_eq!(env_key("FWDB__POSTGRES__POOL__MAX_SIZE").as_deref(), Some("postgres.pool.max_size"));
        assert_eq!(env_key("FWDB__X"), Some("x".into()));
        assert_eq!(env_key("FWDB_PROFILE"), None);
        assert_eq!(env_key("FWDB__A____B"), None);
    }

    #[test]
    fn env_values_take_the_type_of_the_default() {
        assert_eq!(env_value("50", Some(&Value::Integer(100))), Value::Integer(50));
        assert_eq!(env_value("12345", None), Value::String("12345".into()));
        assert_eq!(env_value("not-a-number", Some(&Value::Integer(1))), Value::String("not-a-number".into()));
        let arr = env_value("[\"a:1\", \"b:2\"]", Some(&Value::Array(vec![])));
        assert_eq!(arr.as_array().map(|a| a.len()), Some(2));
        let arr = env_value("a:1, b:2", Some(&Value::Array(vec![])));
        assert_eq!(arr.as_array().map(|a| a.len()), Some(2));
    }

    #[test]
    fn file_keys_know_their_lines() {
        let text = "[postgres]\ndatabase = \"x\"\n\n[postgres.pool]\nmax_size = 5\n[production.postgres]\ntls = { mode = \"verify-full\" }\n";
        let f = ParsedFile::parse(Path::new("fwdb.toml"), text).unwrap();
        assert_eq!(f.line_of("postgres.database"), 2);
        assert_eq!(f.line_of("postgres.pool.max_size"), 5);
        assert_eq!(f.line_of("production.postgres.tls.mode"), 7);
    }

    #[test]
    fn later_layers_win_key_by_key_and_keep_their_origin() {
        let mut l = Layered::default();
        let base: Table = toml::from_str("[pool]\nmin = 1\nmax = 2").unwrap();
        l.add_table(&base, |_| Origin::Default);
        l.set("pool.max".into(), Value::Integer(9), Origin::Env("FWDB__POOL__MAX".into()));
        let t = l.to_table();
        assert_eq!(t["pool"]["min"].as_integer(), Some(1));
        assert_eq!(t["pool"]["max"].as_integer(), Some(9));
        assert_eq!(l.origin_of("pool.max"), Origin::Env("FWDB__POOL__MAX".into()));
        assert_eq!(l.origin_of("pool.max.nested"), Origin::Env("FWDB__POOL__MAX".into()));
        assert_eq!(l.origin_of("pool.min"), Origin::Default);
    }
}
