//! `migrate new`: a new up/down pair named with the current UTC time.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::names::{file_name, slug, Direction};
use super::source::Store;
use crate::error::{Error, Result};

/// Creates `<root>/<store>/<yyyymmddHHMMSS>_<name>.up|down.<ext>` and returns
/// both paths. Refuses to overwrite, and refuses a timestamp not after the
/// newest existing one (two `new` in the same second).
pub fn new_migration(root: &Path, store: Store, name: &str, now: DateTime<Utc>) -> Result<(PathBuf, PathBuf)> {
    let slug = slug(name);
    if slug.is_empty() {
        return Err(Error::invalid_input(format!("migration name {name:?} has no letters or digits")));
    }
    let dir = root.join(store.dir_name());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let version = next_version(&dir, now)?;
    let up = dir.join(file_name(version, &slug, Direction::Up, store));
    let down = dir.join(file_name(version, &slug, Direction::Down, store));
    let (up_text, down_text) = templates(store, &slug);
    write_new(&up, &up_text)?;
    write_new(&down, &down_text)?;
    Ok((up, down))
}

/// now, or one second past the newest version in the folder, whichever is later.
fn next_version(dir: &Path, now: DateTime<Utc>) -> Result<i64> {
    let mut version: i64 = now.format("%Y%m%d%H%M%S").to_string().parse().unwrap_or_default();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let newest = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.get(..14)).and_then(|v| v.parse::<i64>().ok()))
        .max();
    if let Some(newest) = newest.filter(|n| *n >= version) {
        let t = chrono::NaiveDateTime::parse_from_str(&newest.to_string(), "%Y%m%d%H%M%S")
            .map_err(|e| Error::invalid_input(format!("newest migration version {newest}: {e}")))?;
        version = (t + chrono::Duration::seconds(1)).format("%Y%m%d%H%M%S").to_string().parse().unwrap_or(newest + 1);
    }
    Ok(version)
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

fn templates(store: Store, name: &str) -> (String, String) {
    match store {
        Store::Postgres => (
            format!("-- {name}: up. Runs in one transaction with its history row.\n-- For CREATE INDEX CONCURRENTLY, make the first line: -- fwdb:no-transaction\n\n"),
            format!("-- {name}: down. Undo exactly what the up file does.\n\n"),
        ),
        Store::Mongo => ("[\n]\n".to_owned(), "[\n]\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_loadable_pair_and_never_reuses_a_version() {
        let root = std::env::temp_dir().join(format!("fwdb-new-{}", uuid::Uuid::new_v4()));
        let now = DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z").unwrap().with_timezone(&Utc);
        let (up, down) = new_migration(&root, Store::Postgres, "Add items", now).unwrap();
        assert!(up.ends_with("postgres/20240506070809_add_items.up.sql"), "{}", up.display());
        assert!(down.exists());
        let (up2, _) = new_migration(&root, Store::Postgres, "second", now).unwrap();
        assert!(up2.ends_with("20240506070810_second.up.sql"), "{}", up2.display());
        let set = super::super::MigrationSource::Dir(root.clone()).load(Store::Postgres).unwrap();
        assert_eq!(set.migrations().len(), 2);
        let (m, _) = new_migration(&root, Store::Mongo, "designs", now).unwrap();
        assert!(m.to_string_lossy().ends_with(".up.json"));
        assert!(super::super::MigrationSource::Dir(root.clone()).load(Store::Mongo).is_ok());
        std::fs::remove_dir_all(root).ok();
    }
}
