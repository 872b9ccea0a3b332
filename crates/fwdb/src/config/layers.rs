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
///
/// Lists are values of one key (a later layer replaces a whole list), but a
/// file gives each element a line of its own: `elements` keeps the origin of
/// every element (`postgres.replicas[1]`) and of the keys of tables inside
/// lists (`a.items[0].name`), so an error about one element points at it.
#[derive(Debug, Default, Clone)]
pub struct Layered {
    entries: BTreeMap<String, (Value, Origin)>,
    elements: BTreeMap<String, Origin>,
}

impl Layered {
    pub fn add_table(&mut self, table: &Table, origin: impl Fn(&str) -> Origin) {
        let mut flat = Vec::new();
        flatten("", table, &mut flat);
        for (key, value) in flat {
            let mut inner = Vec::new();
            element_paths(&key, &value, &mut inner);
            let o = origin(&key);
            self.set(key, value, o);
            for path in inner {
                let o = origin(&path);
                self.elements.insert(path, o);
            }
        }
    }

    /// Sets a key, dropping anything the new value shadows (a table replaced
    /// by a scalar, or a scalar replaced by a table, and the elements of a
    /// list it replaces).
    pub fn set(&mut self, key: String, value: Value, origin: Origin) {
        let child_prefix = format!("{key}.");
        self.entries.retain(|k, _| !k.starts_with(&child_prefix) && !key.starts_with(&format!("{k}.")));
        let entries = &self.entries;
        self.elements.retain(|k, _| {
            let owner = list_owner(k);
            owner != key && entries.contains_key(owner)
        });
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

    /// The origin of `key` (dotted, with `[n]` for list elements as serde
    /// paths write them), or of the nearest enclosing key that has one.
    pub fn origin_of(&self, key: &str) -> Origin {
        let mut k = key;
        loop {
            if let Some((_, o)) = self.entries.get(k) {
                return o.clone();
            }
            if let Some(o) = self.elements.get(k) {
                return o.clone();
            }
            if let Some((_, o)) = self.entries.iter().find(|(e, _)| e.starts_with(&format!("{k}."))).map(|(_, v)| v) {
                return o.clone();
            }
            match parent_key(k) {
                Some(parent) => k = parent,
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

/// The paths inside a list value: `key[i]` for each element, and the keys of
/// tables (and lists) nested in them.
fn element_paths(key: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{key}[{i}]");
                out.push(path.clone());
                element_paths(&path, item, out);
            }
        }
        Value::Table(t) => {
            for (k, v) in t {
                let path = format!("{key}.{k}");
                out.push(path.clone());
                element_paths(&path, v, out);
            }
        }
        _ => {}
    }
}

/// The key holding the list that `path` is inside: `a.b` for `a.b[1].c`.
fn list_owner(path: &str) -> &str {
    path.split_once('[').map_or(path, |(owner, _)| owner)
}

/// The enclosing key: `a.b[1]` for `a.b[1].c`, `a.b` for `a.b[1]`.
fn parent_key(key: &str) -> Option<&str> {
    if let Some(list) = key.strip_suffix(']') {
        if let Some((parent, _)) = list.rsplit_once('[') {
            return Some(parent);
        }
    }
    key.rsplit_once('.').map(|(parent, _)| parent)
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
        let problem =
            |message: String| ConfigProblem { key: "(file)".into(), origin: path.display().to_string(), message };
        let table: Table =
            toml::from_str(text).map_err(|e| problem(format!("not valid TOML: {}", e.to_string().trim())))?;
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
            match parent_key(k) {
                Some(parent) => k = parent,
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
            toml_edit::Item::Value(v) => value_lines(&key, v, text, out),
            toml_edit::Item::ArrayOfTables(tables) => {
                for (i, t) in tables.iter().enumerate() {
                    let path = format!("{key}[{i}]");
                    if let Some(span) = t.span() {
                        out.insert(path.clone(), line_at(text, span.start));
                    }
                    key_lines(&path, t, text, out);
                }
            }
            toml_edit::Item::None => {}
        }
    }
}

/// The lines inside an inline table or a list: `key.k`, `key[i]`.
fn value_lines(key: &str, value: &toml_edit::Value, text: &str, out: &mut BTreeMap<String, usize>) {
    match value {
        toml_edit::Value::InlineTable(t) => key_lines_inline(key, t, text, out),
        toml_edit::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{key}[{i}]");
                if let Some(span) = item.span() {
                    out.insert(path.clone(), line_at(text, span.start));
                }
                value_lines(&path, item, text, out);
            }
        }
        _ => {}
    }
}

fn key_lines_inline(prefix: &str, table: &toml_edit::InlineTable, text: &str, out: &mut BTreeMap<String, usize>) {
    for (k, v) in table.iter() {
        let key = format!("{prefix}.{k}");
        if let Some(span) = table.key(k).and_then(|kk| kk.span()).or_else(|| v.span()) {
            out.insert(key.clone(), line_at(text, span.start));
        }
        value_lines(&key, v, text, out);
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
    fn list_elements_and_tables_inside_lists_know_their_lines() {
        let text = "[a]\nhosts = [\n  \"h1\",\n  { name = \"h2\" },\n]\n[[a.items]]\nname = \"x\"\n[[a.items]]\n\nname = \"y\"\n";
        let f = ParsedFile::parse(Path::new("fwdb.toml"), text).unwrap();
        assert_eq!(f.line_of("a.hosts"), 2);
        assert_eq!(f.line_of("a.hosts[0]"), 3);
        assert_eq!(f.line_of("a.hosts[1].name"), 4);
        assert_eq!(f.line_of("a.items[1]"), 8);
        assert_eq!(f.line_of("a.items[1].name"), 10);
        assert_eq!(f.line_of("a.items[1].missing"), 8);
    }

    #[test]
    fn an_element_of_a_list_has_the_origin_of_its_own_line_until_a_later_layer_replaces_the_list() {
        let text = "[a]\nhosts = [\n  \"h1\",\n  7,\n]\n[[a.items]]\nname = \"x\"\n";
        let f = ParsedFile::parse(Path::new("fwdb.toml"), text).unwrap();
        let mut l = Layered::default();
        l.add_table(&f.table, |key| Origin::File { path: f.path.clone(), line: f.line_of(key), profile: None });
        let at = |line| Origin::File { path: "fwdb.toml".into(), line, profile: None };
        assert_eq!(l.origin_of("a.hosts[1]"), at(4));
        assert_eq!(l.origin_of("a.items[0].name"), at(7));
        assert_eq!(l.origin_of("a.items[0].name[2]"), at(7));
        l.set("a.hosts".into(), Value::Array(vec![]), Origin::Env("FWDB__A__HOSTS".into()));
        assert_eq!(l.origin_of("a.hosts[1]"), Origin::Env("FWDB__A__HOSTS".into()));
        assert_eq!(l.origin_of("a.items[0].name"), at(7));
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
