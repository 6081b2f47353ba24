//! Chunk planning: a pure function from a probe to chunk boundaries.
//!
//! Boundaries fall on source keyframes, each as close as possible to
//! `chunk_seconds` after the previous one, and no chunk is shorter than
//! `min_chunk_seconds` (a too-short tail joins the chunk before it). Every
//! chunk records its exact frame range, so each can be checked on its own.
//! Absurd media (frames over [`MAX_SOURCE_SIDE`], audio hours away from the
//! video, more than [`MAX_CHUNKS`] chunks) fails here, before any encode.

use spotenc_proto::domain::{
    ChunkRange, Codec, Container, JobSpec, ProbeInfo, StreamKind, TrackSelection, VideoStreamInfo,
};
use spotenc_proto::{Error, Result};

/// The most chunks one job may have: each is a task, a lease, an attempt
/// record and a stitch input, so a 10-hour source at 0.5 s chunks must not
/// become 72,000 of them.
pub const MAX_CHUNKS: usize = 20_000;

/// The largest source frame side accepted (8K is 7680): a declared frame
/// size beyond it fails the job at planning, before any chunk is encoded.
pub const MAX_SOURCE_SIDE: u32 = 8192;

/// The furthest apart (seconds) the audio and video may start: beyond it
/// the job fails at planning ("absurd media"), instead of encoding hours of
/// silence or a track nobody hears.
pub const MAX_AUDIO_OFFSET_SECONDS: f64 = 300.0;

/// Refuses an audio track that starts too far from the video.
pub fn check_audio(probe: &ProbeInfo) -> Result<()> {
    let Some(a) = &probe.audio else {
        return Ok(());
    };
    check_audio_offset(a.start_offset_seconds)
}

fn check_audio_offset(off: f64) -> Result<()> {
    if off.is_finite() && off.abs() <= MAX_AUDIO_OFFSET_SECONDS {
        return Ok(());
    }
    let (by, side) = if off < 0.0 {
        (-off, "before")
    } else {
        (off, "after")
    };
    Err(Error::invalid(format!(
        "the audio starts {by:.0} s {side} the video; at most {MAX_AUDIO_OFFSET_SECONDS:.0} s \
         apart is accepted"
    )))
}

/// Whether a subtitle codec can reach a container: Matroska takes the text
/// and picture formats it maps (mov_text is converted to SubRip), MP4 the
/// text formats FFmpeg can decode, converted to mov_text. Pictures into MP4
/// are refused separately, naming the way out.
pub fn subtitle_carriable(codec: &str, container: Container) -> bool {
    const TEXT: &[&str] = &[
        "subrip",
        "ass",
        "ssa",
        "webvtt",
        "mov_text",
        "text",
        "microdvd",
        "subviewer",
        "subviewer1",
        "sami",
        "realtext",
        "mpl2",
        "pjs",
        "vplayer",
        "jacosub",
        "stl",
    ];
    const MKV: &[&str] = &[
        "subrip",
        "ass",
        "ssa",
        "webvtt",
        "mov_text",
        "hdmv_pgs_subtitle",
        "dvb_subtitle",
        "dvd_subtitle",
    ];
    match container {
        Container::Mkv => MKV.contains(&codec),
        Container::Mp4 => TEXT.contains(&codec),
    }
}

/// The source streams a job keeps besides the video, resolved against its
/// probe and checked against every output's container.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptStreams {
    /// One entry per audio task: its source stream, or `None` for a probe
    /// made before streams were listed (the input's best audio stream).
    pub audio: Vec<Option<u32>>,
    pub subtitles: Vec<u32>,
    /// Attachments (fonts) go to Matroska outputs; MP4 cannot hold them.
    pub attachments: Vec<u32>,
    /// Whether the stitches carry tags, subtitles, attachments and
    /// chapters from the source (not for probes made before streams were
    /// listed, which cannot say what is there).
    pub carried: bool,
}

impl KeptStreams {
    /// Resolves the job's track selections. Refuses a selection that
    /// matches nothing and a picture subtitle bound for MP4, naming the
    /// track.
    pub fn resolve(spec: &JobSpec, probe: &ProbeInfo) -> Result<KeptStreams> {
        if probe.streams.is_empty() {
            return Ok(KeptStreams {
                audio: probe.audio.iter().map(|_| None).collect(),
                subtitles: vec![],
                attachments: vec![],
                carried: false,
            });
        }
        let streams = &probe.streams;
        let audio = spec.audio_tracks.resolve(StreamKind::Audio, streams)?;
        let mut subtitles = spec
            .subtitle_tracks
            .resolve(StreamKind::Subtitle, streams)?;
        let of = |i: u32| streams.iter().find(|s| s.index == i).expect("resolved");
        // A format no output can hold: left out (and said) when the job
        // keeps all tracks, refused when it names the track.
        let outputs = spec.outputs();
        let carriable = |s: &&spotenc_proto::domain::StreamInfo| {
            s.bitmap
                || outputs
                    .iter()
                    .all(|(_, _, c)| subtitle_carriable(&s.codec, *c))
        };
        if let Some(s) = subtitles.iter().map(|&i| of(i)).find(|s| !carriable(s)) {
            if spec.subtitle_tracks != TrackSelection::All {
                return Err(Error::invalid(format!(
                    "subtitle track {} cannot be carried into every output; \
                     leave it out of --subtitles",
                    s.describe()
                )));
            }
        }
        subtitles.retain(|&i| carriable(&of(i)));
        for &i in &audio {
            check_audio_offset(of(i).start_offset_seconds)?;
        }
        for (output, _, container) in spec.outputs() {
            if container != Container::Mp4 {
                continue;
            }
            if let Some(s) = subtitles.iter().map(|&i| of(i)).find(|s| s.bitmap) {
                return Err(Error::invalid(format!(
                    "subtitle track {} is pictures, which MP4 ({output}) cannot hold; \
                     use --container mkv, or --subtitles none or a list without it",
                    s.describe()
                )));
            }
        }
        Ok(KeptStreams {
            audio: audio.into_iter().map(Some).collect(),
            subtitles,
            attachments: streams
                .iter()
                .filter(|s| s.is(StreamKind::Attachment))
                .map(|s| s.index)
                .collect(),
            carried: true,
        })
    }
}

/// What the outputs leave out of the source, by the user's choice or
/// because a container cannot hold it, one line each: `spotenc status`
/// and the job record say it, so that nothing is dropped silently. Empty
/// for a probe made before streams were listed (it cannot say).
pub fn left_out(spec: &JobSpec, probe: &ProbeInfo) -> Vec<String> {
    let Ok(kept) = KeptStreams::resolve(spec, probe) else {
        return vec![];
    };
    if !kept.carried {
        return vec![];
    }
    let mp4: Vec<&str> = spec
        .outputs()
        .into_iter()
        .filter(|(_, _, c)| *c == Container::Mp4)
        .map(|(o, _, _)| o)
        .collect();
    let mut lines = Vec::new();
    for s in &probe.streams {
        let d = s.describe();
        let why = match s.kind {
            Some(StreamKind::Video) if s.index != probe.video.stream_index => {
                Some("only the first video stream is encoded".to_string())
            }
            Some(StreamKind::Audio) if !kept.audio.contains(&Some(s.index)) => {
                Some("not selected by --audio".into())
            }
            Some(StreamKind::Subtitle) if !kept.subtitles.contains(&s.index) => {
                let stuck: Vec<&str> = spec
                    .outputs()
                    .into_iter()
                    .filter(|(_, _, c)| !s.bitmap && !subtitle_carriable(&s.codec, *c))
                    .map(|(o, _, _)| o)
                    .collect();
                Some(if stuck.is_empty() {
                    "not selected by --subtitles".into()
                } else {
                    format!("{} cannot be carried into {}", s.codec, stuck.join(", "))
                })
            }
            Some(StreamKind::Attachment) if !mp4.is_empty() => {
                Some(format!("MP4 cannot hold attachments ({})", mp4.join(", ")))
            }
            Some(StreamKind::Data) | None => Some("data streams are not carried".into()),
            _ => None,
        };
        if let Some(why) = why {
            lines.push(format!("{d}: {why}"));
        }
    }
    if !mp4.is_empty() && probe.streams.iter().any(|s| !s.title.is_empty()) {
        lines.push(format!(
            "track titles: MP4 does not store them ({})",
            mp4.join(", ")
        ));
    }
    lines
}

/// Refuses an output that would turn an HDR source (PQ or HLG) into an
/// 8-bit or H.264 stream: its colours would be wrong on every display.
/// HEVC at 10 bits keeps HDR.
pub fn check_hdr(spec: &JobSpec, probe: &ProbeInfo) -> Result<()> {
    let c = &probe.color;
    if !c.is_hdr() {
        return Ok(());
    }
    for (output, video, _) in spec.outputs() {
        let depth = video.depth_for(c.bit_depth);
        if video.tonemap || (video.codec == Codec::Hevc && depth >= 10) {
            continue;
        }
        return Err(Error::invalid(format!(
            "the source is HDR ({} transfer, {} primaries, {}-bit) and {output} would be \
             {depth}-bit {}: HDR needs 10-bit HEVC (--codec hevc, without --bit-depth 8), \
             or --tonemap for BT.709 SDR",
            c.transfer,
            c.primaries,
            c.bit_depth,
            video.codec.name()
        )));
    }
    Ok(())
}

/// Refuses a Matroska output of a rotated source: this FFmpeg's Matroska
/// muxer cannot store a display matrix, and the video would play sideways.
pub fn check_rotation(spec: &JobSpec, probe: &ProbeInfo) -> Result<()> {
    let r = probe.color.rotation;
    if r == 0 {
        return Ok(());
    }
    let unrecorded = spec
        .outputs()
        .into_iter()
        .find(|(_, v, c)| *c == Container::Mkv && !(v.autorotate && r % 90 == 0));
    match unrecorded {
        Some((output, _, _)) => Err(Error::invalid(format!(
            "the source is rotated {r} degrees for display, which Matroska ({output}) cannot \
             record here; use --container mp4, which keeps it, or --autorotate"
        ))),
        None => Ok(()),
    }
}

/// Plans the chunks of a video stream.
pub fn plan_chunks(
    video: &VideoStreamInfo,
    chunk_seconds: f64,
    min_chunk_seconds: f64,
) -> Result<Vec<ChunkRange>> {
    let (w, h) = (video.width, video.height);
    if w == 0 || h == 0 || w > MAX_SOURCE_SIDE || h > MAX_SOURCE_SIDE {
        return Err(Error::invalid(format!(
            "input frames are {w}x{h}; accepted sizes are 1..={MAX_SOURCE_SIDE} on each side"
        )));
    }
    let kf = &video.keyframes;
    if video.frame_count == 0 {
        return Err(Error::invalid("input has no video frames"));
    }
    if kf.first().map(|k| k.frame) != Some(0) {
        return Err(Error::invalid("input does not start with a keyframe"));
    }
    if kf
        .windows(2)
        .any(|w| w[1].frame <= w[0].frame || w[1].pts <= w[0].pts)
    {
        return Err(Error::invalid("keyframes are not in presentation order"));
    }
    if kf.last().is_some_and(|k| k.frame >= video.frame_count) {
        return Err(Error::invalid("a keyframe lies past the last frame"));
    }
    let tb = video.time_base.as_f64();
    let secs = |pts: i64| (pts - video.start_pts) as f64 * tb;
    let end = secs(video.end_pts);

    let mut starts = vec![0usize];
    loop {
        let cur = *starts.last().expect("non-empty");
        let cur_t = secs(kf[cur].pts);
        let target = cur_t + chunk_seconds;
        if target >= end {
            break;
        }
        let ok = |j: usize| j > cur && secs(kf[j].pts) - cur_t >= min_chunk_seconds;
        // The first keyframe at or after the target, or the one before it if
        // that is closer.
        let after = kf.partition_point(|k| secs(k.pts) < target);
        let mut best: Option<usize> = None;
        for j in [after.checked_sub(1), Some(after)].into_iter().flatten() {
            if j < kf.len() && ok(j) {
                let better = best.is_none_or(|b| {
                    (secs(kf[j].pts) - target).abs() < (secs(kf[b].pts) - target).abs()
                });
                if better {
                    best = Some(j);
                }
            }
        }
        let Some(next) = best else { break };
        if end - secs(kf[next].pts) < min_chunk_seconds {
            break;
        }
        if starts.len() == MAX_CHUNKS {
            return Err(Error::invalid(format!(
                "{end:.0} s of video at {chunk_seconds} s per chunk would make more than \
                 {MAX_CHUNKS} chunks (the most a job may have); use longer chunks"
            )));
        }
        starts.push(next);
    }

    Ok(starts
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let next = starts.get(i + 1).map(|&n| kf[n]);
            ChunkRange {
                index: i as u32,
                start_frame: kf[s].frame,
                end_frame: next.map_or(video.frame_count, |n| n.frame),
                start_pts: kf[s].pts,
                end_pts: next.map(|n| n.pts),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use spotenc_proto::domain::{Keyframe, Rational};

    /// A 25 fps stream with keyframes at the given frame numbers.
    fn stream(frames: u64, keyframes: &[u64]) -> VideoStreamInfo {
        VideoStreamInfo {
            stream_index: 0,
            codec: "h264".into(),
            width: 64,
            height: 64,
            pix_fmt: "yuv420p".into(),
            time_base: Rational::new(1, 1000),
            avg_frame_rate: Rational::new(25, 1),
            start_pts: 5000,
            end_pts: 5000 + frames as i64 * 40,
            frame_count: frames,
            keyframes: keyframes
                .iter()
                .map(|&f| Keyframe {
                    frame: f,
                    pts: 5000 + f as i64 * 40,
                })
                .collect(),
        }
    }

    #[test]
    fn boundaries_are_the_keyframes_nearest_each_target() {
        // Keyframes every 2 s over 20 s, 5 s chunks: targets 5, ~10, ~15.
        let kfs: Vec<u64> = (0..10).map(|i| i * 50).collect();
        let plan = plan_chunks(&stream(500, &kfs), 5.0, 1.0).unwrap();
        let starts: Vec<u64> = plan.iter().map(|c| c.start_frame).collect();
        assert_eq!(starts, vec![0, 100, 200, 300, 400]);
        assert_eq!(plan.last().unwrap().end_frame, 500);
        assert_eq!(plan.last().unwrap().end_pts, None);
        assert_eq!(plan[0].end_pts, Some(5000 + 100 * 40));
    }

    #[test]
    fn short_tail_joins_the_chunk_before() {
        // 11 s with a keyframe every second, 5 s chunks, 2 s minimum: the
        // 1 s tail after 10 s is folded into the second chunk.
        let kfs: Vec<u64> = (0..11).map(|i| i * 25).collect();
        let plan = plan_chunks(&stream(275, &kfs), 5.0, 2.0).unwrap();
        let ranges: Vec<(u64, u64)> = plan.iter().map(|c| (c.start_frame, c.end_frame)).collect();
        assert_eq!(ranges, vec![(0, 125), (125, 275)]);
    }

    #[test]
    fn single_keyframe_gives_one_chunk() {
        let plan = plan_chunks(&stream(100, &[0]), 1.0, 0.5).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].frames(), 100);
    }

    #[test]
    fn audio_hours_away_from_the_video_is_refused() {
        let probe = |off: f64| ProbeInfo {
            format_name: "mov".into(),
            duration_seconds: 10.0,
            index_source: "packet-scan".into(),
            video: stream(100, &[0]),
            audio: Some(spotenc_proto::domain::AudioStreamInfo {
                stream_index: 1,
                codec: "aac".into(),
                sample_rate: 48000,
                channels: 2,
                start_offset_seconds: off,
            }),
            streams: vec![],
            chapters: 0,
            color: Default::default(),
        };
        let e = check_audio(&probe(36_000.0)).unwrap_err().to_string();
        assert!(
            e.contains("36000 s after the video") && e.contains("300 s"),
            "{e}"
        );
        let e = check_audio(&probe(-7_200.0)).unwrap_err().to_string();
        assert!(e.contains("7200 s before"), "{e}");
        assert!(check_audio(&probe(f64::NAN)).is_err());
        assert!(check_audio(&probe(1.5)).is_ok());
        let mut none = probe(0.0);
        none.audio = None;
        assert!(check_audio(&none).is_ok());
    }

    #[test]
    fn absurd_frame_sizes_are_refused_naming_the_cap() {
        for (w, h) in [(16384, 64), (64, 8193), (0, 64)] {
            let mut v = stream(100, &[0]);
            (v.width, v.height) = (w, h);
            let e = plan_chunks(&v, 1.0, 0.5).unwrap_err().to_string();
            assert!(e.contains(&format!("{w}x{h}")) && e.contains("8192"), "{e}");
        }
        let mut v = stream(100, &[0]);
        (v.width, v.height) = (7680, 4320);
        assert!(plan_chunks(&v, 1.0, 0.5).is_ok());
    }

    #[test]
    fn more_chunks_than_the_cap_are_refused_naming_it() {
        // 3 hours at 25 fps with a keyframe every 0.52 s, 0.5 s chunks:
        // about 20,770 chunks.
        let frames = 3 * 3600 * 25;
        let kfs: Vec<u64> = (0..frames).step_by(13).collect();
        let e = plan_chunks(&stream(frames, &kfs), 0.5, 0.0).unwrap_err();
        assert!(
            e.to_string().contains("more than 20000 chunks") && e.to_string().contains("10800 s"),
            "{e}"
        );
        // At the cap exactly it plans.
        let frames = 20_000 * 13;
        let kfs: Vec<u64> = (0..frames).step_by(13).collect();
        let plan = plan_chunks(&stream(frames, &kfs), 0.5, 0.0).unwrap();
        assert_eq!(plan.len(), MAX_CHUNKS);
    }

    #[test]
    fn missing_first_keyframe_is_refused() {
        let e = plan_chunks(&stream(100, &[10]), 1.0, 0.5).unwrap_err();
        assert!(e.to_string().contains("keyframe"), "{e}");
    }

    proptest! {
        #[test]
        fn chunks_tile_the_stream_at_keyframes(
            frames in 1u64..3000,
            mut gaps in proptest::collection::vec(1u64..200, 0..40),
            chunk in 0.5f64..30.0,
            min_frac in 0.0f64..1.0,
        ) {
            let mut kfs = vec![0u64];
            for g in gaps.drain(..) {
                let next = kfs.last().unwrap() + g;
                if next >= frames { break; }
                kfs.push(next);
            }
            let min = chunk * min_frac;
            let v = stream(frames, &kfs);
            let plan = plan_chunks(&v, chunk, min).unwrap();
            prop_assert_eq!(plan[0].start_frame, 0);
            prop_assert_eq!(plan.last().unwrap().end_frame, frames);
            prop_assert_eq!(plan.iter().map(|c| c.frames()).sum::<u64>(), frames);
            for (i, c) in plan.iter().enumerate() {
                prop_assert_eq!(c.index as usize, i);
                prop_assert!(kfs.contains(&c.start_frame));
                prop_assert!(c.end_frame > c.start_frame);
                if plan.len() > 1 {
                    prop_assert!(c.frames() as f64 * 0.04 + 1e-9 >= min);
                }
                if let Some(n) = plan.get(i + 1) {
                    prop_assert_eq!(c.end_frame, n.start_frame);
                    prop_assert_eq!(c.end_pts, Some(n.start_pts));
                }
            }
        }
    }
}
