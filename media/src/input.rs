//! Opening inputs safely.
//!
//! FFmpeg will follow an HLS playlist or a concat list to any URL or local
//! file it names. Every input here is opened with a protocol allowlist and a
//! demuxer allowlist, so a hostile file cannot steer FFmpeg elsewhere.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::ffmpeg;
use crate::{Control, Error, Result};

/// How long one read on a network input may block before FFmpeg gives up
/// on it (its `rw_timeout`); the worker's stall watchdog covers the rest.
pub const NETWORK_RW_TIMEOUT: Duration = Duration::from_secs(30);

/// Demuxers we accept, as FFmpeg names them.
const FORMAT_ALLOWLIST: &str =
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mpegts,avi,flv,nut,mxf,mpeg,ivf,h264,hevc,aac,wav";

pub fn open(path: &Path) -> Result<ffmpeg::format::context::Input> {
    crate::init();
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| Error::BadInput {
        path: shown.clone(),
        reason: match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => e.to_string(),
        },
    })?;
    if !meta.is_file() {
        return Err(Error::BadInput {
            path: shown,
            reason: "not a regular file".into(),
        });
    }
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("protocol_whitelist", "file");
    opts.set("format_whitelist", FORMAT_ALLOWLIST);
    let ictx = ffmpeg::format::input_with_dictionary(path, opts).map_err(|e| Error::BadInput {
        path: shown.clone(),
        reason: match (e, refused_kind(path)) {
            (_, Some(kind)) => format!(
                "it is {kind}, which spotenc does not open: it can name other files or hosts \
                 for FFmpeg to read"
            ),
            (ffmpeg::Error::InvalidData, None) => {
                "not a recognised media file, or truncated".to_string()
            }
            // The demuxer allowlist answers EINVAL for a format outside it.
            (ffmpeg::Error::Other { errno }, None) if errno == ffmpeg::util::error::EINVAL => {
                format!("its container is not one spotenc opens (demuxers: {FORMAT_ALLOWLIST})")
            }
            (other, None) => format!("cannot open: {other}"),
        },
    })?;
    Ok(ictx)
}

/// What a file that names other inputs is, from its first bytes: FFmpeg
/// reads these as inputs (playlists, concat lists, session descriptions),
/// and the demuxer allowlist refuses them; this only names them.
fn refused_kind(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let text = String::from_utf8_lossy(&head[..n]);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with("#EXTM3U") {
        Some("an HLS playlist")
    } else if text.starts_with("ffconcat version") {
        Some("an ffconcat list")
    } else if text.starts_with("v=0") {
        Some("an SDP session description")
    } else {
        None
    }
}

/// Opens a task's input: a local path, a `file://` URL, or an `http(s)://`
/// URL (a presigned object URL, read with HTTP range requests; only the
/// network protocols that needs are allowed). A network read that blocks
/// longer than [`NETWORK_RW_TIMEOUT`] fails, and setting `ctl`'s cancel
/// flag interrupts a blocked open or read at once.
pub fn open_uri(uri: &str, ctl: &Control) -> Result<ffmpeg::format::context::Input> {
    if !is_network(uri) {
        return open(local_path(uri)?);
    }
    crate::init();
    let shown = shown(uri);
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("protocol_whitelist", "http,https,tcp,tls");
    opts.set("format_whitelist", FORMAT_ALLOWLIST);
    opts.set("rw_timeout", &NETWORK_RW_TIMEOUT.as_micros().to_string());
    let cancel = ctl.cancel.clone();
    let interrupted = move || cancel.load(Ordering::Relaxed);
    ffmpeg::format::input_with_interrupt_and_dictionary(Path::new(uri), interrupted, opts).map_err(
        |e| match e {
            ffmpeg::Error::Exit => Error::Cancelled,
            ffmpeg::Error::InvalidData => Error::BadInput {
                path: shown,
                reason: "not a recognised media file, or truncated".to_string(),
            },
            // A missing or forbidden object will not appear on a retry.
            ffmpeg::Error::HttpNotFound
            | ffmpeg::Error::HttpForbidden
            | ffmpeg::Error::HttpUnauthorized
            | ffmpeg::Error::HttpBadRequest
            | ffmpeg::Error::HttpOther4xx => Error::BadInput {
                path: shown,
                reason: format!("cannot open: {e}"),
            },
            // Timeouts, resets and server errors: another attempt may work.
            other => Error::Ffmpeg {
                context: format!("open {shown}"),
                source: other,
            },
        },
    )
}

fn is_network(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// `uri` without its query string, which holds a presigned URL's signature.
pub(crate) fn shown(uri: &str) -> String {
    uri.split('?').next().unwrap_or(uri).to_string()
}

/// After packet iteration ended: whether it ended because the input did.
/// FFmpeg ends iteration on a read error (a timed-out or reset network
/// read, an interrupted one) as on the end of the file; this tells them
/// apart, so a stalled source fails the task (retryably) instead of
/// yielding a short chunk.
pub fn read_ok(ictx: &ffmpeg::format::context::Input, ctl: &Control, uri: &str) -> Result<()> {
    ctl.check()?;
    match crate::ffi::io_error(ictx) {
        None => Ok(()),
        Some(ffmpeg::Error::Exit) => Err(Error::Cancelled),
        Some(e) => Err(Error::Ffmpeg {
            context: format!("read {}", shown(uri)),
            source: e,
        }),
    }
}

/// Interprets a task's input string: a local path or a `file://` URL.
pub fn local_path(uri: &str) -> Result<&Path> {
    let p = uri.strip_prefix("file://").unwrap_or(uri);
    if p.contains("://") {
        return Err(Error::BadInput {
            path: uri.to_string(),
            reason: "only local paths and file:// URLs are readable by this worker".into(),
        });
    }
    Ok(Path::new(p))
}
