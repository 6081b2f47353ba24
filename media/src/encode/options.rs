//! Encoder options for a chunk's settings: libx264/libx265 (with the
//! operator's parameters), NVENC and QSV.

use spotenc_proto::domain::{Codec, RateControl, VideoSettings};

use crate::ffi;
use crate::ffmpeg;

/// Bitrate, VBV maximum rate and buffer, the same options for every
/// encoder.
fn set_bitrate(o: &mut ffmpeg::Dictionary<'static>, rate: RateControl) {
    if let RateControl::Bitrate {
        bitrate_bps,
        maxrate_bps,
        bufsize_bits,
    } = rate
    {
        o.set("b", &bitrate_bps.to_string());
        o.set("maxrate", &maxrate_bps.to_string());
        o.set("bufsize", &bufsize_bits.to_string());
    }
}

/// libx264/libx265 options: the job's settings, the source's HDR10 x265
/// parameters `hdr` (mastering display, light level, kept on HEVC
/// outputs), then the operator's parameters of the chunk's encoder
/// identity (`params`, `key=value:...`).
pub(super) fn encoder_options(
    video: &VideoSettings,
    gop: u32,
    hdr: &[String],
    params: &str,
) -> ffmpeg::Dictionary<'static> {
    let mut o = ffmpeg::Dictionary::new();
    o.set("preset", &video.preset);
    o.set("threads", "auto");
    match video.rate {
        RateControl::Crf(crf) => o.set("crf", &crf.to_string()),
        RateControl::Bitrate { .. } => set_bitrate(&mut o, video.rate),
    }
    if let Some(p) = &video.profile {
        o.set("profile", p);
    }
    match video.codec {
        Codec::H264 => {
            o.set("forced-idr", "1");
            if !params.is_empty() {
                o.set("x264-params", params);
            }
        }
        // x265 opens GOPs by default and ignores the CLOSED_GOP flag. Its
        // info lines (settings at open, a summary at close) are printed to
        // stderr: in a worker that tees stderr into the attempt's audit log
        // they go there, as libx264's reach it through FFmpeg's log;
        // elsewhere (`spotenc transcode`, where stderr is the user's
        // terminal) only errors are printed.
        Codec::Hevc => o.set(
            "x265-params",
            &std::iter::once(format!(
                "open-gop=0:keyint={gop}:log-level={}",
                if ffi::stderr_captured() {
                    "info"
                } else {
                    "error"
                }
            ))
            .chain(hdr.iter().cloned())
            .chain((!params.is_empty()).then(|| params.to_string()))
            .collect::<Vec<_>>()
            .join(":"),
        ),
    }
    o
}

/// The NVENC preset (p1 fastest .. p7 best) nearest an x264 preset name.
fn nvenc_preset(x264: &str) -> &'static str {
    match x264 {
        "ultrafast" | "superfast" => "p1",
        "veryfast" => "p2",
        "faster" => "p3",
        "fast" => "p4",
        "medium" => "p5",
        "slow" => "p6",
        _ => "p7",
    }
}

/// h264_nvenc/hevc_nvenc options for the settings: CRF maps to VBR with a
/// constant-quality target, an IDR at every forced keyframe.
pub(super) fn nvenc_options(video: &VideoSettings, gpu: u32) -> ffmpeg::Dictionary<'static> {
    let mut o = ffmpeg::Dictionary::new();
    o.set("gpu", &gpu.to_string());
    o.set("preset", nvenc_preset(&video.preset));
    o.set("forced-idr", "1");
    o.set("rc", "vbr");
    match video.rate {
        RateControl::Crf(crf) => {
            o.set("cq", &crf.to_string());
            o.set("b", "0");
        }
        RateControl::Bitrate { .. } => set_bitrate(&mut o, video.rate),
    }
    if let Some(p) = &video.profile {
        o.set("profile", p);
    }
    o
}

/// h264_qsv/hevc_qsv options: CRF maps to ICQ (global_quality); the x264
/// preset names are QSV's own.
pub(super) fn qsv_options(video: &VideoSettings) -> ffmpeg::Dictionary<'static> {
    let mut o = ffmpeg::Dictionary::new();
    let preset = match video.preset.as_str() {
        "ultrafast" | "superfast" => "veryfast",
        "placebo" => "veryslow",
        p => p,
    };
    o.set("preset", preset);
    match video.rate {
        RateControl::Crf(crf) => o.set("global_quality", &crf.to_string()),
        RateControl::Bitrate { .. } => set_bitrate(&mut o, video.rate),
    }
    if let Some(p) = &video.profile {
        o.set("profile", p);
    }
    o
}
