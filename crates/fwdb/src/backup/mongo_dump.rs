//! `--kind mongo`: a dump through the driver in mongodump's directory layout
//! (`prelude.json`, `<db>/<coll>.bson` documents back to back,
//! `<db>/<coll>.metadata.json` in canonical Extended JSON v2), each file an
//! object of the backup; `fwdb backup export` decrypts them into a folder
//! that mongorestore reads. `restore_mongo` reads them back through the driver.
//!
//! The migration lock's collection is left out of dumps and restores: a lock
//! held while the dump ran would otherwise come back in the restored
//! database, held by a runner that is not there. The history
//! (`fwdb_migrations`) is kept: it says which migrations the data has.

use super::manifest::{BackupKind, Manifest};
use super::Backups;
use crate::error::{Error, ErrorKind, Result};
use crate::migrate::LOCK_COLLECTION;
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use tokio::sync::mpsc;

const BATCH_BYTES: usize = 4 << 20;

/// An async producer's chunks as a blocking reader; an `Err` chunk fails the read
/// (so the upload is aborted instead of completed with partial data).
struct ChunkReader {
    rx: mpsc::Receiver<std::result::Result<Vec<u8>, String>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Splits a stream of BSON documents and hands them over in batches.
struct DocSplitter {
    buf: Vec<u8>,
    batch: Vec<RawDocumentBuf>,
    batch_bytes: usize,
    tx: mpsc::Sender<Vec<RawDocumentBuf>>,
}

impl DocSplitter {
    fn flush_batch(&mut self) -> std::io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.tx.blocking_send(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the restore stopped"))
    }
}

impl Write for DocSplitter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while self.buf.len() - at >= 4 {
            let len = i32::from_le_bytes(self.buf[at..at + 4].try_into().unwrap());
            if len < 5 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a BSON document of length {len}"),
                ));
            }
            let len = len as usize;
            if self.buf.len() - at < len {
                break;
            }
            let d = RawDocumentBuf::from_bytes(self.buf[at..at + len].to_vec())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            self.batch_bytes += len;
            self.batch.push(d);
            at += len;
            if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= 10_000 {
                self.flush_batch()?;
            }
        }
        self.buf.drain(..at);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the dump ends inside a BSON document"));
        }
        self.flush_batch()
    }
}

async fn first_batch(db: &mongodb::Database, cmd: Document) -> Result<Vec<Document>> {
    let reply = db.run_command(cmd).await?;
    let cursor =
        reply.get_document("cursor").map_err(|e| Error::new(ErrorKind::Mongo, "unexpected reply").with_source(e))?;
    let batch =
        cursor.get_array("firstBatch").map_err(|e| Error::new(ErrorKind::Mongo, "unexpected reply").with_source(e))?;
    Ok(batch.iter().filter_map(|b| b.as_document().cloned()).collect())
}

fn ext_json(d: Document) -> serde_json::Value {
    Bson::Document(d).into_canonical_extjson()
}

/// mongodump's metadata file for one collection.
pub(crate) fn metadata_json(name: &str, options: Document, indexes: Vec<Document>, uuid: Option<String>) -> String {
    let mut m = serde_json::Map::new();
    m.insert("indexes".into(), serde_json::Value::Array(indexes.into_iter().map(ext_json).collect()));
    if let Some(u) = uuid {
        m.insert("uuid".into(), serde_json::Value::String(u));
    }
    m.insert("collectionName".into(), serde_json::Value::String(name.into()));
    m.insert("type".into(), serde_json::Value::String("collection".into()));
    let mut out = serde_json::Map::new();
    out.insert("options".into(), ext_json(options));
    out.extend(m);
    serde_json::Value::Object(out).to_string()
}

impl Backups {
    pub(crate) async fn create_mongo(&self) -> Result<Manifest> {
        let started = chrono::Utc::now();
        let mut m = self.new_manifest(BackupKind::Mongo, started);
        let client = crate::mongo::client(&self.cfg.mongo).await?;
        let dbname = self.cfg.mongo.database.clone();
        let db = client.database(&dbname);
        let info = client.database("admin").run_command(doc! {"buildInfo": 1}).await?;
        let version = info.get_str("version").unwrap_or("unknown").to_string();
        m.versions.push(format!("MongoDB {version}"));
        m.servers.push(
            self.cfg
                .mongo
                .uri
                .as_deref()
                .map(crate::config::redact_url_password)
                .unwrap_or_else(|| self.cfg.mongo.hosts.join(",")),
        );
        let prelude = serde_json::json!({ "ServerVersion": version, "ToolVersion": m.tool_version }).to_string();
        m.objects.push(self.put_object(&m.id, "prelude.json", std::io::Cursor::new(prelude.into_bytes())).await?);
        let mut colls = first_batch(&db, doc! {"listCollections": 1, "cursor": {"batchSize": 100_000}}).await?;
        colls.sort_by(|a, b| a.get_str("name").unwrap_or("").cmp(b.get_str("name").unwrap_or("")));
        for c in colls {
            let name = c.get_str("name").unwrap_or_default().to_string();
            let kind = c.get_str("type").unwrap_or("collection");
            if name.is_empty() || name.starts_with("system.") || name == LOCK_COLLECTION || kind != "collection" {
                continue;
            }
            let options = c.get_document("options").cloned().unwrap_or_default();
            let uuid = c.get_document("info").ok().and_then(|i| match i.get("uuid") {
                Some(Bson::Binary(b)) => Some(hex::encode(&b.bytes)),
                _ => None,
            });
            let indexes = first_batch(&db, doc! {"listIndexes": &name, "cursor": {"batchSize": 100_000}})
                .await
                .unwrap_or_default();
            let meta = metadata_json(&name, options, indexes, uuid);
            // Documents: streamed from the cursor into the upload.
            let (tx, rx) = mpsc::channel::<std::result::Result<Vec<u8>, String>>(4);
            let coll = db.collection::<RawDocumentBuf>(&name);
            let producer = async move {
                let mut count = 0u64;
                let mut cursor = match coll.find(doc! {}).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string())).await;
                        return Err(Error::from(e));
                    }
                };
                let mut chunk = Vec::with_capacity(1 << 20);
                loop {
                    match cursor.try_next().await {
                        Ok(Some(d)) => {
                            chunk.extend_from_slice(d.as_bytes());
                            count += 1;
                            if chunk.len() >= 1 << 20 && tx.send(Ok(std::mem::take(&mut chunk))).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Err(format!("reading the collection: {e}"))).await;
                            return Err(Error::from(e));
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = tx.send(Ok(chunk)).await;
                }
                Ok(count)
            };
            let reader = ChunkReader { rx, cur: Vec::new(), pos: 0 };
            let obj_name = format!("{dbname}/{name}.bson");
            let upload = self.put_object(&m.id, &obj_name, reader);
            let (count, entry) = futures::join!(producer, upload);
            let (count, entry) = (count?, entry?);
            m.objects.push(entry);
            m.objects.push(
                self.put_object(
                    &m.id,
                    &format!("{dbname}/{name}.metadata.json"),
                    std::io::Cursor::new(meta.into_bytes()),
                )
                .await?,
            );
            m.counts.insert(format!("{dbname}.{name}"), count);
        }
        m.databases.push(dbname);
        m.finished_at = chrono::Utc::now();
        self.write_manifest(&m).await?;
        Ok(m)
    }

    /// Restores the dump of `from` (default: the only database) of backup
    /// `id` into `target`, which must not exist (have no collections); checks
    /// document counts against the manifest; on failure drops `target`.
    pub async fn restore_mongo(&self, id: &str, target: &str, from: Option<&str>) -> Result<BTreeMap<String, u64>> {
        let m = self.manifest(id).await?;
        if m.kind != BackupKind::Mongo {
            return Err(Error::invalid_input(format!("backup {id} is a {} backup, not a MongoDB dump", m.kind)));
        }
        let source = match from {
            Some(d) => d.to_string(),
            None if m.databases.len() == 1 => m.databases[0].clone(),
            None => {
                return Err(Error::invalid_input(format!(
                    "backup {id} holds several databases ({}); name one with --from",
                    m.databases.join(", ")
                )))
            }
        };
        if target.is_empty() || target.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err(Error::invalid_input(format!("`{target}` is not a MongoDB database name")));
        }
        let client = crate::mongo::client(&self.cfg.mongo).await?;
        let db = client.database(target);
        if !db.list_collection_names().await?.is_empty() {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("MongoDB database {target} already has collections; restore into a new name"),
            ));
        }
        let result = self.restore_mongo_into(&m, &source, &db).await;
        if result.is_err() {
            let _ = db.drop().await;
        }
        result
    }

    async fn restore_mongo_into(
        &self,
        m: &Manifest,
        source: &str,
        db: &mongodb::Database,
    ) -> Result<BTreeMap<String, u64>> {
        let prefix = format!("{source}/");
        let mut counts = BTreeMap::new();
        for meta_obj in m.objects.iter().filter(|o| o.name.starts_with(&prefix) && o.name.ends_with(".metadata.json")) {
            let coll_name = meta_obj.name[prefix.len()..].trim_end_matches(".metadata.json").to_string();
            // Dumps taken before the lock was left out still hold it.
            if coll_name == LOCK_COLLECTION {
                continue;
            }
            let meta_bytes = self.get_object(meta_obj, Vec::new()).await?;
            let meta: serde_json::Value = serde_json::from_slice(&meta_bytes).map_err(|e| {
                Error::new(ErrorKind::Validation, format!("{} is not JSON", meta_obj.name)).with_source(e)
            })?;
            let to_doc = |v: &serde_json::Value| -> Result<Document> {
                match Bson::try_from(v.clone()) {
                    Ok(Bson::Document(d)) => Ok(d),
                    _ => Err(Error::invalid_input(format!("{}: not an Extended JSON document", meta_obj.name))),
                }
            };
            let options = meta.get("options").map(to_doc).transpose()?.unwrap_or_default();
            let mut create = doc! {"create": &coll_name};
            create.extend(options);
            db.run_command(create).await?;
            let bson_obj = m
                .objects
                .iter()
                .find(|o| o.name == format!("{source}/{coll_name}.bson"))
                .ok_or_else(|| {
                    Error::invalid_input(format!("backup {} has metadata but no documents for {coll_name}", m.id))
                })?
                .clone();
            let (tx, mut rx) = mpsc::channel::<Vec<RawDocumentBuf>>(2);
            let splitter = DocSplitter { buf: Vec::new(), batch: Vec::new(), batch_bytes: 0, tx };
            let coll = db.collection::<RawDocumentBuf>(&coll_name);
            let inserter = async {
                let mut n = 0u64;
                while let Some(batch) = rx.recv().await {
                    n += batch.len() as u64;
                    coll.insert_many(batch).ordered(true).await?;
                }
                Ok::<u64, Error>(n)
            };
            let feeder = async {
                let mut s = self.get_object(&bson_obj, splitter).await?;
                tokio::task::spawn_blocking(move || s.flush().map(|_| s))
                    .await
                    .map_err(|e| Error::new(ErrorKind::Internal, "flush").with_source(e))?
                    .map_err(|e| {
                        Error::new(ErrorKind::Validation, format!("{}: corrupt BSON", bson_obj.name)).with_source(e)
                    })?;
                Ok::<(), Error>(())
            };
            let (fed, inserted) = futures::join!(feeder, inserter);
            fed?;
            let n = inserted?;
            if let Some(indexes) = meta.get("indexes").and_then(|i| i.as_array()) {
                let mut specs = Vec::new();
                for i in indexes {
                    let mut d = to_doc(i)?;
                    if d.get_str("name").ok() == Some("_id_") {
                        continue;
                    }
                    d.remove("ns");
                    d.remove("v");
                    specs.push(Bson::Document(d));
                }
                if !specs.is_empty() {
                    db.run_command(doc! {"createIndexes": &coll_name, "indexes": specs}).await?;
                }
            }
            let want = m.counts.get(&format!("{source}.{coll_name}")).copied();
            if want.is_some_and(|w| w != n) {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "restored collection {coll_name} has {n} documents; the manifest of {} records {}",
                        m.id,
                        want.unwrap_or(0)
                    ),
                ));
            }
            counts.insert(coll_name, n);
        }
        Ok(counts)
    }

    pub(crate) async fn verify_mongo(&self, m: &Manifest) -> Result<Vec<String>> {
        let scratch = format!("fwdb_verify_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut out = Vec::new();
        for source in &m.databases {
            let counts = self.restore_mongo(&m.id, &scratch, Some(source)).await?;
            let client = crate::mongo::client(&self.cfg.mongo).await?;
            client.database(&scratch).drop().await?;
            out.push(format!(
                "{source}: restored into scratch database {scratch}, {} collections, {} documents, counts match the manifest; dropped",
                counts.len(),
                counts.values().sum::<u64>()
            ));
        }
        Ok(out)
    }

    /// Decrypts every object of backup `id` into `dir` under its name: a
    /// MongoDB dump becomes a folder mongorestore reads, a full backup a
    /// `base.tar`, a logical one `<db>.dump` for pg_restore.
    pub async fn export(&self, id: &str, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
        let m = self.manifest(id).await?;
        let mut out = Vec::new();
        for o in &m.objects {
            if o.name.split('/').any(|p| p == ".." || p.is_empty()) {
                return Err(Error::invalid_input(format!("backup {id}: unsafe object name {}", o.name)));
            }
            let path = dir.join(&o.name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
            if let Err(e) = self.get_object(o, f).await {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            out.push(path);
        }
        Ok(out)
    }
}
