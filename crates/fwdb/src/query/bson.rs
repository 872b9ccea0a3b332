//! The MongoDB compiler of the query AST: the same [`Query`] a service builds
//! for PostgreSQL becomes a filter, a sort, a limit and a skip. Values become
//! BSON (uuids as their canonical text, which is how fwdb stores ids in
//! MongoDB); nothing is interpolated into a string except LIKE patterns, which
//! become anchored regular expressions with every other character escaped.

use super::check::invalid;
use super::cursor::{self, Key};
use super::filter::{Condition, FilterNode, Op};
use super::value::Value;
use super::{Deleted, Entity, Query};
use crate::error::Result;
use mongodb::bson::{doc, Bson, Document, Regex};

/// A query compiled for MongoDB.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoQuery {
    pub filter: Document,
    pub sort: Document,
    pub limit: Option<i64>,
    pub skip: Option<u64>,
}

/// A value as BSON (uuids as text, timestamps as BSON dates, decimals as text).
pub fn value_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::I64(i) => Bson::Int64(*i),
        Value::F64(f) => Bson::Double(*f),
        Value::Decimal(d) => Bson::String(d.to_string()),
        Value::String(s) => Bson::String(s.clone()),
        Value::Uuid(u) => Bson::String(u.to_string()),
        Value::Timestamp(t) => Bson::DateTime(mongodb::bson::DateTime::from_millis(t.timestamp_millis())),
        Value::Date(d) => Bson::String(d.to_string()),
        Value::Json(j) => json_bson(j),
        Value::StringList(l) => Bson::Array(l.iter().cloned().map(Bson::String).collect()),
        Value::UuidList(l) => Bson::Array(l.iter().map(|u| Bson::String(u.to_string())).collect()),
    }
}

/// JSON as BSON (numbers that fit stay integers).
pub fn json_bson(j: &serde_json::Value) -> Bson {
    match j {
        serde_json::Value::Null => Bson::Null,
        serde_json::Value::Bool(b) => Bson::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Bson::Int64(i),
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Bson::String(s.clone()),
        serde_json::Value::Array(a) => Bson::Array(a.iter().map(json_bson).collect()),
        serde_json::Value::Object(o) => Bson::Document(o.iter().map(|(k, v)| (k.clone(), json_bson(v))).collect()),
    }
}

/// A SQL LIKE pattern as an anchored regular expression (`%` any run, `_` one
/// character, `\` escapes; every other character literal).
pub fn like_regex(pattern: &str) -> String {
    let mut out = String::from("^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            '\\' => {
                if let Some(n) = chars.next() {
                    push_literal(&mut out, n);
                }
            }
            c => push_literal(&mut out, c),
        }
    }
    out.push('$');
    out
}

fn push_literal(out: &mut String, c: char) {
    if "\\^$.|?*+()[]{}/-".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

fn regex(pattern: String, options: &str) -> Bson {
    Bson::RegularExpression(Regex { pattern, options: options.to_string() })
}

/// One filter node as a MongoDB filter document.
pub fn filter_doc(node: &FilterNode) -> Result<Document> {
    node.validate()?;
    node_doc(node)
}

fn node_doc(node: &FilterNode) -> Result<Document> {
    Ok(match node {
        FilterNode::Cond(c) => cond_doc(c)?,
        FilterNode::And(v) if v.is_empty() => Document::new(),
        FilterNode::And(v) => doc! { "$and": v.iter().map(node_doc).collect::<Result<Vec<_>>>()? },
        // An empty OR is false: `_id` in nothing.
        FilterNode::Or(v) if v.is_empty() => doc! { "_id": { "$in": [] } },
        FilterNode::Or(v) => doc! { "$or": v.iter().map(node_doc).collect::<Result<Vec<_>>>()? },
        FilterNode::Not(n) => doc! { "$nor": [node_doc(n)?] },
    })
}

fn cond_doc(c: &Condition) -> Result<Document> {
    let v = value_bson(&c.value);
    let f = c.field;
    Ok(match c.op {
        Op::Eq => doc! { f: v },
        Op::Ne => doc! { f: { "$ne": v } },
        Op::Lt => doc! { f: { "$lt": v } },
        Op::Le => doc! { f: { "$lte": v } },
        Op::Gt => doc! { f: { "$gt": v } },
        Op::Ge => doc! { f: { "$gte": v } },
        Op::In => doc! { f: { "$in": v } },
        Op::IsNull => doc! { f: Bson::Null },
        Op::IsNotNull => doc! { f: { "$ne": Bson::Null } },
        Op::Like | Op::ILike | Op::EqIgnoreCase => {
            let Value::String(s) = &c.value else { return Err(invalid(f, "needs a string")) };
            let pattern = if c.op == Op::EqIgnoreCase { like_regex(&super::escape_like(s)) } else { like_regex(s) };
            doc! { f: regex(pattern, if c.op == Op::Like { "s" } else { "is" }) }
        }
        Op::Descendant => {
            let Value::String(s) = &c.value else { return Err(invalid(f, "needs a label path")) };
            let mut escaped = String::new();
            s.chars().for_each(|ch| push_literal(&mut escaped, ch));
            doc! { f: regex(format!("^{escaped}(\\.|$)"), "") }
        }
        Op::JsonContains => match &c.value {
            // Every key/value of the object, as dotted equalities.
            Value::Json(serde_json::Value::Object(o)) => {
                let mut d = Document::new();
                flatten(f, o, &mut d);
                d
            }
            Value::Json(serde_json::Value::Array(a)) => {
                doc! { f: { "$all": a.iter().map(json_bson).collect::<Vec<_>>() } }
            }
            _ => return Err(invalid(f, "containment needs a JSON object or array")),
        },
        Op::Similar => return Err(invalid(f, "trigram similarity is PostgreSQL only (no MongoDB equivalent)")),
    })
}

fn flatten(prefix: &str, o: &serde_json::Map<String, serde_json::Value>, out: &mut Document) {
    for (k, v) in o {
        let path = format!("{prefix}.{k}");
        match v {
            serde_json::Value::Object(inner) if !inner.is_empty() => flatten(&path, inner, out),
            v => {
                out.insert(path, json_bson(v));
            }
        }
    }
}

/// Rows after the cursor's values: `{$or: [{a: {$gt: va}}, {a: va, b: {$gt: vb}}, ...]}`.
fn keyset(keys: &[Key], values: &[Value]) -> Document {
    let mut branches = Vec::new();
    for i in 0..keys.len() {
        let mut d = Document::new();
        for (k, v) in keys[..i].iter().zip(values) {
            d.insert(k.field, value_bson(v));
        }
        let op = if keys[i].desc { "$lt" } else { "$gt" };
        d.insert(keys[i].field, doc! { op: value_bson(&values[i]) });
        branches.push(Bson::Document(d));
    }
    doc! { "$or": branches }
}

/// ANDed documents as one: nested `$and`s are flattened and, when no field
/// repeats, merged into a single document (`{userId: .., status: .., deletedAt: null}`),
/// the shape a planner matches to a compound index most easily.
fn merge(parts: Vec<Document>) -> Document {
    let mut flat: Vec<Document> = Vec::new();
    let mut stack: Vec<Document> = parts.into_iter().rev().collect();
    while let Some(d) = stack.pop() {
        match (d.len(), d.get_array("$and")) {
            (1, Ok(inner)) if inner.iter().all(|b| b.as_document().is_some()) => {
                stack.extend(inner.iter().rev().filter_map(|b| b.as_document().cloned()));
            }
            _ => flat.push(d),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if !flat.iter().flat_map(|d| d.keys()).all(|k| seen.insert(k.clone())) {
        return doc! { "$and": flat };
    }
    let mut merged = Document::new();
    for d in flat {
        merged.extend(d);
    }
    merged
}

impl<E: Entity> Query<E> {
    /// This query as a MongoDB filter, sort, limit and skip (soft-delete scope and cursor included).
    pub fn to_mongo(&self) -> Result<MongoQuery> {
        self.validate()?;
        let mut parts: Vec<Document> = Vec::new();
        if let Some(f) = &self.filter {
            let d = node_doc(f)?;
            if !d.is_empty() {
                parts.push(d);
            }
        }
        if let Some(d) = E::DELETED_AT {
            match self.deleted {
                Deleted::Exclude => parts.push(doc! { d: Bson::Null }),
                Deleted::Include => {}
                Deleted::Only => parts.push(doc! { d: { "$ne": Bson::Null } }),
            }
        }
        let keys = self.keys();
        if let Some(c) = &self.after {
            let values = cursor::decode(c, &E::qualified_name(), &keys)?;
            parts.push(keyset(&keys, &values));
        }
        let filter = merge(parts);
        let mut sort = Document::new();
        for k in &keys {
            sort.insert(k.field, if k.desc { -1 } else { 1 });
        }
        Ok(MongoQuery { filter, sort, limit: self.limit_checked()?, skip: self.offset.map(|o| o as u64) })
    }

    /// The filter part only (counts and existence checks).
    pub fn mongo_filter(&self) -> Result<Document> {
        Ok(self.to_mongo()?.filter)
    }

    /// The limit a page of this query fetches (the given one, or 100).
    pub(crate) fn page_limit(&self) -> Result<i64> {
        Ok(self.limit_checked()?.unwrap_or(100))
    }
}
