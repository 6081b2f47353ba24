//! spotenc-media: the only crate that calls FFmpeg.
//!
//! Layout:
//! - [`probe`]: streams, duration, frame rate, start time and every keyframe
//!   of an input, from a packet scan.
//! - [`encode`]: frame-accurate chunk encode: seek to the keyframe at or
//!   before the chunk, decode, drop frames outside `[start, end)`, scale and
//!   convert, encode with an IDR and a closed GOP at the first frame, keep
//!   the source timeline. One decode feeds every rendition. Software
//!   (libx264/libx265), NVENC (with NVDEC and scale_cuda, frames on the
//!   GPU), NVDEC for CPU encoders, or QSV; a hardware path that fails falls
//!   back to software for that chunk.
//! - [`audio`]: one whole-duration audio track, AAC-encoded (keeping its
//!   channel layout) or copied.
//! - [`quality`]: each output's PSNR and SSIM against the frames its
//!   encoder was given, from its packets decoded as they are made.
//! - [`stitch`]: verify every chunk (size, checksum, frame count), then remux
//!   the chunks and the audio tracks into MP4 (faststart) or MKV.
//! - `picture`: the filters a decoded picture goes through before it is
//!   scaled: the display rotation applied (`--autorotate`) and HDR
//!   tone-mapped to BT.709 SDR (`--tonemap`).
//! - `carry`: what a stitch takes straight from the source: stream tags and
//!   dispositions, the display matrix and HDR side data, subtitles (text to
//!   mov_text for MP4), attachments, chapters and global tags.
//! - `input`: opening inputs safely (protocol and format allowlists; a 30 s
//!   network read timeout and an interrupt callback on [`Control`]'s cancel
//!   flag), and telling a failed read from the end of the input.
//! - [`Control`]: progress (frames, and packets of any kind for the stall
//!   watchdog) and cancellation shared with the worker.
//! - [`capture_log`]: what FFmpeg and the codecs log while a task runs,
//!   from any of their threads, and (with [`capture_stderr`]) what they
//!   print to stderr.
//! - `ffi`: the few raw FFmpeg calls ffmpeg-next does not wrap (seeking,
//!   codec flags, the index, a read's latched I/O error, CUDA devices and
//!   hardware frames), and the log callback; `ffi::streams` the stream-level
//!   ones (dispositions, side data, chapters, mov_text conversion); with
//!   gpu-worker's `ffi`, the only `unsafe` in the workspace.
//! - [`fuzzing`]: the probe's fuzz entry point (arbitrary bytes as an input).
//! - [`Error`]: what went wrong, and whether another attempt can help.
//!
//! Everything here is blocking; callers run it on a blocking thread.

#![deny(unsafe_code)]

pub mod audio;
mod carry;
pub mod encode;
pub mod fuzzing;
pub mod probe;
pub mod quality;
pub mod stitch;

#[allow(unsafe_code)]
mod ffi;
mod input;
mod picture;

pub use input::NETWORK_RW_TIMEOUT;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use ffmpeg_next as ffmpeg;

/// What a media operation failed with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input itself is unusable; no retry can fix it.
    #[error("bad input {path}: {reason}")]
    BadInput { path: String, reason: String },
    /// A setting that this input or encoder cannot honour.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The encoder refused to open or failed mid-stream.
    #[error("{encoder} failed: {reason}")]
    Encoder { encoder: String, reason: String },
    /// A chunk or output does not match what the plan says.
    #[error("verify: {0}")]
    Verify(String),
    #[error("io {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ffmpeg {context}: {source}")]
    Ffmpeg {
        context: String,
        #[source]
        source: ffmpeg::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Whether another attempt, maybe on another worker, could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Ffmpeg { .. } | Error::Verify(_) | Error::Encoder { .. }
        )
    }

    pub(crate) fn ff(context: impl Into<String>) -> impl FnOnce(ffmpeg::Error) -> Error {
        let context = context.into();
        move |source| Error::Ffmpeg { context, source }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Initialises FFmpeg once. Its log goes nowhere except into a
/// [`capture_log`] buffer: decoding from a keyframe after a seek logs errors
/// for the open-GOP pictures we drop anyway, and real failures surface as
/// errors and frame-count mismatches.
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ffmpeg::init().expect("ffmpeg libraries load");
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Info);
        ffi::install_log_callback();
    });
}

/// Runs `f` and returns what FFmpeg and the codec libraries logged meanwhile
/// (info level and above, at most the last 64 KiB): the audit log of one
/// task attempt. That is what this thread logged, what the codecs it opened
/// logged from their own threads, and, once [`capture_stderr`] is on, what
/// was written to stderr (libx265 prints there), which goes to every
/// capture open at the time (exact with one task per process). Empty on architectures other than x86-64.
pub fn capture_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    struct Capture;
    impl Drop for Capture {
        fn drop(&mut self) {
            ffi::end_log_capture();
        }
    }
    ffi::begin_log_capture();
    let guard = Capture;
    let out = f();
    std::mem::forget(guard);
    (out, ffi::end_log_capture())
}

/// Puts a pipe on this process's stderr so that libraries that print
/// instead of logging (libx265) reach [`capture_log`]; a line written while
/// no capture is open still goes to the original stderr, which is returned
/// for the process's own logs. Call once, early, in a worker process.
pub fn capture_stderr() -> std::io::Result<std::fs::File> {
    ffi::capture_stderr()
}

/// Progress and cancellation shared between a running operation and the
/// worker that drives it.
#[derive(Debug, Default)]
pub struct Control {
    pub frames_done: AtomicU64,
    /// Set to stop: checked between packets, and polled by FFmpeg's
    /// interrupt callback while a network read blocks.
    pub cancel: Arc<AtomicBool>,
    /// Packets and frames handled so far, of any kind: the stall
    /// watchdog's evidence that work moves.
    pub progress: AtomicU64,
    /// Test hook: the encoder gets every frame with its luma inverted (the
    /// count and size unchanged), as a failing GPU might encode them, while
    /// quality is measured against the true frames.
    pub damage_frames: AtomicBool,
}

impl Control {
    /// Counts a step of progress; fails once cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        self.progress.fetch_add(1, Ordering::Relaxed);
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    pub(crate) fn damages_frames(&self) -> bool {
        self.damage_frames.load(Ordering::Relaxed)
    }

    pub(crate) fn set_frames(&self, n: u64) {
        self.frames_done.store(n, Ordering::Relaxed);
    }
}

/// A filter graph from a `source` filter (`buffer` or `abuffer`, with
/// `args`) through `spec` to a sink named `out`; the source is named `in`.
pub(crate) fn filter_graph(source: &str, args: &str, spec: &str) -> Result<ffmpeg::filter::Graph> {
    use ffmpeg::filter;
    let sink = if source == "abuffer" {
        "abuffersink"
    } else {
        "buffersink"
    };
    let ff = |what: &str| Error::ff(format!("filter graph {spec:?}: {what}"));
    let mut graph = filter::Graph::new();
    let find = |name: &str| {
        filter::find(name).ok_or_else(|| Error::Unsupported(format!("no {name} filter")))
    };
    graph.add(&find(source)?, "in", args).map_err(ff(source))?;
    graph.add(&find(sink)?, "out", "").map_err(ff(sink))?;
    graph
        .output("in", 0)
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(spec))
        .map_err(ff("parse"))?;
    graph.validate().map_err(ff("validate"))?;
    Ok(graph)
}

/// Size and SHA-256 of a file, as the stitcher verifies them.
pub fn file_digest(path: &Path) -> Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Writes through `write` into `final_path` + `.part`, then renames, so a
/// reader never sees a partial file at `final_path`.
pub(crate) fn write_atomically<T>(
    final_path: &Path,
    write: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    write_all_atomically(std::slice::from_ref(&final_path.to_path_buf()), |parts| {
        write(&parts[0])
    })
}

/// [`write_atomically`] for several files written together: `write` gets
/// their `.part` paths; every file is renamed into place only once all of
/// them are written, and none is left behind on failure.
pub(crate) fn write_all_atomically<T>(
    final_paths: &[PathBuf],
    write: impl FnOnce(&[PathBuf]) -> Result<T>,
) -> Result<T> {
    let parts: Vec<PathBuf> = final_paths
        .iter()
        .map(|p| {
            let mut part = p.as_os_str().to_owned();
            part.push(".part");
            PathBuf::from(part)
        })
        .collect();
    for p in final_paths {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
    }
    match write(&parts) {
        Ok(v) => {
            for (part, dst) in parts.iter().zip(final_paths) {
                std::fs::rename(part, dst).map_err(Error::io(dst))?;
            }
            Ok(v)
        }
        Err(e) => {
            for part in &parts {
                let _ = std::fs::remove_file(part);
            }
            Err(e)
        }
    }
}

/// The object a task reports for the file it wrote at `local`.
pub(crate) fn stored_object(
    path: &str,
    local: &Path,
    frames: u64,
) -> Result<spotenc_proto::domain::OutputObject> {
    let (size_bytes, sha256) = file_digest(local)?;
    Ok(spotenc_proto::domain::OutputObject {
        path: path.to_string(),
        size_bytes,
        sha256,
        frames,
        ..Default::default()
    })
}
