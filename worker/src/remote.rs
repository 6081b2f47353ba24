//! Objects behind presigned URLs. A task whose work names `http(s)://` URLs
//! (the broker's presigned GET and PUT URLs) is staged: its inputs are
//! downloaded to a scratch directory first, the media work runs on local
//! files, and its output is uploaded with one PUT afterwards. Plain paths
//! pass through untouched.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use spotenc_proto::domain::{Container, Work};
use tokio::io::AsyncWriteExt;

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Why staging or uploading failed, and whether another attempt can help.
#[derive(Debug)]
pub(crate) struct TransferError {
    pub message: String,
    pub retryable: bool,
}

/// A task's work rewritten to local files, with the uploads still to do.
pub(crate) struct Staged {
    pub work: Work,
    uploads: Vec<Upload>,
    _scratch: Option<tempfile::TempDir>,
}

struct Stager<'a> {
    client: &'a reqwest::Client,
    /// Bytes moved so far, for the stall watchdog.
    moved: &'a AtomicU64,
    /// Leave source URLs to FFmpeg (HTTP range requests) instead of
    /// downloading them.
    stream_sources: bool,
    scratch: Option<tempfile::TempDir>,
    uploads: Vec<Upload>,
    n: usize,
}

/// An output to send once the media work has written it.
enum Upload {
    /// One presigned PUT.
    Put { path: PathBuf, url: String },
    /// Presigned UploadPart URLs, `part_size` bytes each (the last: the rest).
    Parts {
        path: PathBuf,
        urls: Vec<String>,
        part_size: u64,
    },
}

impl Stager<'_> {
    fn dir(&mut self) -> Result<&Path, TransferError> {
        if self.scratch.is_none() {
            self.scratch = Some(
                tempfile::Builder::new()
                    .prefix("spotenc-task-")
                    .tempdir()
                    .map_err(|e| TransferError {
                        message: format!("scratch directory: {e}"),
                        retryable: true,
                    })?,
            );
        }
        Ok(self.scratch.as_ref().expect("set above").path())
    }

    fn local(&mut self, name: &str) -> Result<PathBuf, TransferError> {
        self.n += 1;
        let n = self.n;
        Ok(self.dir()?.join(format!("{n:03}-{name}")))
    }

    async fn input(&mut self, url: &str, name: &str) -> Result<String, TransferError> {
        if !is_url(url) {
            return Ok(url.to_string());
        }
        self.fetch(url, name).await
    }

    /// A job's source: streamed or downloaded, as configured.
    async fn source(&mut self, url: &str) -> Result<String, TransferError> {
        if self.stream_sources || !is_url(url) {
            return Ok(url.to_string());
        }
        self.fetch(url, "input").await
    }

    async fn fetch(&mut self, url: &str, name: &str) -> Result<String, TransferError> {
        let path = self.local(name)?;
        download(self.client, url, &path, self.moved).await?;
        Ok(path.display().to_string())
    }

    fn output(&mut self, url: &str, name: &str) -> Result<String, TransferError> {
        if !is_url(url) {
            return Ok(url.to_string());
        }
        let path = self.local(name)?;
        self.uploads.push(Upload::Put {
            path: path.clone(),
            url: url.to_string(),
        });
        Ok(path.display().to_string())
    }
}

/// Downloads inputs (the job's source only when `stream_sources` is off)
/// and plans uploads for `work`.
pub(crate) async fn stage(
    client: &reqwest::Client,
    work: Work,
    stream_sources: bool,
    moved: &AtomicU64,
) -> Result<Staged, TransferError> {
    let mut s = Stager {
        client,
        moved,
        stream_sources,
        scratch: None,
        uploads: Vec::new(),
        n: 0,
    };
    let work = match work {
        Work::Probe(mut p) => {
            p.input = s.source(&p.input).await?;
            Work::Probe(p)
        }
        Work::Encode(mut e) => {
            e.input = s.source(&e.input).await?;
            e.output = s.output(&e.output, "chunk.nut")?;
            for (i, r) in e.renditions.iter_mut().enumerate() {
                r.output = s.output(&r.output, &format!("chunk.r{}.nut", i + 1))?;
            }
            Work::Encode(e)
        }
        Work::Audio(mut a) => {
            a.input = s.source(&a.input).await?;
            a.output = s.output(&a.output, "audio.nut")?;
            Work::Audio(a)
        }
        Work::Stitch(mut st) => {
            for c in &mut st.chunks {
                c.path = s.input(&c.path, "chunk.nut").await?;
            }
            for a in st.audio.iter_mut().chain(&mut st.more_audio) {
                a.path = s.input(&a.path, "audio.nut").await?;
            }
            // Without subtitles the stitch reads only the source's header:
            // stream it rather than download the whole source again.
            if let Some(c) = st.carry.as_mut().filter(|c| !c.subtitle_streams.is_empty()) {
                c.input = s.source(&c.input).await?;
            }
            let name = match st.container {
                Container::Mp4 => "output.mp4",
                Container::Mkv => "output.mkv",
            };
            if st.part_urls.is_empty() {
                st.output = s.output(&st.output, name)?;
            } else {
                let path = s.local(name)?;
                s.uploads.push(Upload::Parts {
                    path: path.clone(),
                    urls: std::mem::take(&mut st.part_urls),
                    part_size: st.part_size_bytes,
                });
                st.output = path.display().to_string();
            }
            Work::Stitch(st)
        }
    };
    Ok(Staged {
        work,
        uploads: s.uploads,
        _scratch: s.scratch,
    })
}

impl Staged {
    /// Uploads the outputs the media work wrote, counting bytes sent into
    /// `moved`.
    pub(crate) async fn upload(
        &self,
        client: &reqwest::Client,
        moved: &Arc<AtomicU64>,
    ) -> Result<(), TransferError> {
        for u in &self.uploads {
            match u {
                Upload::Put { path, url } => upload(client, path, url, 0, None, moved).await?,
                Upload::Parts {
                    path,
                    urls,
                    part_size,
                } => upload_parts(client, path, urls, *part_size, moved).await?,
            }
        }
        Ok(())
    }
}

/// An HTTP error with its causes ("error sending request" alone does not
/// say that the connection timed out or was reset).
fn with_causes(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

fn shown(url: &str) -> &str {
    // The query string carries the signature; keep it out of logs and errors.
    url.split('?').next().unwrap_or(url)
}

async fn download(
    client: &reqwest::Client,
    url: &str,
    path: &Path,
    moved: &AtomicU64,
) -> Result<(), TransferError> {
    let fail = |m: String, retryable| TransferError {
        message: format!("download {}: {m}", shown(url)),
        retryable,
    };
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(with_causes(&e), true))?;
    let status = resp.status();
    if !status.is_success() {
        // A missing or forbidden object will not appear on a retry.
        let retryable =
            !(status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN);
        return Err(fail(format!("HTTP {status}"), retryable));
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| fail(e.to_string(), true))?;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fail(with_causes(&e), true))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| fail(e.to_string(), true))?;
        moved.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    file.flush().await.map_err(|e| fail(e.to_string(), true))?;
    Ok(())
}

/// PUTs `len` bytes of the file from `offset` (`None`: to the end).
async fn upload(
    client: &reqwest::Client,
    path: &Path,
    url: &str,
    offset: u64,
    len: Option<u64>,
    moved: &Arc<AtomicU64>,
) -> Result<(), TransferError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let fail = |m: String| TransferError {
        message: format!("upload {}: {m}", shown(url)),
        retryable: true,
    };
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| fail(e.to_string()))?
        .len();
    let len = len.unwrap_or(size.saturating_sub(offset));
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| fail(e.to_string()))?;
    // The body counts what it hands to the connection.
    let counted = Counted {
        inner: file.take(len),
        moved: moved.clone(),
    };
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(counted));
    let resp = client
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(body)
        .send()
        .await
        .map_err(|e| fail(with_causes(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    Ok(())
}

/// Uploads a file in parts through presigned UploadPart URLs; the
/// coordinator completes the upload from the parts S3 holds.
async fn upload_parts(
    client: &reqwest::Client,
    path: &Path,
    urls: &[String],
    part_size: u64,
    moved: &Arc<AtomicU64>,
) -> Result<(), TransferError> {
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| TransferError {
            message: format!("upload parts: {e}"),
            retryable: true,
        })?
        .len();
    let needed = size.div_ceil(part_size.max(1)).max(1) as usize;
    if needed > urls.len() {
        return Err(TransferError {
            message: format!(
                "output is {size} bytes: {needed} parts of {part_size}, but only {} part URLs were issued",
                urls.len()
            ),
            retryable: false,
        });
    }
    for (i, url) in urls.iter().take(needed).enumerate() {
        let offset = i as u64 * part_size;
        upload(
            client,
            path,
            url,
            offset,
            Some(part_size.min(size - offset)),
            moved,
        )
        .await?;
    }
    Ok(())
}

/// A reader that adds what it reads to a counter: an upload's progress as
/// the connection takes it (hyper stops reading the body when the network
/// does not drain).
struct Counted<R> {
    inner: R,
    moved: Arc<AtomicU64>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.moved.fetch_add(read as u64, Ordering::Relaxed);
        r
    }
}
