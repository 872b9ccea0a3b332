//! Keyset cursors: opaque to callers, `base64url(JSON)` of the ordering they
//! were made for and the last row's values of that ordering (ending with id).
//! A cursor for another ordering, entity or version is rejected, never guessed at.

use super::check::invalid;
use super::value::{Kind, Value};
use crate::error::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

const VERSION: u64 = 1;
/// Longer than any cursor we make (a few keys of at most a few hundred bytes).
const MAX_LEN: usize = 8 * 1024;

/// One key of an ordering: the field, its kind and whether it descends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub field: &'static str,
    pub kind: Kind,
    pub desc: bool,
}

/// The ordering's signature: the entity and every key with its direction.
pub(crate) fn signature(entity: &str, keys: &[Key]) -> String {
    let mut s = entity.to_string();
    for k in keys {
        s.push(':');
        s.push_str(k.field);
        s.push_str(if k.desc { "-" } else { "+" });
    }
    s
}

pub(crate) fn encode(entity: &str, keys: &[Key], values: &[Value]) -> String {
    let vals: Vec<serde_json::Value> = values.iter().map(value_json).collect();
    let doc = json!({ "v": VERSION, "o": signature(entity, keys), "k": vals });
    URL_SAFE_NO_PAD.encode(doc.to_string())
}

pub(crate) fn decode(cursor: &str, entity: &str, keys: &[Key]) -> Result<Vec<Value>> {
    let bad = |why: &str| invalid("cursor", why);
    if cursor.len() > MAX_LEN {
        return Err(bad("too long"));
    }
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).map_err(|_| bad("malformed (not one of ours)"))?;
    let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("malformed (not one of ours)"))?;
    if doc.get("v").and_then(|v| v.as_u64()) != Some(VERSION) {
        return Err(bad("unknown cursor version"));
    }
    if doc.get("o").and_then(|o| o.as_str()) != Some(signature(entity, keys).as_str()) {
        return Err(bad("made for another ordering or entity"));
    }
    let vals = doc.get("k").and_then(|k| k.as_array()).ok_or_else(|| bad("malformed (no values)"))?;
    if vals.len() != keys.len() {
        return Err(bad("malformed (wrong number of values)"));
    }
    keys.iter()
        .zip(vals)
        .map(|(k, v)| json_value(v, k.kind).ok_or_else(|| bad("malformed (a value of the wrong kind)")))
        .collect()
}

fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::I64(i) => json!(i),
        Value::F64(f) => json!(f),
        Value::Decimal(d) => json!(d.to_string()),
        Value::String(s) => json!(s),
        Value::Uuid(u) => json!(u.to_string()),
        Value::Timestamp(t) => json!(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        Value::Date(d) => json!(d.to_string()),
        Value::Json(j) => j.clone(),
        Value::StringList(l) => json!(l),
        Value::UuidList(l) => json!(l.iter().map(|u| u.to_string()).collect::<Vec<_>>()),
    }
}

fn json_value(v: &serde_json::Value, kind: Kind) -> Option<Value> {
    Some(match kind {
        Kind::Bool => Value::Bool(v.as_bool()?),
        Kind::I64 => Value::I64(v.as_i64()?),
        Kind::F64 => Value::F64(v.as_f64()?),
        Kind::Date => Value::Date(v.as_str()?.parse().ok()?),
        Kind::Decimal => Value::Decimal(v.as_str()?.parse().ok()?),
        Kind::Text | Kind::Ltree => {
            let s = v.as_str()?;
            if s.contains('\0') {
                return None;
            }
            Value::String(s.to_string())
        }
        Kind::Uuid => Value::Uuid(v.as_str()?.parse().ok()?),
        Kind::Timestamp => Value::Timestamp(chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?.to_utc()),
        Kind::Json => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn keys() -> Vec<Key> {
        vec![Key { field: "email", kind: Kind::Text, desc: true }, Key { field: "id", kind: Kind::Uuid, desc: false }]
    }

    #[test]
    fn a_cursor_round_trips_the_last_rows_order_values() {
        let id = Uuid::new_v4();
        let vals = vec![Value::String("o'brien@x.com".into()), Value::Uuid(id)];
        let c = encode("shared.users", &keys(), &vals);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{c}");
        assert_eq!(decode(&c, "shared.users", &keys()).unwrap(), vals);
    }

    #[test]
    fn a_cursor_made_for_another_ordering_or_entity_is_a_validation_error() {
        let c = encode("shared.users", &keys(), &[Value::String("a".into()), Value::Uuid(Uuid::nil())]);
        let other = vec![Key { field: "email", kind: Kind::Text, desc: false }, keys()[1]];
        let e = decode(&c, "shared.users", &other).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Validation);
        assert!(e.to_string().contains("another ordering"), "{e}");
        assert!(decode(&c, "catalog.items", &keys()).is_err());
    }

    #[test]
    fn malformed_cursors_are_validation_errors_naming_the_cursor() {
        let forged_kind =
            URL_SAFE_NO_PAD.encode(json!({"v":1,"o":"shared.users:email-:id+","k":["a","not-a-uuid"]}).to_string());
        let wrong_count = URL_SAFE_NO_PAD.encode(json!({"v":1,"o":"shared.users:email-:id+","k":["a"]}).to_string());
        let future = URL_SAFE_NO_PAD.encode(json!({"v":2,"o":"shared.users:email-:id+","k":[]}).to_string());
        let too_long = "A".repeat(MAX_LEN + 1);
        for bad in
            ["", "!!!", "'; DROP TABLE shared.users; --", "eyJ2IjoxfQ", &forged_kind, &wrong_count, &future, &too_long]
        {
            let e = decode(bad, "shared.users", &keys()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Validation, "{bad}");
            assert!(e.to_string().contains("cursor"), "{e}");
        }
    }
}
