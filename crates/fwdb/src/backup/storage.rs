//! One interface over S3 and a local folder, chosen by `backup.storage`.

use crate::config::{BackupConfig, StorageUrl};
use crate::error::{Error, ErrorKind, Result};
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::sync::Arc;

#[derive(Clone)]
pub(crate) struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Prefix inside the bucket (S3); empty for a folder.
    prefix: String,
    /// The configured URL, for messages.
    pub url: String,
}

/// One stored object.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// Key relative to the storage root, e.g. `backups/ID/manifest.json`.
    pub key: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

fn store_err(what: String, e: object_store::Error) -> Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        _ => ErrorKind::Io,
    };
    Error::new(kind, what).with_source(e)
}

impl Storage {
    pub fn open(cfg: &BackupConfig) -> Result<Storage> {
        if cfg.storage.is_empty() {
            return Err(Error::invalid_input(
                "backup.storage is not set; e.g. file:///var/backups/fwdb or s3://bucket/prefix",
            ));
        }
        let url = StorageUrl::parse(&cfg.storage).map_err(|m| Error::invalid_input(format!("backup.storage: {m}")))?;
        match url {
            StorageUrl::File(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io(format!("creating the backup folder {}", dir.display()), e))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| store_err(format!("opening the backup folder {}", dir.display()), e))?;
                Ok(Storage { store: Arc::new(fs), prefix: String::new(), url: cfg.storage.clone() })
            }
            StorageUrl::S3 { bucket, prefix } => {
                let s3 = &cfg.s3;
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(&bucket)
                    .with_region(&s3.region)
                    .with_allow_http(s3.allow_http);
                if let Some(ep) = &s3.endpoint {
                    b = b.with_endpoint(ep);
                }
                if let (Some(k), Some(s)) = (&s3.access_key_id, &s3.secret_access_key) {
                    b = b.with_access_key_id(k.expose()).with_secret_access_key(s.expose());
                }
                let store = b.build().map_err(|e| store_err(format!("opening {}", cfg.storage), e))?;
                Ok(Storage { store: Arc::new(store), prefix, url: cfg.storage.clone() })
            }
        }
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn strip(&self, p: &ObjPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(s).to_string()
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| store_err(format!("writing {key} to {}", self.url), e))
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| store_err(format!("reading {key} from {}", self.url), e))?;
        let b = r.bytes().await.map_err(|e| store_err(format!("reading {key} from {}", self.url), e))?;
        Ok(b.to_vec())
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_err(format!("looking for {key} in {}", self.url), e)),
        }
    }

    /// The object as a stream of chunks.
    pub async fn get_stream(&self, key: &str) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes>>> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| store_err(format!("reading {key} from {}", self.url), e))?;
        let k = key.to_string();
        let url = self.url.clone();
        Ok(r.into_stream().map(move |c| c.map_err(|e| store_err(format!("reading {k} from {url}"), e))).boxed())
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(format!("deleting {key} from {}", self.url), e)),
        }
    }

    pub async fn list(&self, under: &str) -> Result<Vec<Listed>> {
        let p = self.path(under);
        let mut s = self.store.list(Some(&p));
        let mut out = Vec::new();
        while let Some(m) = s.next().await {
            let m = m.map_err(|e| store_err(format!("listing {under} in {}", self.url), e))?;
            out.push(Listed { key: self.strip(&m.location), size: m.size, modified: m.last_modified });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// A streaming upload: only visible under `key` once `finish` succeeds
    /// (S3 multipart completion; a temporary file renamed for folders).
    pub async fn upload(&self, key: &str) -> Result<Upload> {
        let up = self
            .store
            .put_multipart(&self.path(key))
            .await
            .map_err(|e| store_err(format!("starting the upload of {key} to {}", self.url), e))?;
        Ok(Upload { w: WriteMultipart::new_with_chunk_size(up, 8 << 20), key: key.to_string(), url: self.url.clone() })
    }
}

pub(crate) struct Upload {
    w: WriteMultipart,
    key: String,
    url: String,
}

impl Upload {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.w
            .wait_for_capacity(4)
            .await
            .map_err(|e| store_err(format!("uploading {} to {}", self.key, self.url), e))?;
        self.w.write(chunk);
        Ok(())
    }

    pub async fn finish(self) -> Result<()> {
        self.w.finish().await.map(|_| ()).map_err(|e| store_err(format!("finishing {} in {}", self.key, self.url), e))
    }

    pub async fn abort(self) {
        let _ = self.w.abort().await;
    }
}
