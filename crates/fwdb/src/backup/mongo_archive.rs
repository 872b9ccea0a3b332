//! mongodump's archive format (`--archive`, mongo-tools common/archive/spec.md),
//! written from a dump's objects so that `mongorestore --archive=FILE` reads it.

use super::manifest::{BackupKind, ObjectEntry};
use super::Backups;
use crate::error::{Error, Result};
use mongodb::bson::{doc, Document};
use std::io::Write;

const MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];
const TERMINATOR: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

/// The `crc` crate's CRC-64/XZ: the ECMA polynomial, reflected, initial and
/// final value all ones, which is what Go's `crc64.MakeTable(crc64.ECMA)` computes.
static CRC64_XZ: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);

/// CRC-64 as Go's `crc64.Update(crc, crc64.MakeTable(crc64.ECMA), data)`:
/// `crc` is a finished checksum to continue from (0 to start). The crate
/// takes the register's initial value, which is that checksum complemented,
/// in its unreflected form.
pub fn crc64_ecma(crc: u64, data: &[u8]) -> u64 {
    let mut digest = CRC64_XZ.digest_with_initial((!crc).reverse_bits());
    digest.update(data);
    digest.finalize()
}

fn bson_bytes(d: &Document) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    d.to_writer(&mut v).map_err(|e| Error::new(crate::error::ErrorKind::Internal, "encoding BSON").with_source(e))?;
    Ok(v)
}

struct CrcWriter<W> {
    inner: W,
    crc: u64,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.crc = crc64_ecma(self.crc, &b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Clone, Copy)]
struct Io<'a>(&'a std::path::Path);
impl Io<'_> {
    fn err(&self, e: std::io::Error) -> Error {
        Error::io(format!("writing {}", self.0.display()), e)
    }
}

impl Backups {
    /// Writes MongoDB dump `id` as one mongodump archive file at `path` (not gzipped).
    pub async fn export_mongo_archive(&self, id: &str, path: &std::path::Path) -> Result<()> {
        let m = self.manifest(id).await?;
        if m.kind != BackupKind::Mongo {
            return Err(Error::invalid_input(format!(
                "backup {id} is a {} backup; only MongoDB dumps have an archive form",
                m.kind
            )));
        }
        let prelude: serde_json::Value = match self.objects_named(&m.objects, "prelude.json") {
            Some(o) => serde_json::from_slice(&self.get_object(o, Vec::new()).await?).unwrap_or_default(),
            None => serde_json::Value::Null,
        };
        // (db, collection, metadata text, documents object)
        let mut namespaces: Vec<(String, String, String, ObjectEntry)> = Vec::new();
        for o in m.objects.iter().filter(|o| o.name.ends_with(".metadata.json")) {
            let Some((db, rest)) = o.name.split_once('/') else { continue };
            let coll = rest.trim_end_matches(".metadata.json").to_string();
            let docs = m.objects.iter().find(|d| d.name == format!("{db}/{coll}.bson")).ok_or_else(|| {
                Error::invalid_input(format!("backup {id} has metadata but no documents for {db}.{coll}"))
            })?;
            let meta = String::from_utf8_lossy(&self.get_object(o, Vec::new()).await?).into_owned();
            namespaces.push((db.to_string(), coll, meta, docs.clone()));
        }
        let io = Io(path);
        let tmp = path.with_extension("fwdb-partial");
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(|e| io.err(e))?);
        let result = async move {
            let mut f = file;
            f.write_all(&MAGIC).map_err(|e| io.err(e))?;
            let header = doc! {
                "concurrent_collections": 1i32,
                "version": "0.1",
                "server_version": prelude.get("ServerVersion").and_then(|v| v.as_str()).unwrap_or(""),
                "tool_version": prelude.get("ToolVersion").and_then(|v| v.as_str()).unwrap_or(""),
            };
            f.write_all(&bson_bytes(&header)?).map_err(|e| io.err(e))?;
            for (db, coll, meta, docs) in &namespaces {
                let prelude_ns = doc! { "db": db, "collection": coll, "metadata": meta, "size": docs.raw_size as i64, "type": "collection" };
                f.write_all(&bson_bytes(&prelude_ns)?).map_err(|e| io.err(e))?;
            }
            f.write_all(&TERMINATOR).map_err(|e| io.err(e))?;
            for (db, coll, _, docs) in &namespaces {
                // One segment per collection: the .bson object's documents, streamed as they are.
                let mut crc = 0u64;
                if docs.raw_size > 0 {
                    f.write_all(&bson_bytes(&doc! { "db": db, "collection": coll, "EOF": false, "CRC": 0i64 })?).map_err(|e| io.err(e))?;
                    let w = self.get_object(docs, CrcWriter { inner: f, crc: 0 }).await?;
                    crc = w.crc;
                    f = w.inner;
                    f.write_all(&TERMINATOR).map_err(|e| io.err(e))?;
                }
                f.write_all(&bson_bytes(&doc! { "db": db, "collection": coll, "EOF": true, "CRC": crc as i64 })?).map_err(|e| io.err(e))?;
                f.write_all(&TERMINATOR).map_err(|e| io.err(e))?;
            }
            f.flush().map_err(|e| io.err(e))?;
            Ok::<(), Error>(())
        }
        .await;
        match result {
            Ok(()) => std::fs::rename(&tmp, path).map_err(|e| io.err(e)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn objects_named<'a>(&self, objects: &'a [ObjectEntry], name: &str) -> Option<&'a ObjectEntry> {
        objects.iter().find(|o| o.name == name)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc_matches_go_crc64_ecma() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ECMA)) == 0x995dc9bbdf1939fa
        assert_eq!(super::crc64_ecma(0, b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(super::crc64_ecma(0, b""), 0);
        // Incremental use gives the same as one call.
        assert_eq!(super::crc64_ecma(super::crc64_ecma(0, b"1234"), b"56789"), 0x995D_C9BB_DF19_39FA);
    }
}
