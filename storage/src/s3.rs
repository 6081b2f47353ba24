//! S3-compatible object storage through aws-sdk-s3.
//!
//! The commit copies server-side: CopyObject up to `copy_part_bytes` (5 GiB,
//! S3's CopyObject limit), UploadPartCopy in parts of that size above it;
//! then the temporary is deleted. A conditional PUT (`If-None-Match`) is not
//! used: Garage ignores it.

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use spotenc_proto::{Error, Result};

use super::object::ObjectStore;

/// User metadata (`x-amz-meta-spotenc-sha256`) a committed output carries:
/// its SHA-256, so a repeated commit can tell it from another object.
const SHA256_META: &str = "spotenc-sha256";

/// Where and how to reach an S3-compatible service.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:3900`; `None` for AWS's own endpoints.
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: spotenc_proto::secret::Secret,
    /// Path-style addressing (`endpoint/bucket/key`), which Garage and MinIO
    /// need.
    pub path_style: bool,
}

/// `x-amz-copy-source`: `bucket/key` with the key URL-encoded (the SDK sends
/// it as given, and S3 decodes it), so keys with `+`, spaces or non-ASCII
/// copy the object they name. `/` separates and stays.
fn copy_source(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Largest object copied in one CopyObject; also the part size above it.
    copy_part_bytes: u64,
    /// Parts asked for per ListParts page (S3 returns at most 1000).
    list_parts_page: i32,
}

fn s3_error<E: std::fmt::Debug>(what: &str, key: &str, e: E) -> Error {
    Error::Unavailable(format!("s3 {what} {key}: {e:?}"))
}

impl S3Store {
    pub const MAX_COPY_OBJECT_BYTES: u64 = 5 << 30;

    pub fn new(s: &S3Settings) -> Self {
        let mut b = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(s.region.clone()))
            .credentials_provider(Credentials::new(
                s.access_key_id.clone(),
                s.secret_access_key.expose().to_string(),
                None,
                None,
                "spotenc",
            ))
            .force_path_style(s.path_style);
        if let Some(ep) = &s.endpoint {
            b = b.endpoint_url(ep);
        }
        S3Store {
            client: Client::from_conf(b.build()),
            bucket: s.bucket.clone(),
            copy_part_bytes: Self::MAX_COPY_OBJECT_BYTES,
            list_parts_page: 1000,
        }
    }

    /// Asks ListParts for `parts` parts per page (tests page with a few).
    pub fn with_list_parts_page(mut self, parts: i32) -> Self {
        self.list_parts_page = parts.clamp(1, 1000);
        self
    }

    /// Uses multipart copy above `bytes` (at least 5 MiB, S3's part minimum).
    pub fn with_copy_part_bytes(mut self, bytes: u64) -> Self {
        self.copy_part_bytes = bytes.clamp(5 << 20, Self::MAX_COPY_OBJECT_BYTES);
        self
    }

    fn presigning(ttl: Duration) -> Result<PresigningConfig> {
        PresigningConfig::expires_in(ttl).map_err(|e| Error::invalid(format!("presign ttl: {e}")))
    }

    /// The object's headers, or `None` when there is no such object.
    async fn head(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::head_object::HeadObjectOutput>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error("head", key, e)),
        }
    }

    async fn multipart_copy(&self, src: &str, dst: &str, size: u64, sha256: &str) -> Result<()> {
        let upload_id = self.create_multipart_with(dst, Some(sha256)).await?;
        let source = copy_source(&self.bucket, src);
        let mut parts = Vec::new();
        let mut start = 0u64;
        let mut number = 1;
        while start < size {
            let end = (start + self.copy_part_bytes).min(size) - 1;
            let r = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(dst)
                .upload_id(&upload_id)
                .part_number(number)
                .copy_source(&source)
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await;
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    let _ = self
                        .client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(dst)
                        .upload_id(&upload_id)
                        .send()
                        .await;
                    return Err(s3_error("upload part copy", dst, e));
                }
            };
            let etag = r
                .copy_part_result()
                .and_then(|c| c.e_tag())
                .unwrap_or_default();
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(etag)
                    .build(),
            );
            start = end + 1;
            number += 1;
        }
        self.complete_upload(dst, &upload_id, parts).await
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<()> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("complete multipart", key, e))?;
        Ok(())
    }
}

/// Multipart uploads written by workers through presigned part URLs.
impl S3Store {
    /// Starts a multipart upload of `key`; returns its upload id.
    pub async fn create_multipart(&self, key: &str) -> Result<String> {
        self.create_multipart_with(key, None).await
    }

    /// [`S3Store::create_multipart`], recording `sha256` on the object.
    async fn create_multipart_with(&self, key: &str, sha256: Option<&str>) -> Result<String> {
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key);
        if let Some(sha) = sha256.filter(|s| !s.is_empty()) {
            req = req.metadata(SHA256_META, sha);
        }
        let up = req
            .send()
            .await
            .map_err(|e| s3_error("create multipart", key, e))?;
        up.upload_id()
            .map(str::to_string)
            .ok_or_else(|| Error::Internal(format!("no upload id for {key}")))
    }

    /// A URL that uploads part `number` (from 1) of an upload.
    pub async fn presign_upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        ttl: Duration,
    ) -> Result<String> {
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .presigned(Self::presigning(ttl)?)
            .await
            .map_err(|e| s3_error("presign part", key, e))?;
        Ok(req.uri().to_string())
    }

    async fn uploads_of(&self, key: &str) -> Result<Vec<String>> {
        let r = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| s3_error("list uploads", key, e))?;
        Ok(r.uploads()
            .iter()
            .filter(|u| u.key() == Some(key))
            .filter_map(|u| u.upload_id().map(str::to_string))
            .collect())
    }

    /// Completes the multipart upload of `key` from the parts S3 holds (no
    /// caller needs to remember ETags). `false` when there is none.
    pub async fn complete_uploaded_parts(&self, key: &str) -> Result<bool> {
        let Some(upload_id) = self.uploads_of(key).await?.into_iter().next() else {
            return Ok(false);
        };
        // Every page: an upload of more parts than a page holds (1000 on
        // S3) would otherwise complete without its tail.
        let mut parts: Vec<CompletedPart> = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let listed = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .max_parts(self.list_parts_page)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| s3_error("list parts", key, e))?;
            parts.extend(listed.parts().iter().map(|p| {
                CompletedPart::builder()
                    .set_part_number(p.part_number())
                    .set_e_tag(p.e_tag().map(str::to_string))
                    .build()
            }));
            match listed.next_part_number_marker() {
                Some(next) if listed.is_truncated().unwrap_or(false) => {
                    marker = Some(next.to_string())
                }
                _ => break,
            }
        }
        if parts.is_empty() {
            return Ok(false);
        }
        self.complete_upload(key, &upload_id, parts).await?;
        Ok(true)
    }

    /// Aborts every unfinished multipart upload under `prefix`.
    pub async fn abort_uploads(&self, prefix: &str) -> Result<()> {
        let r = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .map_err(|e| s3_error("list uploads", prefix, e))?;
        for u in r.uploads() {
            if let (Some(key), Some(id)) = (u.key(), u.upload_id()) {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String> {
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(Self::presigning(ttl)?)
            .await
            .map_err(|e| s3_error("presign get", key, e))?;
        Ok(req.uri().to_string())
    }

    async fn presign_put(&self, key: &str, ttl: Duration) -> Result<String> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(Self::presigning(ttl)?)
            .await
            .map_err(|e| s3_error("presign put", key, e))?;
        Ok(req.uri().to_string())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| s3_error("put", key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let r = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_no_such_key() => Error::NotFound(format!("object {key}")),
                _ => s3_error("get", key, e),
            })?;
        let body = r
            .body
            .collect()
            .await
            .map_err(|e| s3_error("read", key, e))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn size(&self, key: &str) -> Result<Option<u64>> {
        Ok(self
            .head(key)
            .await?
            .map(|h| h.content_length().unwrap_or(0).max(0) as u64))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("delete", key, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("list", prefix, e))?;
            out.extend(
                r.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match r.next_continuation_token() {
                Some(t) if r.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }

    async fn sha256(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .head(key)
            .await?
            .and_then(|h| h.metadata().and_then(|m| m.get(SHA256_META)).cloned()))
    }

    async fn commit(&self, tmp_key: &str, final_key: &str, sha256: &str) -> Result<()> {
        let size = self
            .size(tmp_key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("object {tmp_key}")))?;
        if size <= self.copy_part_bytes {
            let mut req = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(final_key)
                .copy_source(copy_source(&self.bucket, tmp_key));
            if !sha256.is_empty() {
                req = req
                    .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                    .metadata(SHA256_META, sha256);
            }
            req.send()
                .await
                .map_err(|e| s3_error("copy", final_key, e))?;
        } else {
            self.multipart_copy(tmp_key, final_key, size, sha256)
                .await?;
        }
        self.delete(tmp_key).await
    }
}
