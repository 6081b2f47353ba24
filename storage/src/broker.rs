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

use crate::object::ObjectStore;
use crate::s3::{S3Settings, S3Store};

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
    /// Stitched outputs expected above this size go up in parts.
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
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

    pub fn check_input(&self, uri: &str, files: &crate::Files) -> Result<String> {
        if uri.starts_with("s3://") {
            self.check_s3(uri, "input")
        } else {
            crate::check_input(uri, files)
        }
    }

    pub fn check_output(&self, uri: &str, files: &crate::Files) -> Result<String> {
        if uri.starts_with("s3://") {
            self.check_s3(uri, "output")
        } else {
            crate::check_output(uri, files)
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

    fn ttl(&self) -> Duration {
        self.s3
            .as_ref()
            .map_or(Duration::from_secs(3600), |c| c.presign_ttl)
    }

    async fn get_url(&self, uri: &str) -> Result<String> {
        match parse_s3(uri) {
            Some((bucket, key)) => {
                let ttl = self.ttl();
                self.store(bucket)?.presign_get(key, ttl).await
            }
            None => Ok(uri.to_string()),
        }
    }

    async fn put_url(&self, uri: &str) -> Result<String> {
        match parse_s3(uri) {
            Some((bucket, key)) => {
                let ttl = self.ttl();
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
                for r in &mut e.renditions {
                    r.output = self.put_url(&r.output).await?;
                }
                Work::Encode(e)
            }
            Work::Audio(mut a) => {
                a.input = self.get_url(&a.input).await?;
                a.output = self.put_url(&a.output).await?;
                Work::Audio(a)
            }
            Work::Stitch(mut s) => {
                // A remux is about as large as its chunks and audio.
                let estimate: u64 = s.chunks.iter().map(|c| c.size_bytes).sum::<u64>()
                    + s.audio_objects().map(|a| a.size_bytes).sum::<u64>();
                for c in &mut s.chunks {
                    c.path = self.get_url(&c.path).await?;
                }
                for a in s.audio.iter_mut().chain(&mut s.more_audio) {
                    a.path = self.get_url(&a.path).await?;
                }
                if let Some(c) = &mut s.carry {
                    c.input = self.get_url(&c.input).await?;
                }
                match (parse_s3(&s.output), &self.s3) {
                    (Some((bucket, key)), Some(cfg))
                        if estimate > cfg.multipart_threshold_bytes =>
                    {
                        let store = self.store(bucket)?;
                        let upload_id = store.create_multipart(key).await?;
                        // Room for the container overhead and a bad estimate.
                        let parts = (estimate + estimate / 10).div_ceil(cfg.part_size_bytes) + 1;
                        let mut urls = Vec::new();
                        for n in 1..=parts.min(10_000) {
                            urls.push(
                                store
                                    .presign_upload_part(key, &upload_id, n as i32, cfg.presign_ttl)
                                    .await?,
                            );
                        }
                        s.part_urls = urls;
                        s.part_size_bytes = cfg.part_size_bytes;
                        s.output = String::new();
                    }
                    _ => s.output = self.put_url(&s.output).await?,
                }
                Work::Stitch(s)
            }
        })
    }

    /// Checks that `stitched` can be moved onto `output` before any rename
    /// of the job's commit ([`crate::check_commit`] for files; S3 objects
    /// are checked by the copy itself).
    pub async fn check_commit(
        &self,
        stitched: &OutputObject,
        output: &str,
    ) -> std::result::Result<(), String> {
        if parse_s3(output).is_some() {
            return Ok(());
        }
        let (obj, out) = (stitched.clone(), output.to_string());
        tokio::task::spawn_blocking(move || crate::check_commit(&obj, &out))
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
    }

    /// Moves the stitched object onto the output. Repeatable: once the
    /// temporary is gone, an output carrying the stitch's SHA-256 counts as
    /// done.
    pub async fn commit(
        &self,
        stitched: &OutputObject,
        output: &str,
    ) -> std::result::Result<(), String> {
        let (Some((tb, tkey)), Some((ob, okey))) = (parse_s3(&stitched.path), parse_s3(output))
        else {
            let (obj, out) = (stitched.clone(), output.to_string());
            return tokio::task::spawn_blocking(move || crate::commit(&obj, &out))
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
        // A stitch uploaded in parts becomes an object once completed.
        if store.size(tkey).await.map_err(|e| e.to_string())?.is_none() {
            store
                .complete_uploaded_parts(tkey)
                .await
                .map_err(|e| e.to_string())?;
        }
        match store.size(tkey).await.map_err(|e| e.to_string())? {
            Some(n) if n != stitched.size_bytes => Err(format!(
                "stitched object is {n} bytes, expected {}",
                stitched.size_bytes
            )),
            Some(_) => store
                .commit(tkey, okey, &stitched.sha256)
                .await
                .map_err(|e| e.to_string()),
            // Committed before (a crash between the copy and its record):
            // only if the output is this very object, by its checksum.
            None => match store.sha256(okey).await.map_err(|e| e.to_string())? {
                Some(sha) if !stitched.sha256.is_empty() && sha == stitched.sha256 => Ok(()),
                Some(_) => Err("stitched object is gone and the output is another object".into()),
                None => match store.size(okey).await.map_err(|e| e.to_string())? {
                    Some(_) => Err("stitched object is gone and the output is another object \
                         (it carries no checksum of ours)"
                        .into()),
                    None => Err("stitched object is gone".into()),
                },
            },
        }
    }

    /// Removes a job's intermediate objects (once) and its temporaries
    /// beside each of its outputs. Best effort.
    pub async fn cleanup(&self, work_dir: &str, outputs: &[&str], job_id: &str) {
        match parse_s3(work_dir) {
            Some((bucket, prefix)) => {
                if let Ok(store) = self.store(bucket) {
                    for key in store.list(&format!("{prefix}/")).await.unwrap_or_default() {
                        let _ = store.delete(&key).await;
                    }
                }
            }
            None => {
                let w = work_dir.to_string();
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(w)).await;
            }
        }
        for output in outputs {
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
                        let _ = store.abort_uploads(&prefix).await;
                    }
                }
                None => {
                    let (o, j) = (output.to_string(), job_id.to_string());
                    let _ = tokio::task::spawn_blocking(move || crate::remove_temporaries(&o, &j))
                        .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::garage_settings;
    use spotenc_tests::garage::{Garage, BUCKET};

    fn broker(g: &Garage) -> Broker {
        Broker::new(Some(S3Config {
            settings: garage_settings(g),
            allowed_buckets: vec![],
            presign_ttl: Duration::from_secs(60),
            multipart_threshold_bytes: 4 << 30,
            part_size_bytes: 64 << 20,
        }))
    }

    // The coordinator can die after the copy and before it records the
    // commit; committing again must then succeed without the temporary.
    #[tokio::test]
    async fn commit_is_repeatable_after_a_crash_between_copy_and_record() {
        let g = Garage::start();
        let b = broker(&g);
        let store = b.store(BUCKET).unwrap();
        store
            .put("out/.m.mp4.j.a1.part", b"stitched bytes".to_vec())
            .await
            .unwrap();
        let stitched = OutputObject {
            path: format!("s3://{BUCKET}/out/.m.mp4.j.a1.part"),
            size_bytes: 14,
            sha256: {
                use sha2::{Digest, Sha256};
                hex::encode(Sha256::digest(b"stitched bytes"))
            },
            frames: 1,
            ..Default::default()
        };
        let output = format!("s3://{BUCKET}/out/m.mp4");
        b.commit(&stitched, &output).await.unwrap();
        // "Restart": the temporary is gone, the output is in place.
        b.commit(&stitched, &output).await.unwrap();
        assert_eq!(store.get("out/m.mp4").await.unwrap(), b"stitched bytes");
        // A different object at the output is not mistaken for ours, even
        // of the same size (before: a size match was taken as done).
        for other in [&b"something else entirely"[..], b"stitched bytez"] {
            store.put("out/m.mp4", other.to_vec()).await.unwrap();
            let e = b.commit(&stitched, &output).await.unwrap_err();
            assert!(e.contains("another object"), "{e}");
        }
    }

    #[test]
    fn inputs_are_limited_to_allowed_buckets_and_clean_keys() {
        let b = Broker::new(Some(S3Config {
            settings: S3Settings {
                endpoint: None,
                region: "r".into(),
                bucket: "work".into(),
                access_key_id: "k".into(),
                secret_access_key: "s".into(),
                path_style: true,
            },
            allowed_buckets: vec!["media".into()],
            presign_ttl: Duration::from_secs(60),
            multipart_threshold_bytes: 1,
            part_size_bytes: 5 << 20,
        }));
        assert!(b
            .check_input("s3://media/in/a.mp4", &Default::default())
            .is_ok());
        for bad in [
            "s3://other/a.mp4",
            "s3://media/../a.mp4",
            "s3://media/a//b.mp4",
            "s3://media/",
            "s3://media",
        ] {
            assert!(b.check_input(bad, &Default::default()).is_err(), "{bad}");
        }
        assert!(Broker::new(None)
            .check_output("s3://media/o.mp4", &Default::default())
            .is_err());
    }
}
