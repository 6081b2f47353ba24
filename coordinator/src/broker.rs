//! The strict broker. Workers hold no storage credentials: for each lease
//! the coordinator turns every `s3://` object of the task into a presigned
//! URL (GET for what the task reads, PUT for what it writes), scoped to that
//! one object and valid for a limited time. It also owns what touches
//! storage with credentials: input/output checks, the commit, and cleanup.
//!
//! File paths pass through unchanged (the embedded default, and fleets on a
//! shared filesystem).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spotenc_proto::domain::{JobSpec, OutputObject, Work};
use spotenc_proto::{Error, Result};

use crate::storage;
use crate::storage::object::ObjectStore;
use crate::storage::s3::{S3Settings, S3Store};

/// S3 settings of a coordinator: one endpoint and key pair, the buckets jobs
/// may use, and the bucket for intermediate objects.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `bucket` is where intermediate objects go.
    pub settings: S3Settings,
    /// Buckets inputs and outputs may name; the work bucket is always allowed.
    pub allowed_buckets: Vec<String>,
    /// How long a presigned URL stays valid.
    pub presign_ttl: Duration,
}

/// `s3://bucket/key` split in two.
pub fn parse_s3(uri: &str) -> Option<(&str, &str)> {
    uri.strip_prefix("s3://")?.split_once('/')
}

pub struct Broker {
    s3: Option<S3Config>,
    stores: Mutex<HashMap<String, Arc<S3Store>>>,
}

impl Broker {
    pub fn new(s3: Option<S3Config>) -> Self {
        Broker {
            s3,
            stores: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self, bucket: &str) -> Result<Arc<S3Store>> {
        let cfg = self.s3.as_ref().ok_or_else(|| {
            Error::invalid("s3:// objects need an [s3] section in the coordinator config")
        })?;
        let mut stores = self.stores.lock().expect("stores lock");
        Ok(stores
            .entry(bucket.to_string())
            .or_insert_with(|| {
                Arc::new(S3Store::new(&S3Settings {
                    bucket: bucket.to_string(),
                    ..cfg.settings.clone()
                }))
            })
            .clone())
    }

    fn check_s3(&self, uri: &str, what: &str) -> Result<String> {
        let cfg = self.s3.as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "unsupported scheme \"s3\" in {uri:?} (this coordinator has no [s3] config)"
            ))
        })?;
        let (bucket, key) =
            parse_s3(uri).ok_or_else(|| Error::invalid(format!("{what} {uri:?} has no key")))?;
        if bucket != cfg.settings.bucket && !cfg.allowed_buckets.iter().any(|b| b == bucket) {
            return Err(Error::invalid(format!(
                "{what} bucket {bucket:?} is not allowed (allowed: {})",
                cfg.allowed_buckets.join(", ")
            )));
        }
        if key.is_empty()
            || key.ends_with('/')
            || key
                .split('/')
                .any(|part| part == ".." || part == "." || part.is_empty())
        {
            return Err(Error::invalid(format!(
                "{what} key {key:?} is not a clean object key"
            )));
        }
        Ok(uri.to_string())
    }

    pub fn check_input(&self, uri: &str) -> Result<String> {
        if uri.starts_with("s3://") {
            self.check_s3(uri, "input")
        } else {
            storage::check_input(uri)
        }
    }

    pub fn check_output(&self, uri: &str) -> Result<String> {
        if uri.starts_with("s3://") {
            self.check_s3(uri, "output")
        } else {
            storage::check_output(uri)
        }
    }

    /// Where a job's intermediate objects go: the work bucket for jobs that
    /// touch S3, else the coordinator's data directory (`default`).
    pub fn work_dir(&self, spec: &JobSpec, job_id: &str, default: &str) -> String {
        match &self.s3 {
            Some(cfg) if spec.input.starts_with("s3://") || spec.output.starts_with("s3://") => {
                format!("s3://{}/spotenc/jobs/{job_id}", cfg.settings.bucket)
            }
            _ => default.to_string(),
        }
    }

    async fn get_url(&self, uri: &str) -> Result<String> {
        match parse_s3(uri) {
            Some((bucket, key)) => {
                let ttl = self
                    .s3
                    .as_ref()
                    .map_or(Duration::from_secs(3600), |c| c.presign_ttl);
                self.store(bucket)?.presign_get(key, ttl).await
            }
            None => Ok(uri.to_string()),
        }
    }

    async fn put_url(&self, uri: &str) -> Result<String> {
        match parse_s3(uri) {
            Some((bucket, key)) => {
                let ttl = self
                    .s3
                    .as_ref()
                    .map_or(Duration::from_secs(3600), |c| c.presign_ttl);
                self.store(bucket)?.presign_put(key, ttl).await
            }
            None => Ok(uri.to_string()),
        }
    }

    /// The work as a worker gets it: every `s3://` object presigned.
    pub async fn sign(&self, work: Work) -> Result<Work> {
        Ok(match work {
            Work::Probe(mut p) => {
                p.input = self.get_url(&p.input).await?;
                Work::Probe(p)
            }
            Work::Encode(mut e) => {
                e.input = self.get_url(&e.input).await?;
                e.output = self.put_url(&e.output).await?;
                Work::Encode(e)
            }
            Work::Audio(mut a) => {
                a.input = self.get_url(&a.input).await?;
                a.output = self.put_url(&a.output).await?;
                Work::Audio(a)
            }
            Work::Stitch(mut s) => {
                for c in &mut s.chunks {
                    c.path = self.get_url(&c.path).await?;
                }
                if let Some(a) = &mut s.audio {
                    a.path = self.get_url(&a.path).await?;
                }
                s.output = self.put_url(&s.output).await?;
                Work::Stitch(s)
            }
        })
    }

    /// Moves the stitched object onto the output. Repeatable: once the
    /// temporary is gone, an output of the stitched size counts as done.
    pub async fn commit(
        &self,
        stitched: &OutputObject,
        output: &str,
    ) -> std::result::Result<(), String> {
        let (Some((tb, tkey)), Some((ob, okey))) = (parse_s3(&stitched.path), parse_s3(output))
        else {
            let (obj, out) = (stitched.clone(), output.to_string());
            return tokio::task::spawn_blocking(move || storage::commit(&obj, &out))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
        };
        if tb != ob {
            return Err(format!(
                "stitched object {} is not in the output bucket",
                stitched.path
            ));
        }
        let store = self.store(ob).map_err(|e| e.to_string())?;
        match store.size(tkey).await.map_err(|e| e.to_string())? {
            Some(n) if n != stitched.size_bytes => Err(format!(
                "stitched object is {n} bytes, expected {}",
                stitched.size_bytes
            )),
            Some(_) => store.commit(tkey, okey).await.map_err(|e| e.to_string()),
            None => match store.size(okey).await.map_err(|e| e.to_string())? {
                Some(n) if n == stitched.size_bytes => Ok(()),
                _ => Err("stitched object is gone".into()),
            },
        }
    }

    /// Removes a job's intermediate objects and its temporaries beside the
    /// output. Best effort.
    pub async fn cleanup(&self, work_dir: &str, output: &str, job_id: &str) {
        if let Some((bucket, prefix)) = parse_s3(work_dir) {
            if let Ok(store) = self.store(bucket) {
                for key in store.list(&format!("{prefix}/")).await.unwrap_or_default() {
                    let _ = store.delete(&key).await;
                }
            }
        }
        match parse_s3(output) {
            Some((bucket, key)) => {
                let (dir, name) = key.rsplit_once('/').map_or(("", key), |(d, n)| (d, n));
                let prefix = if dir.is_empty() {
                    format!(".{name}.{job_id}.")
                } else {
                    format!("{dir}/.{name}.{job_id}.")
                };
                if let Ok(store) = self.store(bucket) {
                    for k in store.list(&prefix).await.unwrap_or_default() {
                        let _ = store.delete(&k).await;
                    }
                }
            }
            None => {
                let (w, o, j) = (work_dir.to_string(), output.to_string(), job_id.to_string());
                let _ = tokio::task::spawn_blocking(move || storage::cleanup(&w, &o, &j)).await;
            }
        }
    }
}
