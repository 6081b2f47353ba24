//! Raw FFmpeg calls that ffmpeg-next does not wrap. With gpu-worker's
//! `ffi`, the only modules in the workspace allowed `unsafe` (every crate
//! forbids or denies it elsewhere).

use crate::ffmpeg;
use ffmpeg::ffi;

pub mod streams;

/// Seeks `stream` to the keyframe at or before `ts` (in the stream's time base).
pub fn seek_stream_backward(
    input: &mut ffmpeg::format::context::Input,
    stream: usize,
    ts: i64,
) -> Result<(), ffmpeg::Error> {
    seek_stream(input, stream, ts, ffi::AVSEEK_FLAG_BACKWARD)
}

/// Seeks `stream` to the first keyframe at or after `ts`.
pub fn seek_stream_forward(
    input: &mut ffmpeg::format::context::Input,
    stream: usize,
    ts: i64,
) -> Result<(), ffmpeg::Error> {
    seek_stream(input, stream, ts, 0)
}

fn seek_stream(
    input: &mut ffmpeg::format::context::Input,
    stream: usize,
    ts: i64,
    flags: i32,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: the context pointer is owned by `input` and valid for the call;
    // `stream` is an index the caller took from the same context.
    let ret = unsafe { ffi::av_seek_frame(input.as_mut_ptr(), stream as i32, ts, flags) };
    if ret < 0 {
        Err(ffmpeg::Error::from(ret))
    } else {
        Ok(())
    }
}

/// Clears the codec tag of an output stream, so a muxer picks its own tag
/// instead of keeping one from the container the parameters were read from.
pub fn clear_codec_tag(stream: &mut ffmpeg::format::stream::StreamMut) {
    // SAFETY: `codecpar` is allocated with the stream and lives as long as it.
    unsafe {
        (*(*stream.as_mut_ptr()).codecpar).codec_tag = 0;
    }
}

/// The codec extradata (SPS/PPS and friends) of an input stream.
pub fn extradata(params: &ffmpeg::codec::Parameters) -> Vec<u8> {
    // SAFETY: extradata is either null or `extradata_size` valid bytes owned by
    // the parameters, which outlive this borrow; we copy them out.
    unsafe {
        let p = params.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
        }
    }
}

/// Adds codec flags to an encoder context. ffmpeg-next's `set_flags` replaces
/// them, which drops libx264's closed-GOP default; this ORs them in.
pub fn add_codec_flags(enc: &mut ffmpeg::codec::Context, flags: ffmpeg::codec::Flags) {
    // SAFETY: the context pointer is owned by `enc` and valid for the call.
    unsafe {
        (*enc.as_mut_ptr()).flags |= flags.bits() as i32;
    }
}

/// One entry of a demuxer's index.
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry {
    /// Decode timestamp in the stream's time base (MP4 indexes by DTS).
    pub dts: i64,
    pub keyframe: bool,
    pub discard: bool,
}

/// The demuxer's index of a stream, in decode order. MP4 demuxers index
/// every sample at open time; others index sparsely or not at all.
pub fn index_entries(input: &mut ffmpeg::format::context::Input, stream: usize) -> Vec<IndexEntry> {
    // SAFETY: `stream` indexes the context's stream array (the caller took it
    // from the same context); entries are read, copied out, and the pointer
    // is not kept past the loop, during which the context is not touched.
    unsafe {
        let ctx = input.as_mut_ptr();
        if stream >= (*ctx).nb_streams as usize {
            return Vec::new();
        }
        let st = *(*ctx).streams.add(stream);
        let n = ffi::avformat_index_get_entries_count(st);
        (0..n)
            .filter_map(|i| {
                let e = ffi::avformat_index_get_entry(st, i);
                (!e.is_null()).then(|| IndexEntry {
                    dts: (*e).timestamp,
                    keyframe: (*e).flags() & ffi::AVINDEX_KEYFRAME != 0,
                    discard: (*e).flags() & ffi::AVINDEX_DISCARD_FRAME != 0,
                })
            })
            .collect()
    }
}

/// FFmpeg's log callback, pointed at a per-task buffer while a task runs
/// (see [`crate::capture_log`]), and the process's stderr, teed into the
/// same buffers. x86-64 only: the callback receives a `va_list`, whose
/// Rust type bindgen spells differently on each architecture; elsewhere
/// logs are not captured.
///
/// A line reaches a capture three ways:
/// - logged on the capturing thread (the demuxer, the decoder's and the
///   encoder's own calls);
/// - logged from another thread with a codec context that a capture
///   registered with [`attribute`] (libx264 logs through its context from
///   its lookahead thread);
/// - written to stderr by a library that prints instead of logging
///   (libx265), once [`capture_stderr`] has put a pipe on fd 2. Which task
///   a stderr line belongs to cannot be known, so it goes to every capture
///   open at the time: exact on a worker with one slot; with several, each
///   running attempt's log gets the others' stderr lines too. A line read
///   while no capture is open goes to the original stderr.
#[cfg(target_arch = "x86_64")]
mod log {
    use std::cell::{Cell, RefCell};
    use std::collections::HashSet;
    use std::ffi::{c_char, c_int, c_void, CStr};
    use std::io::{BufRead, Write};
    use std::os::fd::FromRawFd;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    use std::time::Duration;

    use super::ffi;

    type Sink = Arc<Mutex<String>>;

    thread_local! {
        static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
        static PRINT_PREFIX: Cell<c_int> = const { Cell::new(1) };
    }

    /// Captures open now (for stderr lines).
    static OPEN: Mutex<Vec<Sink>> = Mutex::new(Vec::new());
    /// Codec contexts registered by a capture (for lines logged from
    /// other threads), by address; the latest registration of an address
    /// wins, and a capture's entries go when it ends.
    static CONTEXTS: Mutex<Vec<(usize, Sink)>> = Mutex::new(Vec::new());
    /// Set once stderr is a pipe read by [`tee`].
    static TEED: AtomicBool = AtomicBool::new(false);
    static MARKS: AtomicU64 = AtomicU64::new(0);
    /// Sync marks the tee has read, and who waits for them.
    static SEEN: OnceLock<(Mutex<HashSet<u64>>, Condvar)> = OnceLock::new();
    const MARK: &str = "\u{1}spotenc-log-sync ";

    /// Keeps at most this much per capture, dropping the oldest lines.
    const KEEP: usize = 64 * 1024;

    fn push(sink: &Sink, text: &str) {
        let mut buf = sink.lock().unwrap_or_else(|p| p.into_inner());
        buf.push_str(text);
        if buf.len() > 2 * KEEP {
            let mut cut = buf.len() - KEEP;
            while !buf.is_char_boundary(cut) {
                cut += 1;
            }
            buf.drain(..cut);
        }
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    unsafe extern "C" fn callback(
        avcl: *mut c_void,
        level: c_int,
        fmt: *const c_char,
        vl: *mut ffi::__va_list_tag,
    ) {
        if level > ffi::AV_LOG_INFO as c_int {
            return;
        }
        let sink = SINK.with(|s| s.borrow().clone()).or_else(|| {
            let at = avcl as usize;
            (at != 0)
                .then(|| {
                    lock(&CONTEXTS)
                        .iter()
                        .rev()
                        .find(|(p, _)| *p == at)
                        .map(|(_, s)| s.clone())
                })
                .flatten()
        });
        let Some(sink) = sink else {
            return;
        };
        let mut line = [0 as c_char; 1024];
        let mut prefix = PRINT_PREFIX.with(Cell::get);
        // SAFETY: FFmpeg hands us its own fmt/va_list pair; the buffer is
        // ours and its size is passed along, and the result is always
        // NUL-terminated.
        let text = unsafe {
            ffi::av_log_format_line2(
                avcl,
                level,
                fmt,
                vl,
                line.as_mut_ptr(),
                line.len() as c_int,
                &mut prefix,
            );
            CStr::from_ptr(line.as_ptr()).to_string_lossy().into_owned()
        };
        PRINT_PREFIX.with(|p| p.set(prefix));
        push(&sink, &text);
    }

    pub fn install() {
        // SAFETY: the callback is a plain function that lives for the whole
        // program and only touches thread-local state and its own locks.
        unsafe { ffi::av_log_set_callback(Some(callback)) };
    }

    pub fn begin() {
        let sink = Sink::default();
        lock(&OPEN).push(sink.clone());
        SINK.with(|s| *s.borrow_mut() = Some(sink));
        PRINT_PREFIX.with(|p| p.set(1));
    }

    pub fn end() -> String {
        let Some(sink) = SINK.with(|s| s.borrow_mut().take()) else {
            return String::new();
        };
        sync_stderr();
        lock(&OPEN).retain(|s| !Arc::ptr_eq(s, &sink));
        lock(&CONTEXTS).retain(|(_, s)| !Arc::ptr_eq(s, &sink));
        let text = std::mem::take(&mut *lock(&sink));
        text
    }

    /// Adds a line of our own to this thread's capture, if one is on.
    pub fn note(line: &str) {
        SINK.with(|s| {
            if let Some(sink) = s.borrow().as_ref() {
                push(sink, line);
            }
        });
    }

    /// Sends what other threads log through `ctx` to this thread's
    /// capture, until it ends.
    pub fn attribute(ctx: *const c_void) {
        if let Some(sink) = SINK.with(|s| s.borrow().clone()) {
            let mut c = lock(&CONTEXTS);
            c.retain(|(p, _)| *p != ctx as usize);
            c.push((ctx as usize, sink));
        }
    }

    /// Puts a pipe on fd 2 and reads it: a line goes to the captures open
    /// when it is read, or, when none is, to the original stderr (as
    /// FFmpeg's own log goes only into captures). Returns the original
    /// stderr, for the process's own logs (which then stay out of the
    /// captures). Once per process.
    pub fn capture_stderr() -> std::io::Result<std::fs::File> {
        static ONCE: OnceLock<std::io::Result<i32>> = OnceLock::new();
        let saved = ONCE.get_or_init(|| {
            let err = std::io::Error::last_os_error;
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: plain fd calls on fds we own; fd 2 is replaced
            // atomically by dup2, so writers never see it closed.
            unsafe {
                let saved = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
                if saved < 0 {
                    return Err(err());
                }
                if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                    return Err(err());
                }
                if libc::dup2(fds[1], 2) < 0 {
                    return Err(err());
                }
                libc::close(fds[1]);
                let read = std::fs::File::from_raw_fd(fds[0]);
                let out = std::fs::File::from_raw_fd(libc::fcntl(saved, libc::F_DUPFD_CLOEXEC, 3));
                std::thread::Builder::new()
                    .name("stderr-tee".into())
                    .spawn(move || tee(read, out))?;
                TEED.store(true, Ordering::Release);
                // What is written last (main's error, a panic message) is
                // still in the pipe when the process exits: wait for the
                // tee to pass it on.
                libc::atexit(flush_at_exit);
                Ok(saved)
            }
        });
        match saved {
            // SAFETY: a fresh duplicate of the saved fd, owned by the File.
            Ok(fd) => match unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) } {
                n if n >= 0 => Ok(unsafe { std::fs::File::from_raw_fd(n) }),
                _ => Err(std::io::Error::last_os_error()),
            },
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }

    fn seen() -> &'static (Mutex<HashSet<u64>>, Condvar) {
        SEEN.get_or_init(Default::default)
    }

    /// Reads the pipe on fd 2 for the life of the process.
    fn tee(read: std::fs::File, mut out: std::fs::File) {
        let mut lines = std::io::BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            if let Some(n) = text.strip_prefix(MARK) {
                if let Ok(n) = n.trim().parse() {
                    let (set, cv) = seen();
                    lock(set).insert(n);
                    cv.notify_all();
                }
                continue;
            }
            let mut text = text.into_owned();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let open = lock(&OPEN);
            for sink in open.iter() {
                push(sink, &text);
            }
            if open.is_empty() {
                drop(open);
                // A failed write to the original stderr must not stop the
                // tee: a full pipe would block every writer of fd 2.
                let _ = out.write_all(&line);
            }
        }
    }

    extern "C" fn flush_at_exit() {
        sync_stderr();
    }

    /// Whether [`capture_stderr`] put the pipe on fd 2.
    pub fn stderr_captured() -> bool {
        TEED.load(Ordering::Acquire)
    }

    /// Waits (a second at most) until the tee has read everything written
    /// to stderr before now, so a capture ending now has its lines.
    fn sync_stderr() {
        if !TEED.load(Ordering::Acquire) {
            return;
        }
        let n = MARKS.fetch_add(1, Ordering::Relaxed);
        let mark = format!("{MARK}{n}\n");
        // SAFETY: one write of a short buffer to fd 2; a pipe write under
        // PIPE_BUF bytes is atomic, so it never splits another line.
        let wrote = unsafe { libc::write(2, mark.as_ptr().cast(), mark.len()) };
        if wrote != mark.len() as isize {
            return;
        }
        let (set, cv) = seen();
        let mut s = lock(set);
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !s.remove(&n) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            s = cv
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod log {
    pub fn install() {}
    pub fn begin() {}
    pub fn end() -> String {
        String::new()
    }
    pub fn note(_line: &str) {}
    pub fn attribute(_ctx: *const std::ffi::c_void) {}
    pub fn stderr_captured() -> bool {
        false
    }
    pub fn capture_stderr() -> std::io::Result<std::fs::File> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "log capture is x86-64 only",
        ))
    }
}

pub use log::{
    attribute as attribute_log, begin as begin_log_capture, capture_stderr, end as end_log_capture,
    install as install_log_callback, note as log_note, stderr_captured,
};

/// Sends what other threads log through the codec context `ctx` to this
/// thread's capture, until it ends.
pub fn attribute_codec_log(ctx: &ffmpeg::codec::context::Context) {
    // SAFETY: only the address is kept, to match log calls against it.
    attribute_log(unsafe { ctx.as_ptr() }.cast());
}

/// A reference to an FFmpeg hardware device context (CUDA).
pub struct HwDevice(*mut ffi::AVBufferRef);

// SAFETY: an AVBufferRef to a device context may be used and released from
// any thread; FFmpeg reference-counts it atomically.
unsafe impl Send for HwDevice {}

impl Drop for HwDevice {
    fn drop(&mut self) {
        // SAFETY: we own this reference; unref sets it to null.
        unsafe { ffi::av_buffer_unref(&mut self.0) };
    }
}

/// Opens CUDA device `gpu` (CUDA ordinal) for decoding and filtering.
pub fn cuda_device(gpu: u32) -> Result<HwDevice, String> {
    let name = std::ffi::CString::new(gpu.to_string()).expect("no NUL in a number");
    let mut dev: *mut ffi::AVBufferRef = std::ptr::null_mut();
    // SAFETY: valid out-pointer and NUL-terminated device name.
    let r = unsafe {
        ffi::av_hwdevice_ctx_create(
            &mut dev,
            ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
            name.as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    if r < 0 || dev.is_null() {
        return Err(format!(
            "cannot open CUDA device {gpu}: {}",
            ffmpeg::Error::from(r)
        ));
    }
    Ok(HwDevice(dev))
}

/// Picks CUDA frames when the decoder offers them (NVDEC), else the first
/// software format (never another hwaccel's, which has no device here).
unsafe extern "C" fn pick_cuda(
    _ctx: *mut ffi::AVCodecContext,
    fmts: *const ffi::AVPixelFormat,
) -> ffi::AVPixelFormat {
    let mut p = fmts;
    let mut software = ffi::AVPixelFormat::AV_PIX_FMT_NONE;
    // SAFETY: FFmpeg passes a list terminated by AV_PIX_FMT_NONE; format
    // descriptors are static.
    unsafe {
        while *p != ffi::AVPixelFormat::AV_PIX_FMT_NONE {
            if *p == ffi::AVPixelFormat::AV_PIX_FMT_CUDA {
                return *p;
            }
            let desc = ffi::av_pix_fmt_desc_get(*p);
            let hw = !desc.is_null() && (*desc).flags & ffi::AV_PIX_FMT_FLAG_HWACCEL as u64 != 0;
            if !hw && software == ffi::AVPixelFormat::AV_PIX_FMT_NONE {
                software = *p;
            }
            p = p.add(1);
        }
    }
    software
}

/// Makes a decoder context (not yet opened) decode on `dev` with NVDEC,
/// producing frames in CUDA memory.
pub fn decode_on(ctx: &mut ffmpeg::codec::Context, dev: &HwDevice) {
    // SAFETY: the context is not open yet; it takes its own reference to
    // the device, released when the context is freed.
    unsafe {
        let c = ctx.as_mut_ptr();
        (*c).hw_device_ctx = ffi::av_buffer_ref(dev.0);
        (*c).get_format = Some(pick_cuda);
    }
}

/// Whether a decoded frame lives in GPU memory.
pub fn is_cuda_frame(frame: &ffmpeg::frame::Video) -> bool {
    // SAFETY: reading a field of a frame we hold.
    unsafe { !(*frame.as_ptr()).hw_frames_ctx.is_null() }
}

/// Runs a filter graph's filters on the calling thread only (set before
/// the graph is configured).
pub fn filter_on_one_thread(graph: &mut ffmpeg::filter::Graph) {
    // SAFETY: a field of a graph we own, set before it is configured.
    unsafe {
        (*graph.as_mut_ptr()).nb_threads = 1;
    }
}

/// A copy in system memory of a frame in GPU memory (NV12 or P010), with
/// its properties (the quality meter compares on the CPU).
pub fn download_frame(frame: &ffmpeg::frame::Video) -> Result<ffmpeg::frame::Video, ffmpeg::Error> {
    let mut out = ffmpeg::frame::Video::empty();
    // SAFETY: both frames are ours; the transfer allocates the destination's
    // buffers in the frames context's software format.
    unsafe {
        let r = ffi::av_hwframe_transfer_data(out.as_mut_ptr(), frame.as_ptr(), 0);
        if r < 0 {
            return Err(ffmpeg::Error::from(r));
        }
        let r = ffi::av_frame_copy_props(out.as_mut_ptr(), frame.as_ptr());
        if r < 0 {
            return Err(ffmpeg::Error::from(r));
        }
    }
    Ok(out)
}

/// Tells a `buffer` source which hardware frames it will get (those of
/// `frame`); needed before the graph is configured.
pub fn source_takes_hw_frames(
    src: &mut ffmpeg::filter::Context,
    frame: &ffmpeg::frame::Video,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: the parameters are allocated, filled and freed here; the
    // source takes its own reference to the frames context.
    unsafe {
        let p = ffi::av_buffersrc_parameters_alloc();
        if p.is_null() {
            return Err(ffmpeg::Error::Other { errno: 12 });
        }
        (*p).format = (*frame.as_ptr()).format;
        (*p).hw_frames_ctx = (*frame.as_ptr()).hw_frames_ctx;
        let r = ffi::av_buffersrc_parameters_set(src.as_mut_ptr(), p);
        ffi::av_free(p.cast());
        if r < 0 {
            return Err(ffmpeg::Error::from(r));
        }
    }
    Ok(())
}

/// Gives an encoder context (not yet opened) the hardware frames a
/// configured sink produces, so it encodes GPU frames without copies.
pub fn encode_hw_frames_of(
    enc: &mut ffmpeg::codec::Context,
    sink: &mut ffmpeg::filter::Context,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: the sink belongs to a configured graph; the encoder takes its
    // own reference, released when it is freed.
    unsafe {
        let frames = ffi::av_buffersink_get_hw_frames_ctx(sink.as_mut_ptr());
        if frames.is_null() {
            return Err(ffmpeg::Error::InvalidData);
        }
        (*enc.as_mut_ptr()).hw_frames_ctx = ffi::av_buffer_ref(frames);
    }
    Ok(())
}

/// The I/O error latched on `input`'s byte stream, if a read failed (a
/// network timeout, a reset connection, an interrupted read). FFmpeg ends
/// packet iteration on it as if the input had ended, so callers check.
pub fn io_error(input: &ffmpeg::format::context::Input) -> Option<ffmpeg::Error> {
    // SAFETY: the context pointer is owned by `input` and valid while it
    // lives; `pb` is null for formats without a byte stream, checked first.
    let err = unsafe {
        let pb = (*input.as_ptr()).pb;
        if pb.is_null() {
            return None;
        }
        (*pb).error
    };
    (err < 0).then(|| ffmpeg::Error::from(err))
}
