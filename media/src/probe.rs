//! Probe: what the planner needs to know about an input.
//!
//! Keyframes and the frame count come from a scan of the video packets (no
//! decoding), so they are exact whatever the container's index says. Frames
//! are counted in presentation order, starting at the first keyframe in
//! decode order: anything before it cannot be decoded and is not part of the
//! job's timeline.

use spotenc_proto::domain::{AudioStreamInfo, Keyframe, ProbeInfo, Rational, VideoStreamInfo};

use crate::ffmpeg::{self, media};
use crate::{input, Error, Result};

/// Probes the input at `uri` (a local path or `file://` URL).
pub fn probe(uri: &str) -> Result<ProbeInfo> {
    let path = input::local_path(uri)?;
    let mut ictx = input::open(path)?;
    let bad = |reason: &str| Error::BadInput {
        path: uri.to_string(),
        reason: reason.to_string(),
    };

    let vstream = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| bad("no video stream"))?;
    let vindex = vstream.index();
    let tb = vstream.time_base();
    let params = vstream.parameters();
    let vcodec = params.id();
    let dec = ffmpeg::codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| bad(&format!("video stream cannot be decoded: {e}")))?;
    if dec.width() == 0 || dec.height() == 0 {
        return Err(bad("video stream has no frame size"));
    }
    let mut avg = vstream.avg_frame_rate();
    if avg.numerator() <= 0 || avg.denominator() <= 0 {
        avg = vstream.rate();
    }
    let (width, height) = (dec.width(), dec.height());
    let pix_fmt = format!("{:?}", dec.format()).to_lowercase();
    let audio = ictx.streams().best(media::Type::Audio).map(|a| {
        let p = a.parameters();
        let (rate, channels) = ffmpeg::codec::context::Context::from_parameters(a.parameters())
            .and_then(|c| c.decoder().audio())
            .map(|d| (d.rate(), u32::from(d.channels())))
            .unwrap_or((0, 0));
        AudioStreamInfo {
            stream_index: a.index() as u32,
            codec: format!("{:?}", p.id()).to_lowercase(),
            sample_rate: rate,
            channels,
        }
    });
    let format_name = ictx.format().name().to_string();
    let duration_seconds = if ictx.duration() > 0 {
        ictx.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
    } else {
        0.0
    };

    let frames = scan_video_packets(&mut ictx, vindex).map_err(|e| match e {
        Error::Ffmpeg { source, .. } => bad(&format!("read failed: {source}")),
        other => other,
    })?;
    if frames.is_empty() {
        return Err(bad("video stream has no decodable frames"));
    }
    let default_dur = frame_duration(avg, tb);
    let keyframes: Vec<Keyframe> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.key)
        .map(|(i, f)| Keyframe {
            frame: i as u64,
            pts: f.pts,
        })
        .collect();
    let last = frames.last().expect("non-empty");
    let end_pts = last.pts
        + if last.duration > 0 {
            last.duration
        } else {
            default_dur
        };
    let start_pts = frames[0].pts;
    let duration_seconds = if duration_seconds > 0.0 {
        duration_seconds
    } else {
        (end_pts - start_pts) as f64 * tb.numerator() as f64 / tb.denominator() as f64
    };
    Ok(ProbeInfo {
        format_name,
        duration_seconds,
        index_source: "packet-scan".into(),
        video: VideoStreamInfo {
            stream_index: vindex as u32,
            codec: format!("{vcodec:?}").to_lowercase(),
            width,
            height,
            pix_fmt,
            time_base: Rational::new(tb.numerator(), tb.denominator()),
            avg_frame_rate: Rational::new(avg.numerator(), avg.denominator()),
            start_pts,
            end_pts,
            frame_count: frames.len() as u64,
            keyframes,
        },
        audio,
    })
}

#[derive(Debug, Clone, Copy)]
struct FrameEntry {
    pts: i64,
    duration: i64,
    key: bool,
}

/// Reads every packet of the video stream and returns its frames in
/// presentation order, from the first keyframe in decode order on.
fn scan_video_packets(
    ictx: &mut ffmpeg::format::context::Input,
    vindex: usize,
) -> Result<Vec<FrameEntry>> {
    let mut frames: Vec<FrameEntry> = Vec::new();
    let mut seen_key = false;
    let mut last_ts: Option<i64> = None;
    for (stream, packet) in ictx.packets() {
        if stream.index() != vindex {
            continue;
        }
        if packet.is_corrupt() {
            continue;
        }
        let key = packet.is_key();
        if !seen_key && !key {
            continue;
        }
        seen_key = true;
        // Raw streams can lack a pts; fall back to dts, then to the previous
        // timestamp plus one duration.
        let pts = match packet.pts().or(packet.dts()) {
            Some(ts) => ts,
            None => match last_ts {
                Some(t) => t + packet.duration().max(1),
                None => 0,
            },
        };
        last_ts = Some(pts);
        frames.push(FrameEntry {
            pts,
            duration: packet.duration(),
            key,
        });
    }
    // Leading frames of the first keyframe (open GOP) reference pictures
    // before the cut and cannot be decoded.
    let first_key_pts = frames.first().map(|f| f.pts).unwrap_or(0);
    frames.retain(|f| f.pts >= first_key_pts);
    frames.sort_by_key(|f| f.pts);
    frames.dedup_by_key(|f| f.pts);
    Ok(frames)
}

/// One frame's duration in `tb`, from the average frame rate.
pub(crate) fn frame_duration(rate: ffmpeg::Rational, tb: ffmpeg::Rational) -> i64 {
    if rate.numerator() <= 0 || rate.denominator() <= 0 || tb.numerator() <= 0 {
        return 1;
    }
    let d = (i128::from(tb.denominator()) * i128::from(rate.denominator()))
        / (i128::from(tb.numerator()) * i128::from(rate.numerator()));
    (d as i64).max(1)
}
