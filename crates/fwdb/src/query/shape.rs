//! The SQL text of a query depends only on its shape: the fields and
//! operators of its filter (and which values are NULL, written as the NULL
//! keyword), the ordering, the soft-delete scope, its limit (a number in the
//! text, see `Query::build`), and whether it has an offset or a cursor. The
//! values are always parameters. So the text is
//! built with sea-query once per shape and kept here; a query of a known
//! shape only collects its values, in the order sea-query would bind them.
//! Before a shape is kept, that order is checked against sea-query's own
//! values for the same query, so a walk that disagreed would build every
//! time (slower) instead of binding wrongly.

use super::bind::Bind;
use super::cursor::Key;
use super::filter::{FilterNode, Op};
use super::value::Value;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, OnceLock, RwLock};

/// Shapes are fixed by the code that builds queries, so few; the bound only
/// guards against a program that builds them from data.
const MAX_SHAPES: usize = 1024;

/// SQL text by shape key. Statement text only: no connection, pool or configuration.
fn cache() -> &'static RwLock<HashMap<String, Arc<str>>> {
    static CACHE: OnceLock<RwLock<HashMap<String, Arc<str>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub(crate) fn get(key: &str) -> Option<Arc<str>> {
    cache().read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
}

pub(crate) fn put(key: String, sql: Arc<str>) {
    let mut map = cache().write().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_SHAPES {
        map.clear();
    }
    map.insert(key, sql);
}

/// What decides the text of a query's statement, as a string.
pub(crate) struct KeyParts<'a> {
    pub entity: &'static str,
    pub table: &'static str,
    /// `R` rows, `C` count, `E` exists.
    pub kind: char,
    pub deleted: u8,
    pub filter: Option<&'a FilterNode>,
    pub keys: &'a [Key],
    /// Written into the text (see `Query::build`).
    pub limit: Option<i64>,
    pub offset: bool,
    pub after: bool,
}

pub(crate) fn key(p: &KeyParts<'_>) -> String {
    let mut k = String::with_capacity(96);
    let _ = write!(k, "{}.{}|{}{}|", p.entity, p.table, p.kind, p.deleted);
    if let Some(f) = p.filter {
        filter_key(f, &mut k);
    }
    // The ordering shapes the cursor's condition too, in counts and exists.
    k.push('|');
    for key in p.keys {
        let _ = write!(k, "{}{},", key.field, if key.desc { '-' } else { '+' });
    }
    let _ = write!(k, "|{:?}{}{}", p.limit, p.offset as u8, p.after as u8);
    k
}

fn filter_key(n: &FilterNode, k: &mut String) {
    let (open, children) = match n {
        FilterNode::Cond(c) => {
            let _ = write!(k, "{}:{:?}:{},", c.field, c.op, bound(c.op, &c.value) as u8);
            return;
        }
        FilterNode::And(v) => ("&(", v.as_slice()),
        FilterNode::Or(v) => ("|(", v.as_slice()),
        FilterNode::Not(n) => ("!(", std::slice::from_ref(n.as_ref())),
    };
    k.push_str(open);
    for c in children {
        filter_key(c, k);
    }
    k.push(')');
}

/// Whether a condition's value is a parameter (not the NULL keyword, not absent).
fn bound(op: Op, v: &Value) -> bool {
    !matches!(op, Op::IsNull | Op::IsNotNull) && !matches!(v, Value::Null)
}

/// The filter's parameters in the order the compiler (`sql::node`) writes them.
pub(crate) fn filter_values(n: &FilterNode, out: &mut Vec<Bind>) {
    match n {
        FilterNode::Cond(c) => {
            if bound(c.op, &c.value) {
                out.push(Bind::of(&c.value));
            }
        }
        FilterNode::And(v) | FilterNode::Or(v) => v.iter().for_each(|c| filter_values(c, out)),
        FilterNode::Not(n) => filter_values(n, out),
    }
}

/// The cursor's parameters in the order `keyset` writes them: one row
/// comparison when every key goes the same way, else `a > $1 OR (a = $1 AND
/// ...)`, each key but the last twice.
pub(crate) fn keyset_values(keys: &[Key], values: &[Value], out: &mut Vec<Bind>) {
    let uniform = keys.iter().all(|k| keys.first().is_some_and(|f| f.desc == k.desc));
    let n = values.len();
    for (i, v) in values.iter().enumerate() {
        out.push(Bind::of(v));
        if !uniform && i + 1 < n {
            out.push(Bind::of(v));
        }
    }
}

/// OFFSET as a parameter.
pub(crate) fn count_value(n: u64) -> Bind {
    Bind::One(sea_query::Value::BigUnsigned(Some(n)))
}
