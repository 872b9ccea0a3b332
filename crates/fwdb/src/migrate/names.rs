//! Migration file names: `<UTC yyyymmddHHMMSS>_<name>.(up|down).(sql|json)`.

use super::source::Store;
use crate::error::{Error, Result};

/// Which script of a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileName {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
}

/// Parses a migration file name. `Ok(None)` for files that are not
/// migrations of this store (README.md, .gitkeep, another extension), an
/// error for one that has the store's extension but a malformed name, so a
/// typo is not silently skipped.
pub(crate) fn parse_file_name(file: &str, store: Store) -> Result<Option<FileName>> {
    let Some(stem) = file.strip_suffix(&format!(".{}", store.extension())) else { return Ok(None) };
    if file.starts_with('.') {
        return Ok(None);
    }
    let bad = |why: &str| {
        Error::invalid_input(format!(
            "migration file {file}: {why}; expected <UTC yyyymmddHHMMSS>_<name>.up.{ext} or .down.{ext}",
            ext = store.extension()
        ))
    };
    let (stem, direction) = if let Some(s) = stem.strip_suffix(".up") {
        (s, Direction::Up)
    } else if let Some(s) = stem.strip_suffix(".down") {
        (s, Direction::Down)
    } else {
        return Err(bad("no .up or .down before the extension"));
    };
    let (ts, name) = stem.split_once('_').ok_or_else(|| bad("no _ between timestamp and name"))?;
    let version = parse_version(ts).map_err(|why| bad(&why))?;
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
        return Err(bad("the name must be lower-case letters, digits and _"));
    }
    Ok(Some(FileName { version, name: name.to_owned(), direction }))
}

/// A version is a UTC timestamp `yyyymmddHHMMSS`, checked to be a real date.
pub(crate) fn parse_version(ts: &str) -> std::result::Result<i64, String> {
    if ts.len() != 14 || !ts.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("version {ts:?} is not a 14-digit UTC timestamp (yyyymmddHHMMSS)"));
    }
    chrono::NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S")
        .map_err(|e| format!("version {ts} is not a valid date and time: {e}"))?;
    ts.parse().map_err(|e| format!("version {ts}: {e}"))
}

/// The file name for a new migration.
pub(crate) fn file_name(version: i64, name: &str, direction: Direction, store: Store) -> String {
    let dir = match direction {
        Direction::Up => "up",
        Direction::Down => "down",
    };
    format!("{version}_{name}.{dir}.{}", store.extension())
}

/// Turns "Add users email index" into "add_users_email_index".
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_up_and_down() {
        let f = parse_file_name("20240101120000_create_users.up.sql", Store::Postgres).unwrap().unwrap();
        assert_eq!(f, FileName { version: 20240101120000, name: "create_users".into(), direction: Direction::Up });
        let f = parse_file_name("20240101120000_designs.down.json", Store::Mongo).unwrap().unwrap();
        assert_eq!(f.direction, Direction::Down);
    }

    #[test]
    fn ignores_other_files() {
        for f in ["README.md", ".gitkeep", "20240101120000_x.up.json", ".20240101120000_x.up.sql.swp"] {
            assert_eq!(parse_file_name(f, Store::Postgres).unwrap(), None, "{f}");
        }
    }

    #[test]
    fn rejects_malformed_names_with_a_reason() {
        for (f, why) in [
            ("2024_x.up.sql", "14-digit"),
            ("20241301120000_x.up.sql", "valid date"),
            ("20240101120000_x.sql", ".up or .down"),
            ("20240101120000.up.sql", "no _"),
            ("20240101120000_Bad-Name.up.sql", "lower-case"),
            ("20240101120000_.up.sql", "lower-case"),
        ] {
            let e = parse_file_name(f, Store::Postgres).unwrap_err().to_string();
            assert!(e.contains(f) && e.contains(why), "{f}: {e}");
        }
    }

    #[test]
    fn slugs_and_names_round_trip() {
        assert_eq!(slug("  Add users' email index! "), "add_users_email_index");
        let n = file_name(20240101120000, &slug("Add X"), Direction::Down, Store::Postgres);
        assert_eq!(n, "20240101120000_add_x.down.sql");
        assert!(parse_file_name(&n, Store::Postgres).unwrap().is_some());
    }
}
