//! The pg_basebackup tar stream, read on its way to storage: what it says
//! about itself (`backup_label`, `backup_manifest`), every regular file's
//! size and modification time, and, for diff and incr backups, the files left
//! out because the reference backup already holds them.
//!
//! A file is left out when its size and modification time equal the
//! reference's entry and that time is before the reference copied it (by the
//! server's clock, from its `backup_label`): a write after the copy would have
//! moved the time past it. This is pgBackRest's default comparison. After
//! the stream, the server's own checksums (`backup_manifest`) of the files
//! left out are compared with the reference's, so a file changed behind an
//! unchanged time fails the backup instead of being silently reused.

use super::manifest::FileEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Always taken from the newest backup: they describe that backup. (pg_control
/// also ends with its own CRC32C, so its whole-file CRC32C is the same
/// constant whatever it holds: no checksum comparison can tell its versions apart.)
pub(crate) const ALWAYS_STORED: [&str; 4] = ["backup_label", "backup_manifest", "tablespace_map", "global/pg_control"];

const BLOCK: usize = 512;

/// One regular file seen in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenFile {
    pub path: String,
    pub size: u64,
    pub mtime: i64,
    /// Its bytes are in this backup's tar (else in the reference's chain).
    pub stored: bool,
}

/// What a pg_basebackup tar stream says about itself.
#[derive(Default, Debug, Clone)]
pub(crate) struct TarFacts {
    pub label: String,
    /// The whole backup_manifest (its WAL-Ranges are at the end, checksums per file).
    pub manifest: Vec<u8>,
    pub files: Vec<SeenFile>,
}

fn field<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let at = text.find(marker)? + marker.len();
    text[at..].split_whitespace().next()
}

#[derive(serde::Deserialize)]
struct PgManifest {
    #[serde(rename = "Files", default)]
    files: Vec<PgManifestFile>,
    #[serde(rename = "WAL-Ranges", default)]
    wal_ranges: Vec<PgWalRange>,
}

#[derive(serde::Deserialize)]
struct PgManifestFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

#[derive(serde::Deserialize)]
struct PgWalRange {
    #[serde(rename = "End-LSN")]
    end_lsn: String,
}

impl TarFacts {
    pub fn start_lsn(&self) -> Option<String> {
        field(&self.label, "START WAL LOCATION: ").map(str::to_string)
    }
    pub fn timeline(&self) -> Option<u32> {
        field(&self.label, "START TIMELINE: ").and_then(|t| t.parse().ok())
    }
    /// `START TIME` of backup_label, epoch seconds: taken by the server after
    /// the backup's checkpoint, before any file is read. None when its time
    /// zone is not UTC or a numeric offset.
    pub fn start_time(&self) -> Option<i64> {
        let at = self.label.find("START TIME: ")? + "START TIME: ".len();
        let line = self.label[at..].lines().next()?.trim();
        let (stamp, zone) = line.rsplit_once(' ')?;
        let offset = match zone {
            "UTC" | "GMT" | "Etc/UTC" => "+0000".to_string(),
            z if (z.starts_with('+') || z.starts_with('-')) && z.len() == 3 => format!("{z}00"),
            z => z.to_string(),
        };
        chrono::DateTime::parse_from_str(&format!("{stamp} {offset}"), "%Y-%m-%d %H:%M:%S %z")
            .ok()
            .map(|t| t.timestamp())
    }
    fn pg_manifest(&self) -> Option<PgManifest> {
        serde_json::from_slice(&self.manifest).ok()
    }
    pub fn stop_lsn(&self) -> Option<String> {
        self.pg_manifest()?.wal_ranges.last().map(|r| r.end_lsn.clone())
    }
    /// Checksums by path (`ALGORITHM:hex`) from backup_manifest.
    pub fn checksums(&self) -> HashMap<String, String> {
        let Some(m) = self.pg_manifest() else { return HashMap::new() };
        m.files.into_iter().filter_map(|f| Some((f.path?, format!("{}:{}", f.algorithm?, f.checksum?)))).collect()
    }
}

/// Passes a tar stream through, collecting [`TarFacts`] and leaving out the
/// entries of files the reference holds unchanged.
pub(crate) struct TarFilter<R> {
    inner: R,
    facts: Arc<Mutex<TarFacts>>,
    reference: HashMap<String, FileEntry>,
    header: Vec<u8>,
    /// Bytes of the current entry's data plus padding still to pass.
    remaining: u64,
    data_left: u64,
    current: Current,
    keep: bool,
    out: Vec<u8>,
    out_at: usize,
    eof: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Current {
    Other,
    Label,
    Manifest,
}

/// (path, size, mtime, type flag) of a ustar header; None for the end blocks.
fn parse_header(h: &[u8]) -> Option<(String, u64, i64, u8)> {
    if h.iter().all(|&b| b == 0) {
        return None;
    }
    let text = |r: std::ops::Range<usize>| {
        let f = &h[r];
        let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
        String::from_utf8_lossy(&f[..end]).to_string()
    };
    let octal = |r: std::ops::Range<usize>| {
        u64::from_str_radix(text(r).trim_matches(|c: char| c == ' ' || c == '\0'), 8).unwrap_or(0)
    };
    let (name, prefix) = (text(0..100), text(345..500));
    let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
    Some((path.trim_start_matches("./").to_string(), octal(124..136), octal(136..148) as i64, h[156]))
}

impl<R> TarFilter<R> {
    /// `reference`: the file list of the backup to compare with (empty: store everything).
    pub fn new(inner: R, reference: &[FileEntry]) -> (Self, Arc<Mutex<TarFacts>>) {
        let facts = Arc::new(Mutex::new(TarFacts::default()));
        let reference = reference.iter().map(|f| (f.path.clone(), f.clone())).collect();
        let f = TarFilter {
            inner,
            facts: facts.clone(),
            reference,
            header: Vec::with_capacity(BLOCK),
            remaining: 0,
            data_left: 0,
            current: Current::Other,
            keep: true,
            out: Vec::new(),
            out_at: 0,
            eof: false,
        };
        (f, facts)
    }

    fn unchanged(&self, path: &str, size: u64, mtime: i64) -> bool {
        !ALWAYS_STORED.contains(&path)
            && self.reference.get(path).is_some_and(|r| r.size == size && r.mtime == mtime && mtime < r.copied_at)
    }

    fn on_header(&mut self, h: Vec<u8>) {
        let Some((path, size, mtime, kind)) = parse_header(&h) else {
            self.out.extend_from_slice(&h);
            return;
        };
        let regular = kind == b'0' || kind == 0;
        self.keep = !(regular && self.unchanged(&path, size, mtime));
        self.current = match path.as_str() {
            "backup_label" => Current::Label,
            "backup_manifest" => Current::Manifest,
            _ => Current::Other,
        };
        if regular {
            let seen = SeenFile { path, size, mtime, stored: self.keep };
            self.facts.lock().unwrap_or_else(|p| p.into_inner()).files.push(seen);
        }
        if self.keep {
            self.out.extend_from_slice(&h);
        }
        self.data_left = size;
        self.remaining = size.div_ceil(BLOCK as u64) * BLOCK as u64;
    }

    fn on_data(&mut self, data: &[u8], padding: &[u8]) {
        if self.current != Current::Other {
            let mut f = self.facts.lock().unwrap_or_else(|p| p.into_inner());
            match self.current {
                Current::Label => f.label.push_str(&String::from_utf8_lossy(data)),
                _ => f.manifest.extend_from_slice(data),
            }
        }
        if self.keep {
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(padding);
        }
    }

    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.remaining == 0 {
                let take = (BLOCK - self.header.len()).min(buf.len());
                self.header.extend_from_slice(&buf[..take]);
                buf = &buf[take..];
                if self.header.len() == BLOCK {
                    let h = std::mem::replace(&mut self.header, Vec::with_capacity(BLOCK));
                    self.on_header(h);
                }
                continue;
            }
            let take = self.remaining.min(buf.len() as u64) as usize;
            let data = self.data_left.min(take as u64) as usize;
            self.on_data(&buf[..data], &buf[data..take]);
            self.data_left -= data as u64;
            self.remaining -= take as u64;
            buf = &buf[take..];
        }
    }
}

impl<R: std::io::Read> std::io::Read for TarFilter<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.out_at == self.out.len() && !self.eof {
            self.out.clear();
            self.out_at = 0;
            let mut buf = vec![0u8; out.len().max(BLOCK)];
            let n = self.inner.read(&mut buf)?;
            if n == 0 {
                self.eof = true;
            }
            self.feed(&buf[..n]);
        }
        let n = (self.out.len() - self.out_at).min(out.len());
        out[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        Ok(n)
    }
}

/// The files left out of this backup whose server checksum now differs from
/// the reference's: they changed without their size or time changing.
pub(crate) fn changed_behind_time(facts: &TarFacts, reference: &[FileEntry]) -> Vec<String> {
    let now = facts.checksums();
    let by_path: HashMap<&str, &FileEntry> = reference.iter().map(|f| (f.path.as_str(), f)).collect();
    facts
        .files
        .iter()
        .filter(|f| !f.stored)
        .filter(|f| {
            let old = by_path.get(f.path.as_str()).and_then(|r| r.checksum.as_ref());
            old.is_none() || old != now.get(&f.path)
        })
        .map(|f| f.path.clone())
        .collect()
}

/// This backup's file list: stored files point to `id`, the rest keep the reference's entry.
pub(crate) fn file_list(facts: &TarFacts, reference: &[FileEntry], id: &str, start: i64) -> Vec<FileEntry> {
    let sums = facts.checksums();
    let by_path: HashMap<&str, &FileEntry> = reference.iter().map(|f| (f.path.as_str(), f)).collect();
    facts
        .files
        .iter()
        .filter_map(|f| match (f.stored, by_path.get(f.path.as_str())) {
            (false, Some(r)) => Some((*r).clone()),
            (false, None) => None,
            (true, _) => Some(FileEntry {
                path: f.path.clone(),
                size: f.size,
                mtime: f.mtime,
                checksum: sums.get(&f.path).cloned(),
                backup: id.to_string(),
                copied_at: start,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn header(path: &str, size: usize, mtime: i64, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..path.len()].copy_from_slice(path.as_bytes());
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(format!("{mtime:011o}").as_bytes());
        h[156] = kind;
        h
    }

    fn entry(path: &str, body: &[u8], mtime: i64) -> Vec<u8> {
        let mut e = header(path, body.len(), mtime, b'0');
        e.extend_from_slice(body);
        e.resize(e.len().div_ceil(BLOCK) * BLOCK, 0);
        e
    }

    fn reference(path: &str, size: u64, mtime: i64, copied_at: i64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            mtime,
            checksum: Some("CRC32C:1".into()),
            backup: "full-1".into(),
            copied_at,
        }
    }

    #[test]
    fn only_files_changed_since_the_reference_pass_and_the_rest_is_listed() {
        let label = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIME: 2026-12-07 05:00:00 UTC\nSTART TIMELINE: 1\n";
        let mut tar = entry("backup_label", label, 900);
        tar.extend(header("base/", 0, 900, b'5'));
        tar.extend(entry("base/1/same", &[1u8; 700], 100));
        tar.extend(entry("base/1/grown", &[2u8; 900], 100));
        tar.extend(entry("base/1/touched", &[3u8; 700], 200));
        tar.extend(entry("base/1/recent", &[4u8; 10], 500));
        tar.extend(entry("base/1/new", &[5u8; 10], 100));
        tar.extend(entry("global/pg_control", &[6u8; 10], 100));
        tar.extend(vec![0u8; 2 * BLOCK]);
        let refs = vec![
            reference("base/1/same", 700, 100, 400),
            reference("base/1/grown", 700, 100, 400),
            reference("base/1/touched", 700, 100, 400),
            // Modified in the second the reference copied it: it may have changed after.
            reference("base/1/recent", 10, 500, 500),
            reference("global/pg_control", 10, 100, 400),
        ];
        let (mut f, facts) = TarFilter::new(std::io::Cursor::new(tar.clone()), &refs);
        let mut out = Vec::new();
        // Small reads: headers and data split across calls.
        let mut buf = [0u8; 100];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let facts = facts.lock().unwrap().clone();
        let stored: Vec<(&str, bool)> = facts.files.iter().map(|f| (f.path.as_str(), f.stored)).collect();
        assert_eq!(
            stored,
            vec![
                ("backup_label", true),
                ("base/1/same", false),
                ("base/1/grown", true),
                ("base/1/touched", true),
                ("base/1/recent", true),
                ("base/1/new", true),
                ("global/pg_control", true),
            ]
        );
        assert_eq!(out.len(), tar.len() - 3 * BLOCK, "one file of 700 bytes left out (header + 2 blocks)");
        assert_eq!(facts.start_lsn().as_deref(), Some("0/2000028"));
        assert_eq!(facts.timeline(), Some(1));
        assert_eq!(facts.start_time(), Some(1_796_619_600));
        let cet = TarFacts { label: "START TIME: 2026-12-07 06:00:00 +01\n".into(), ..Default::default() };
        assert_eq!(cet.start_time(), Some(1_796_619_600));
        let named = TarFacts { label: "START TIME: 2026-12-07 06:00:00 CET\n".into(), ..Default::default() };
        assert_eq!(named.start_time(), None);
        let list = file_list(&facts, &refs, "incr-2", 1_796_619_600);
        let same = list.iter().find(|f| f.path == "base/1/same").unwrap();
        assert_eq!((same.backup.as_str(), same.copied_at), ("full-1", 400));
        let new = list.iter().find(|f| f.path == "base/1/new").unwrap();
        assert_eq!((new.backup.as_str(), new.copied_at), ("incr-2", 1_796_619_600));
        // No backup_manifest in this stream: the file left out cannot be confirmed.
        assert_eq!(changed_behind_time(&facts, &refs), vec!["base/1/same".to_string()]);
    }

    #[test]
    fn the_server_checksums_confirm_or_refuse_the_files_left_out() {
        let manifest = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [
            {"Path": "base/1/same", "Size": 700, "Last-Modified": "x", "Checksum-Algorithm": "CRC32C", "Checksum": "1"}],
            "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]}"#;
        let facts = TarFacts {
            label: String::new(),
            manifest: manifest.to_vec(),
            files: vec![SeenFile { path: "base/1/same".into(), size: 700, mtime: 100, stored: false }],
        };
        assert_eq!(facts.stop_lsn().as_deref(), Some("0/2000100"));
        let refs = vec![reference("base/1/same", 700, 100, 400)];
        assert!(changed_behind_time(&facts, &refs).is_empty());
        let mut other = refs.clone();
        other[0].checksum = Some("CRC32C:2".into());
        assert_eq!(changed_behind_time(&facts, &other), vec!["base/1/same".to_string()]);
    }
}
