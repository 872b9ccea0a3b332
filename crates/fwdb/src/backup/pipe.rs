//! The streaming pipeline: source -> zstd -> age -> storage, hashing on the
//! way, and back. Nothing is staged on local disk; at most a few chunks are
//! in memory.

use super::crypto::Keys;
use super::manifest::ObjectEntry;
use super::storage::Storage;
use crate::error::{Error, ErrorKind, Result};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::sync::mpsc;

const CHUNK: usize = 1 << 20;

/// Called with (object name, plain bytes so far).
pub type Progress = Arc<dyn Fn(&str, u64) + Send + Sync>;

pub(crate) fn no_progress() -> Progress {
    Arc::new(|_, _| {})
}

/// Hashes and counts what passes, then hands it to the uploader in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(chunk).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compresses, encrypts and uploads everything `src` yields to `key`. The
/// object appears only when complete; on any error the upload is aborted.
pub(crate) async fn upload<R: Read + Send + 'static>(
    st: &Storage,
    keys: &Arc<Keys>,
    level: i32,
    key: &str,
    name: &str,
    mut src: R,
    progress: Progress,
) -> Result<ObjectEntry> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let keys2 = keys.clone();
    let label = name.to_string();
    let worker = tokio::task::spawn_blocking(move || -> Result<(u64, String, u64, String)> {
        let cw = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK), hasher: Sha256::new(), size: 0 };
        let enc = keys2.encrypt(cw)?;
        let mut z = zstd::Encoder::new(enc, level).map_err(|e| Error::io("starting zstd", e))?;
        // One zstd worker thread: compression runs beside the reading, hashing
        // and encrypting of this thread instead of in turn with them.
        z.multithread(1).map_err(|e| Error::io("starting zstd", e))?;
        let mut raw_hasher = Sha256::new();
        let mut raw_size = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("reading the source of {label}"), e)),
            };
            raw_hasher.update(&buf[..n]);
            raw_size += n as u64;
            z.write_all(&buf[..n]).map_err(|e| Error::io(format!("compressing {label}"), e))?;
            progress(&label, raw_size);
        }
        let enc = z.finish().map_err(|e| Error::io(format!("compressing {label}"), e))?;
        let mut cw = enc.finish().map_err(|e| Error::io(format!("encrypting {label}"), e))?;
        cw.send().map_err(|e| Error::io(format!("uploading {label}"), e))?;
        Ok((cw.size, hex::encode(cw.hasher.finalize()), raw_size, hex::encode(raw_hasher.finalize())))
    });
    let mut up = st.upload(key).await?;
    let mut upload_err = None;
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = up.write(&chunk).await {
            upload_err = Some(e);
            break;
        }
    }
    drop(rx);
    let worked = worker.await.map_err(|e| Error::new(ErrorKind::Internal, "backup worker panicked").with_source(e));
    if let Some(e) = upload_err {
        up.abort().await;
        return Err(e);
    }
    match worked {
        Ok(Ok((size, sha256, raw_size, raw_sha256))) => {
            up.finish().await?;
            Ok(ObjectEntry { name: name.to_string(), key: key.to_string(), size, sha256, raw_size, raw_sha256 })
        }
        Ok(Err(e)) | Err(e) => {
            up.abort().await;
            Err(e)
        }
    }
}

/// Reads chunks from the downloader, hashing what passes.
struct ChannelReader {
    rx: mpsc::Receiver<Result<bytes::Bytes>>,
    cur: bytes::Bytes,
    hasher: Sha256,
    size: u64,
    failed: Option<Error>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => {
                    self.hasher.update(&b);
                    self.size += b.len() as u64;
                    self.cur = b;
                }
                Some(Err(e)) => {
                    let msg = e.to_string();
                    self.failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

impl ChannelReader {
    fn drain(&mut self) {
        let mut sink = [0u8; 64 * 1024];
        self.cur.clear();
        while let Ok(n) = self.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    }
}

/// Downloads `key`, checks its stored checksum (when `expect` is given),
/// decrypts, decompresses and writes the plain bytes to `sink`, which is
/// given back. A corrupt object is reported as such, by name.
pub(crate) async fn download<W: Write + Send + 'static>(
    st: &Storage,
    keys: &Arc<Keys>,
    key: &str,
    expect: Option<&ObjectEntry>,
    mut sink: W,
    progress: Progress,
) -> Result<W> {
    let mut stream = st.get_stream(key).await?;
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes>>(4);
    let keys2 = keys.clone();
    let what = key.to_string();
    let expect2 = expect.cloned();
    let worker = tokio::task::spawn_blocking(move || -> Result<W> {
        let mut reader = ChannelReader { rx, cur: bytes::Bytes::new(), hasher: Sha256::new(), size: 0, failed: None };
        let mut raw_hasher = Sha256::new();
        let mut raw_size = 0u64;
        let result = (|| -> Result<()> {
            let dec = keys2.decrypt(&mut reader, &what)?;
            let mut z = zstd::Decoder::new(dec).map_err(|e| Error::io(format!("decompressing {what}"), e))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match z.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(Error::new(
                            ErrorKind::Validation,
                            format!("cannot read {what}: corrupt or truncated"),
                        )
                        .with_source(e))
                    }
                };
                raw_hasher.update(&buf[..n]);
                raw_size += n as u64;
                sink.write_all(&buf[..n]).map_err(|e| Error::io(format!("writing out {what}"), e))?;
                progress(&what, raw_size);
            }
            Ok(())
        })();
        if let Some(e) = reader.failed.take() {
            return Err(e);
        }
        // Hash the whole stored object even when decryption stopped early, so a
        // checksum mismatch is reported as what it is.
        reader.drain();
        if let Some(e) = reader.failed.take() {
            return Err(e);
        }
        if let Some(exp) = &expect2 {
            let got = hex::encode(reader.hasher.clone().finalize());
            if got != exp.sha256 || reader.size != exp.size {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "checksum mismatch in {what}: the manifest records {} bytes with SHA-256 {}, storage holds {} bytes with SHA-256 {got}; the object is corrupt",
                        exp.size, exp.sha256, reader.size
                    ),
                ));
            }
        }
        result?;
        if let Some(exp) = &expect2 {
            let got = hex::encode(raw_hasher.finalize());
            if got != exp.raw_sha256 || raw_size != exp.raw_size {
                return Err(Error::new(
                    ErrorKind::Validation,
                    format!(
                        "{what}: its content does not match the manifest (SHA-256 {got}, expected {})",
                        exp.raw_sha256
                    ),
                ));
            }
        }
        sink.flush().map_err(|e| Error::io(format!("writing out {what}"), e))?;
        Ok(sink)
    });
    while let Some(chunk) = stream.next().await {
        let stop = chunk.is_err();
        if tx.send(chunk).await.is_err() || stop {
            break;
        }
    }
    drop(tx);
    worker.await.map_err(|e| Error::new(ErrorKind::Internal, "restore worker panicked").with_source(e))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackupConfig, EncryptionConfig, Secret};

    fn storage(dir: &std::path::Path) -> Storage {
        let cfg = BackupConfig { storage: format!("file://{}", dir.display()), ..Default::default() };
        Storage::open(&cfg).expect("storage")
    }

    fn data() -> Vec<u8> {
        (0..3_000_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    #[tokio::test]
    async fn round_trip_detects_flips_and_wrong_keys() {
        let dir = tempfile::tempdir().unwrap();
        let st = storage(dir.path());
        let keys = Arc::new(Keys::for_identity(age::x25519::Identity::generate()));
        let plain = data();
        let e = upload(&st, &keys, 3, "b/x.zst.age", "x", std::io::Cursor::new(plain.clone()), no_progress())
            .await
            .unwrap();
        assert_eq!(e.raw_size, plain.len() as u64);
        assert!(e.size < e.raw_size / 4, "compressed: {} of {}", e.size, e.raw_size);
        let back = download(&st, &keys, "b/x.zst.age", Some(&e), Vec::new(), no_progress()).await.unwrap();
        assert!(back == plain);

        let other = Arc::new(Keys::for_identity(age::x25519::Identity::generate()));
        let err = download(&st, &other, "b/x.zst.age", Some(&e), Vec::new(), no_progress()).await.unwrap_err();
        assert!(err.to_string().contains("wrong key"), "{err}");

        let path = dir.path().join("b/x.zst.age");
        let mut bytes = std::fs::read(&path).unwrap();
        for at in [10usize, bytes.len() / 2, bytes.len() - 1] {
            bytes[at] ^= 0x04;
            std::fs::write(&path, &bytes).unwrap();
            let err = download(&st, &keys, "b/x.zst.age", Some(&e), Vec::new(), no_progress()).await.unwrap_err();
            assert!(err.to_string().contains("checksum mismatch in b/x.zst.age"), "flip at {at}: {err}");
            // Without a manifest entry (WAL), age's authentication still refuses it.
            let err = download(&st, &keys, "b/x.zst.age", None, Vec::new(), no_progress()).await.unwrap_err();
            assert!(err.to_string().contains("b/x.zst.age"), "flip at {at}: {err}");
            bytes[at] ^= 0x04;
        }
    }

    #[tokio::test]
    async fn passphrase_encryption_round_trips_and_a_wrong_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let st = storage(dir.path());
        let enc = |p: &str| {
            Arc::new(
                Keys::from_config(&EncryptionConfig { passphrase: Some(Secret::new(p)), ..Default::default() })
                    .unwrap(),
            )
        };
        let keys = enc("correct horse");
        let e = upload(&st, &keys, 1, "p", "p", std::io::Cursor::new(b"hello".to_vec()), no_progress()).await.unwrap();
        let back = download(&st, &keys, "p", Some(&e), Vec::new(), no_progress()).await.unwrap();
        assert_eq!(back, b"hello");
        let err = download(&st, &enc("wrong horse"), "p", Some(&e), Vec::new(), no_progress()).await.unwrap_err();
        assert!(err.to_string().contains("wrong key"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_source_leaves_no_object() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                if self.0 > 3 {
                    return Err(std::io::Error::other("source died"));
                }
                self.0 += 1;
                b.fill(7);
                Ok(b.len())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let st = storage(dir.path());
        let keys = Arc::new(Keys::for_identity(age::x25519::Identity::generate()));
        let err = upload(&st, &keys, 3, "f/y", "y", Failing(0), no_progress()).await.unwrap_err();
        assert!(err.to_string().contains("source died"), "{err}");
        assert!(!st.exists("f/y").await.unwrap());
    }
}
