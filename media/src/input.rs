//! Opening inputs safely.
//!
//! FFmpeg will follow an HLS playlist or a concat list to any URL or local
//! file it names. Every input here is opened with a protocol allowlist and a
//! demuxer allowlist, so a hostile file cannot steer FFmpeg elsewhere.

use std::path::Path;

use crate::ffmpeg;
use crate::{Error, Result};

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
        reason: match e {
            ffmpeg::Error::InvalidData => "not a recognised media file, or truncated".to_string(),
            other => format!("cannot open: {other}"),
        },
    })?;
    Ok(ictx)
}

/// Opens a task's input: a local path, a `file://` URL, or an `http(s)://`
/// URL (a presigned object URL, read with HTTP range requests; only the
/// network protocols that needs are allowed).
pub fn open_uri(uri: &str) -> Result<ffmpeg::format::context::Input> {
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return open(local_path(uri)?);
    }
    crate::init();
    // The query string is the signature: keep it out of messages.
    let shown = uri.split('?').next().unwrap_or(uri).to_string();
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("protocol_whitelist", "http,https,tcp,tls");
    opts.set("format_whitelist", FORMAT_ALLOWLIST);
    ffmpeg::format::input_with_dictionary(Path::new(uri), opts).map_err(|e| Error::BadInput {
        path: shown,
        reason: match e {
            ffmpeg::Error::InvalidData => "not a recognised media file, or truncated".to_string(),
            other => format!("cannot open: {other}"),
        },
    })
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
