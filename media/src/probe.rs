//! Probe: what the planner needs to know about an input.
//!
//! Keyframes and the frame count come from the container index when it lists
//! every frame (MP4 `stts`/`stss`, read by the demuxer at open), else from a
//! scan of the video packets (MPEG-TS, Matroska, whose cues are sparse).
//! Neither decodes. Frames are counted in presentation order, starting at the
//! first keyframe in decode order: anything before it cannot be decoded and
//! is not part of the job's timeline.

use spotenc_proto::domain::{
    AudioStreamInfo, ColorInfo, Keyframe, ProbeInfo, Rational, StreamInfo, StreamKind,
    VideoStreamInfo,
};

use crate::ffmpeg::{self, media};
use crate::{ffi, input, Control, Error, Result};

/// Probes the input at `uri` (a local path or `file://` URL), from the
/// container index when it lists every frame, else from a packet scan.
pub fn probe(uri: &str) -> Result<ProbeInfo> {
    probe_in(uri, true, &Control::default())
}

/// [`probe`] under a worker's control: progress counted, cancellable while
/// a network read blocks.
pub fn probe_controlled(uri: &str, ctl: &Control) -> Result<ProbeInfo> {
    probe_in(uri, true, ctl)
}

/// [`probe`], with the container index allowed or not.
pub fn probe_with(uri: &str, use_index: bool) -> Result<ProbeInfo> {
    probe_in(uri, use_index, &Control::default())
}

/// Long (about 110 lines): opens the input and reads each stream's
/// facts in one pass over FFmpeg's format context.
fn probe_in(uri: &str, use_index: bool, ctl: &Control) -> Result<ProbeInfo> {
    let mut ictx = input::open_uri(uri, ctl)?;
    let bad = |reason: &str| Error::BadInput {
        path: uri.to_string(),
        reason: reason.to_string(),
    };

    let vstream = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| bad("no video stream"))?;
    let vindex = vstream.index();
    let vstream_frames = u64::try_from(vstream.frames()).unwrap_or(0);
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
    let video_start = stream_start_seconds(&vstream);
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
            start_offset_seconds: stream_start_seconds(&a) - video_start,
        }
    });
    let streams = list_streams(&ictx, video_start);
    let chapters = ictx.nb_chapters();
    let color = color_info(
        &ictx.stream(vindex).expect("the video stream"),
        dec.format(),
    );
    let format_name = ictx.format().name().to_string();
    let duration_seconds = if ictx.duration() > 0 {
        ictx.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
    } else {
        0.0
    };

    let default_dur = frame_duration(avg, tb);
    let from_index = if use_index {
        index_timeline(&mut ictx, vindex, vstream_frames, default_dur, ctl)
    } else {
        None
    };
    let (timeline, index_source) = match from_index {
        Some(t) => (t, "container-index"),
        None => {
            if use_index {
                // The index attempt may have moved the read position.
                ictx = input::open_uri(uri, ctl)?;
            }
            let frames = scan_video_packets(&mut ictx, vindex, ctl, uri)?;
            (Timeline::from_frames(&frames, default_dur), "packet-scan")
        }
    };
    let Timeline {
        keyframes,
        frame_count,
        start_pts,
        end_pts,
    } = timeline;
    if frame_count == 0 {
        return Err(bad("video stream has no decodable frames"));
    }
    let duration_seconds = if duration_seconds > 0.0 {
        duration_seconds
    } else {
        (end_pts - start_pts) as f64 * tb.numerator() as f64 / tb.denominator() as f64
    };
    Ok(ProbeInfo {
        format_name,
        duration_seconds,
        index_source: index_source.into(),
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
            frame_count,
            keyframes: keyframes.into(),
        },
        audio,
        streams,
        chapters,
        color,
    })
}

/// Every stream of the input, in container order, with its tags.
fn list_streams(ictx: &ffmpeg::format::context::Input, video_start: f64) -> Vec<StreamInfo> {
    ictx.streams()
        .map(|s| {
            let params = s.parameters();
            let kind = match params.medium() {
                media::Type::Video => Some(StreamKind::Video),
                media::Type::Audio => Some(StreamKind::Audio),
                media::Type::Subtitle => Some(StreamKind::Subtitle),
                media::Type::Attachment => Some(StreamKind::Attachment),
                media::Type::Data => Some(StreamKind::Data),
                media::Type::Unknown => None,
            };
            let tags = s.metadata();
            let tag = |k: &str| tags.get(k).unwrap_or_default().to_string();
            let (channels, channel_layout) = if kind == Some(StreamKind::Audio) {
                ffi::streams::channel_layout(&params)
            } else {
                (0, String::new())
            };
            let sample_rate = if kind == Some(StreamKind::Audio) {
                ffmpeg::codec::context::Context::from_parameters(s.parameters())
                    .and_then(|c| c.decoder().audio())
                    .map(|d| d.rate())
                    .unwrap_or(0)
            } else {
                0
            };
            let codec = params.id();
            StreamInfo {
                index: s.index() as u32,
                kind,
                codec: codec.name().to_string(),
                language: tag("language"),
                title: tag("title"),
                disposition: ffi::streams::disposition_names(ffi::streams::disposition(&s)),
                channels,
                channel_layout,
                sample_rate,
                bitmap: kind == Some(StreamKind::Subtitle) && is_bitmap_subtitle(codec),
                start_offset_seconds: stream_start_seconds(&s) - video_start,
            }
        })
        .collect()
}

/// Picture subtitles: PGS, DVB, VobSub, XSUB.
pub fn is_bitmap_subtitle(codec: ffmpeg::codec::Id) -> bool {
    use ffmpeg::codec::Id;
    matches!(
        codec,
        Id::HDMV_PGS_SUBTITLE | Id::DVB_SUBTITLE | Id::DVD_SUBTITLE | Id::XSUB
    )
}

/// The video stream's colour description, bit depth (of the decoder's
/// pixel format) and display rotation.
fn color_info(video: &ffmpeg::format::stream::Stream, format: ffmpeg::format::Pixel) -> ColorInfo {
    let [primaries, transfer, matrix, range] = ffi::streams::color_names(&video.parameters());
    ColorInfo {
        primaries,
        transfer,
        matrix,
        range,
        bit_depth: ffi::streams::pixel_depth(format),
        rotation: ffi::streams::rotation(video).map_or(0, |r| r.round() as i32),
    }
}

#[derive(Debug, Clone, Copy)]
struct FrameEntry {
    pts: i64,
    duration: i64,
    key: bool,
}

/// Reads every packet of the video stream and returns its frames in
/// presentation order, from the first keyframe in decode order on.
/// A read that fails part-way (a stalled or reset network source) is an
/// error, not the end of the stream.
fn scan_video_packets(
    ictx: &mut ffmpeg::format::context::Input,
    vindex: usize,
    ctl: &Control,
    uri: &str,
) -> Result<Vec<FrameEntry>> {
    let mut frames: Vec<FrameEntry> = Vec::new();
    let mut seen_key = false;
    let mut last_ts: Option<i64> = None;
    for (stream, packet) in ictx.packets() {
        ctl.check()?;
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
    input::read_ok(ictx, ctl, uri)?;
    // Leading frames of the first keyframe (open GOP) reference pictures
    // before the cut and cannot be decoded.
    let first_key_pts = frames.first().map(|f| f.pts).unwrap_or(0);
    frames.retain(|f| f.pts >= first_key_pts);
    frames.sort_by_key(|f| f.pts);
    frames.dedup_by_key(|f| f.pts);
    Ok(frames)
}

/// When a stream starts, in seconds (0 when the container does not say).
fn stream_start_seconds(s: &ffmpeg::format::stream::Stream) -> f64 {
    let (t, tb) = (s.start_time(), f64::from(s.time_base()));
    if t == ffmpeg::ffi::AV_NOPTS_VALUE || !tb.is_finite() {
        return 0.0;
    }
    t as f64 * tb
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

/// Where the frames of a stream lie, as the planner needs them.
struct Timeline {
    keyframes: Vec<Keyframe>,
    frame_count: u64,
    start_pts: i64,
    end_pts: i64,
}

impl Timeline {
    fn from_frames(frames: &[FrameEntry], default_dur: i64) -> Timeline {
        let keyframes = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.key)
            .map(|(i, f)| Keyframe {
                frame: i as u64,
                pts: f.pts,
            })
            .collect();
        let (start_pts, end_pts) = match (frames.first(), frames.last()) {
            (Some(first), Some(last)) => (
                first.pts,
                last.pts
                    + if last.duration > 0 {
                        last.duration
                    } else {
                        default_dur
                    },
            ),
            _ => (0, 0),
        };
        Timeline {
            keyframes,
            frame_count: frames.len() as u64,
            start_pts,
            end_pts,
        }
    }
}

/// The timeline from the demuxer's index, or `None` when the index does not
/// list every frame exactly once.
///
/// The index gives each frame's decode position and the keyframes, by DTS.
/// A keyframe's presentation position is its decode position plus its
/// leading pictures (decoded after it, shown before it; open GOP). So for
/// each keyframe we seek to it and read only until the first packet shown
/// after it. The last GOP is read to the end for the stream's end time.
fn index_timeline(
    ictx: &mut ffmpeg::format::context::Input,
    vindex: usize,
    nb_frames: u64,
    default_dur: i64,
    ctl: &Control,
) -> Option<Timeline> {
    let format = ictx.format().name().to_string();
    if !format.split(',').any(|n| n == "mov" || n == "mp4") {
        return None;
    }
    let entries = crate::ffi::index_entries(ictx, vindex);
    let complete = !entries.is_empty()
        && entries.len() as u64 == nb_frames
        && entries[0].keyframe
        && entries.iter().all(|e| !e.discard)
        && entries.windows(2).all(|w| w[0].dts < w[1].dts);
    if !complete {
        tracing::debug!(
            entries = entries.len(),
            nb_frames,
            "container index incomplete, scanning packets"
        );
        return None;
    }
    let key_positions: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].keyframe)
        .collect();
    let mut keyframes = Vec::with_capacity(key_positions.len());
    let mut leading_first = 0u64;
    let mut end_pts = i64::MIN;
    for (n, &pos) in key_positions.iter().enumerate() {
        let last_gop = n + 1 == key_positions.len();
        // MP4 seeks by presentation time; the keyframe is the first one
        // shown at or after its own decode time.
        crate::ffi::seek_stream_forward(ictx, vindex, entries[pos].dts).ok()?;
        let mut key_pts: Option<i64> = None;
        let mut leading = 0u64;
        for (s, p) in ictx.packets() {
            ctl.check().ok()?;
            if s.index() != vindex {
                continue;
            }
            let pts = p.pts()?;
            match key_pts {
                None => {
                    // The seek must land exactly on this keyframe.
                    if p.dts() != Some(entries[pos].dts) || !p.is_key() {
                        tracing::debug!(landed = ?p.dts(), wanted = entries[pos].dts, "index seek missed, scanning packets");
                        return None;
                    }
                    key_pts = Some(pts);
                }
                Some(k) if pts < k => leading += 1,
                Some(_) if !last_gop => break,
                Some(_) => {}
            }
            if last_gop {
                let dur = if p.duration() > 0 {
                    p.duration()
                } else {
                    default_dur
                };
                end_pts = end_pts.max(pts + dur);
            }
        }
        let k = key_pts?;
        if n == 0 {
            // Leading pictures of the very first keyframe cannot be decoded.
            leading_first = leading;
        }
        keyframes.push(Keyframe {
            frame: pos as u64 + leading - leading_first,
            pts: k,
        });
    }
    let start_pts = keyframes.first()?.pts;
    Some(Timeline {
        frame_count: entries.len() as u64 - leading_first,
        keyframes,
        start_pts,
        end_pts,
    })
}
