//! Object stores behind one trait: the local filesystem (`file://`) and
//! S3-compatible services (`s3://`, through aws-sdk-s3 with a configurable
//! endpoint: S3, R2, MinIO, Garage, GCS interop). One contract suite
//! (`contract.rs`) runs against both.
//!
//! Workers hold no credentials: the coordinator hands them presigned URLs
//! for exactly the objects of their task.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spotenc_proto::{Error, Result};

#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// A URL that reads `key` without credentials, valid for `ttl`.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String>;
    /// A URL that writes `key` with one PUT, valid for `ttl`.
    async fn presign_put(&self, key: &str, ttl: Duration) -> Result<String>;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()>;
    async fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// The object's size, or `None` when there is no such object.
    async fn size(&self, key: &str) -> Result<Option<u64>>;
    /// Removes an object; removing a missing one is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Makes `final_key` hold what `tmp_key` holds, then removes `tmp_key`.
    /// Readers of `final_key` see the old object or the whole new one, never
    /// a part. Repeatable until `tmp_key` is gone; then `NotFound`. The
    /// object's SHA-256 (hex, as the stitch computed it) goes with it, so a
    /// later [`ObjectStore::sha256`] can tell it from another object.
    async fn commit(&self, tmp_key: &str, final_key: &str, sha256: &str) -> Result<()>;
    /// The SHA-256 (hex) of a committed object: recorded at the commit,
    /// or computed; `None` when there is no such object or it carries no
    /// record.
    async fn sha256(&self, key: &str) -> Result<Option<String>>;
}

fn io(what: &str, key: &str) -> impl FnOnce(std::io::Error) -> Error {
    let (what, key) = (what.to_string(), key.to_string());
    move |e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("object {key}")),
        _ => Error::Unavailable(format!("{what} {key}: {e}")),
    }
}

/// Objects as files under a root directory; keys are relative paths.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: &Path) -> Self {
        FileStore {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        let rel = Path::new(key);
        if key.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(Error::invalid(format!("invalid object key {key:?}")));
        }
        Ok(self.root.join(rel))
    }
}

#[async_trait::async_trait]
impl ObjectStore for FileStore {
    async fn presign_get(&self, key: &str, _ttl: Duration) -> Result<String> {
        Ok(format!("file://{}", self.path(key)?.display()))
    }

    async fn presign_put(&self, key: &str, ttl: Duration) -> Result<String> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io("create", key))?;
        }
        self.presign_get(key, ttl).await
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io("create", key))?;
        }
        let tmp = path.with_extension("put-tmp");
        tokio::fs::write(&tmp, bytes)
            .await
            .map_err(io("write", key))?;
        tokio::fs::rename(&tmp, &path)
            .await
            .map_err(io("rename", key))
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?)
            .await
            .map_err(io("read", key))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("stat", key)(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete", key)(e)),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(rel) = p.strip_prefix(&root) {
                        let key = rel.display().to_string();
                        if key.starts_with(&prefix) {
                            out.push(key);
                        }
                    }
                }
            }
            out.sort();
            out
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))
    }

    async fn sha256(&self, key: &str) -> Result<Option<String>> {
        // Streamed, on a blocking thread: outputs can be many gigabytes.
        let path = self.path(key)?;
        let hashed = tokio::task::spawn_blocking(move || super::sha256_file(&path))
            .await
            .map_err(|e| Error::Internal(format!("hash {key}: {e}")))?;
        match hashed {
            Ok(sha) => Ok(Some(sha)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", key)(e)),
        }
    }

    async fn commit(&self, tmp_key: &str, final_key: &str, _sha256: &str) -> Result<()> {
        let (tmp, fin) = (self.path(tmp_key)?, self.path(final_key)?);
        if let Some(dir) = fin.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(io("create", final_key))?;
        }
        tokio::fs::rename(&tmp, &fin)
            .await
            .map_err(io("rename", tmp_key))
    }
}
