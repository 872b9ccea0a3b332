//! Design validation, in Rust before any write, with field-level errors
//! (`design.layers[0].order: ...`); the server's $jsonSchema validator of
//! the migrations checks again.

use super::model::{DesignPatch, Layer, Metadata, NewDesign};
use super::{DesignRepo, MAX_DESCRIPTION_CHARS, MAX_LAYERS, MAX_NAME_CHARS, MAX_TAGS, MAX_TAG_CHARS};
use crate::error::{Error, Result};
use crate::mongo::document::check_size;
use crate::mongo::versioned::{check_by, check_version};
use chrono::Utc;
use std::collections::HashSet;
use uuid::Uuid;

pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Error {
    crate::mongo::versioned::invalid::<super::Design>(field, why)
}

/// `layers[0].data` from serde_ignored's path (`layers.0.data`).
fn path_text(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_text(parent)),
        Path::Map { parent, key } => match path_text(parent) {
            base if base.is_empty() => key.clone(),
            base => format!("{base}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => path_text(parent),
    }
}

/// A request body as `T`: errors name the field; a field no type has (at
/// any depth: stored types read past them, requests may not have them) is
/// an error too.
fn from_json_value<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    let mut unknown: Option<String> = None;
    let mut record = |p: serde_ignored::Path<'_>| {
        unknown.get_or_insert_with(|| path_text(&p));
    };
    let de = serde_ignored::Deserializer::new(v, &mut record);
    let out = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let why =
            if inner.contains("UUID") || inner.contains("uuid") { format!("malformed id ({inner})") } else { inner };
        invalid(if path == "." { "(document)" } else { &path }, why)
    })?;
    if let Some(p) = unknown {
        let (parent, key) = p.rsplit_once('.').unwrap_or(("(document)", p.as_str()));
        return Err(invalid(parent, format!("unknown field `{key}`")));
    }
    Ok(out)
}

/// Parses a design id given as text (a path segment, a reference): a clear error when malformed.
pub fn parse_design_id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s.trim())
        .map_err(|_| invalid("_id", format!("malformed id `{}` (expected a UUID)", s.escape_debug())))
}

impl NewDesign {
    /// Parses and validates a request body; errors name the field (`design.avatarId: ...`).
    pub fn from_json(v: serde_json::Value) -> Result<NewDesign> {
        let new: NewDesign = from_json_value(v)?;
        new.validate()?;
        Ok(new)
    }

    /// Every rule checkable without a server (and more than the server's validator checks).
    pub fn validate(&self) -> Result<()> {
        DesignRepo::first_version(self, Uuid::nil(), Utc::now()).map(|_| ())
    }

    pub(crate) fn check_fields(&self) -> Result<()> {
        check_user(self.user_id)?;
        check_name(&self.name)?;
        check_layers(&self.layers)?;
        check_metadata(&self.metadata)
    }
}

impl DesignPatch {
    pub fn from_json(v: serde_json::Value) -> Result<DesignPatch> {
        let p: DesignPatch = from_json_value(v)?;
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<()> {
        check_version::<super::Design>(self.expected_version)?;
        check_by::<super::Design>(&self.changed_by)?;
        if let Some(n) = &self.name {
            check_name(n)?;
        }
        if let Some(l) = &self.layers {
            check_layers(l)?;
        }
        if let Some(m) = &self.metadata {
            check_metadata(m)?;
        }
        check_size("design", &self.changes()?)
    }
}

fn check_user(u: Uuid) -> Result<()> {
    if u.is_nil() {
        return Err(invalid("userId", "must not be the nil UUID"));
    }
    Ok(())
}

pub(crate) fn check_text(field: &str, s: &str, max: usize) -> Result<()> {
    if s.contains('\0') {
        return Err(invalid(field, "must not contain NUL bytes"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(invalid(field, format!("{n} characters, at most {max}")));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    check_text("name", name, MAX_NAME_CHARS)
}

pub(crate) fn check_layers(layers: &[Layer]) -> Result<()> {
    if layers.len() > MAX_LAYERS {
        return Err(invalid("layers", format!("{} layers, at most {MAX_LAYERS}", layers.len())));
    }
    let mut ids = HashSet::new();
    let mut orders = HashSet::new();
    for (i, l) in layers.iter().enumerate() {
        let f = format!("layers[{i}]");
        if l.id.trim().is_empty() {
            return Err(invalid(&format!("{f}.id"), "must not be empty"));
        }
        check_text(&format!("{f}.id"), &l.id, 128)?;
        if !ids.insert(l.id.as_str()) {
            return Err(invalid(&format!("{f}.id"), format!("duplicate layer id `{}`", l.id)));
        }
        if l.order < 0 {
            return Err(invalid(&format!("{f}.order"), "must not be negative"));
        }
        if !orders.insert(l.order) {
            return Err(invalid(&format!("{f}.order"), format!("duplicate order {}", l.order)));
        }
        if let Some(key) = bad_key(&l.data) {
            return Err(invalid(
                &format!("{f}.data"),
                format!("key `{key}` (keys must not start with `$` or contain `.` or NUL)"),
            ));
        }
    }
    Ok(())
}

fn bad_key(j: &serde_json::Value) -> Option<String> {
    match j {
        serde_json::Value::Object(o) => o.iter().find_map(|(k, v)| {
            if k.starts_with('$') || k.contains('.') || k.contains('\0') {
                Some(k.clone())
            } else {
                bad_key(v)
            }
        }),
        serde_json::Value::Array(a) => a.iter().find_map(bad_key),
        _ => None,
    }
}

fn check_metadata(m: &Metadata) -> Result<()> {
    if m.tags.len() > MAX_TAGS {
        return Err(invalid("metadata.tags", format!("{} tags, at most {MAX_TAGS}", m.tags.len())));
    }
    for (i, t) in m.tags.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(invalid(&format!("metadata.tags[{i}]"), "must not be empty"));
        }
        check_text(&format!("metadata.tags[{i}]"), t, MAX_TAG_CHARS)?;
    }
    if let Some(d) = &m.description {
        check_text("metadata.description", d, MAX_DESCRIPTION_CHARS)?;
    }
    if let Some(u) = &m.thumbnail_url {
        match url::Url::parse(u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
            _ => return Err(invalid("metadata.thumbnailUrl", format!("`{}` is not an http(s) URL", u.escape_debug()))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_rejected_at_any_depth_of_a_request() {
        let user = Uuid::new_v4();
        let e = NewDesign::from_json(json!({"userId": user, "name": "n", "colour": "red"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let body = json!({"userId": user, "name": "n", "layers": [{"id": "a", "type": "fabric", "order": 0, "x": 1}]});
        let e = NewDesign::from_json(body).unwrap_err();
        assert!(e.to_string().contains("design.layers[0]: unknown field `x`"), "{e}");
        let e = NewDesign::from_json(json!({"userId": user, "name": "n", "metadata": {"colour": 1}})).unwrap_err();
        assert!(e.to_string().contains("design.metadata: unknown field `colour`"), "{e}");
        let p = json!({"expectedVersion": 1, "changedBy": "u", "metadata": {"tags": [], "x": 1}});
        let e = DesignPatch::from_json(p).unwrap_err();
        assert!(e.to_string().contains("design.metadata: unknown field `x`"), "{e}");
        assert!(NewDesign::from_json(json!({"userId": user, "name": "n", "metadata": {"tags": ["a"]}})).is_ok());
    }
}
