//! Conversions between [`crate::domain`] and the wire types in [`crate::pb`].
//!
//! Wire to domain is `TryFrom` (clients can send anything); domain to wire is
//! `From`. Workers, GPUs and telemetry are in `fleet`; quality settings,
//! measurements and reports in `quality`.

use crate::domain as d;
use crate::pb;
use crate::{Error, Result};

mod fleet;
mod quality;

fn missing(field: &str) -> Error {
    Error::invalid(format!("missing field {field}"))
}

impl TryFrom<pb::Codec> for d::Codec {
    type Error = Error;
    fn try_from(c: pb::Codec) -> Result<Self> {
        match c {
            pb::Codec::H264 => Ok(d::Codec::H264),
            pb::Codec::Hevc => Ok(d::Codec::Hevc),
            pb::Codec::Unspecified => Err(missing("video.codec")),
        }
    }
}

impl From<d::Codec> for pb::Codec {
    fn from(c: d::Codec) -> Self {
        match c {
            d::Codec::H264 => pb::Codec::H264,
            d::Codec::Hevc => pb::Codec::Hevc,
        }
    }
}

impl From<d::Container> for pb::Container {
    fn from(c: d::Container) -> Self {
        match c {
            d::Container::Mp4 => pb::Container::Mp4,
            d::Container::Mkv => pb::Container::Mkv,
        }
    }
}

fn container_from_pb(c: i32, output: &str) -> Result<d::Container> {
    match pb::Container::try_from(c).unwrap_or(pb::Container::Unspecified) {
        pb::Container::Mp4 => Ok(d::Container::Mp4),
        pb::Container::Mkv => Ok(d::Container::Mkv),
        pb::Container::Unspecified => d::Container::from_path(output).ok_or_else(|| {
            Error::invalid(format!(
                "cannot tell the container of output {output:?} (name it .mp4 or .mkv, or set the container)"
            ))
        }),
    }
}

impl From<d::Capacity> for pb::Capacity {
    fn from(c: d::Capacity) -> Self {
        match c {
            d::Capacity::Spot => pb::Capacity::Spot,
            d::Capacity::OnDemand => pb::Capacity::OnDemand,
        }
    }
}

impl From<d::VideoSettings> for pb::VideoSettings {
    fn from(v: d::VideoSettings) -> Self {
        let rate = match v.rate {
            d::RateControl::Crf(crf) => pb::rate_control::Mode::Crf(crf),
            d::RateControl::Bitrate {
                bitrate_bps,
                maxrate_bps,
                bufsize_bits,
            } => pb::rate_control::Mode::Bitrate(pb::Bitrate {
                bitrate_bps,
                maxrate_bps,
                bufsize_bits,
            }),
        };
        let (max_width, max_height) = v.max_size.unwrap_or((0, 0));
        pb::VideoSettings {
            codec: pb::Codec::from(v.codec) as i32,
            rate: Some(pb::RateControl { mode: Some(rate) }),
            preset: v.preset,
            profile: v.profile.unwrap_or_default(),
            keyint: v.keyint.unwrap_or(0),
            max_width,
            max_height,
            allow_upscale: v.allow_upscale,
            bit_depth: v.bit_depth.unwrap_or(0),
            tonemap: v.tonemap,
            autorotate: v.autorotate,
        }
    }
}

impl TryFrom<pb::VideoSettings> for d::VideoSettings {
    type Error = Error;
    fn try_from(v: pb::VideoSettings) -> Result<Self> {
        let codec = pb::Codec::try_from(v.codec)
            .map_err(|_| Error::invalid(format!("invalid codec value {}", v.codec)))?
            .try_into()?;
        let rate = match v.rate.and_then(|r| r.mode) {
            None => d::RateControl::Crf(23),
            Some(pb::rate_control::Mode::Crf(crf)) => d::RateControl::Crf(crf),
            Some(pb::rate_control::Mode::Bitrate(b)) => {
                let maxrate = if b.maxrate_bps == 0 {
                    b.bitrate_bps
                } else {
                    b.maxrate_bps
                };
                let bufsize = if b.bufsize_bits == 0 {
                    maxrate.saturating_mul(2)
                } else {
                    b.bufsize_bits
                };
                d::RateControl::Bitrate {
                    bitrate_bps: b.bitrate_bps,
                    maxrate_bps: maxrate,
                    bufsize_bits: bufsize,
                }
            }
        };
        let max_size = match (v.max_width, v.max_height) {
            (0, 0) => None,
            (w, h) => Some((w, h)),
        };
        Ok(d::VideoSettings {
            codec,
            rate,
            preset: if v.preset.is_empty() {
                "medium".into()
            } else {
                v.preset
            },
            profile: (!v.profile.is_empty()).then_some(v.profile),
            keyint: (v.keyint != 0).then_some(v.keyint),
            max_size,
            allow_upscale: v.allow_upscale,
            bit_depth: (v.bit_depth != 0).then_some(v.bit_depth),
            tonemap: v.tonemap,
            autorotate: v.autorotate,
        })
    }
}

impl From<d::AudioSettings> for pb::AudioSettings {
    fn from(a: d::AudioSettings) -> Self {
        pb::AudioSettings {
            copy_if_aac: a.copy_if_aac,
            bitrate_bps: a.bitrate_bps,
        }
    }
}

impl From<pb::AudioSettings> for d::AudioSettings {
    fn from(a: pb::AudioSettings) -> Self {
        d::AudioSettings {
            copy_if_aac: a.copy_if_aac,
            bitrate_bps: a.bitrate_bps,
        }
    }
}

impl From<d::JobSpec> for pb::JobSpec {
    fn from(s: d::JobSpec) -> Self {
        pb::JobSpec {
            input: s.input,
            output: s.output,
            video: Some(s.video.into()),
            audio: Some(s.audio.into()),
            container: pb::Container::from(s.container) as i32,
            chunk_seconds: s.chunk_seconds,
            min_chunk_seconds: s.min_chunk_seconds,
            priority: match s.priority {
                d::Priority::Cost => pb::Priority::Cost,
                d::Priority::Latency => pb::Priority::Latency,
            } as i32,
            max_attempts: s.max_attempts,
            escalate_after_attempts: s.escalate_after_attempts,
            escalate_after_wait_seconds: s.escalate_after_wait_seconds,
            renditions: s
                .renditions
                .into_iter()
                .map(|r| pb::Rendition {
                    video: Some(r.video.into()),
                    output: r.output,
                    container: pb::Container::from(r.container) as i32,
                })
                .collect(),
            audio_tracks: s.audio_tracks.to_string(),
            subtitle_tracks: s.subtitle_tracks.to_string(),
            quality: Some(s.quality.into()),
        }
    }
}

/// Wire to domain, filling unset fields with their documented defaults and
/// validating the result.
impl TryFrom<pb::JobSpec> for d::JobSpec {
    type Error = Error;
    fn try_from(s: pb::JobSpec) -> Result<Self> {
        let container = container_from_pb(s.container, &s.output)?;
        let video = s.video.ok_or_else(|| missing("video"))?.try_into()?;
        let audio = s
            .audio
            .map(d::AudioSettings::from)
            .unwrap_or(d::AudioSettings {
                copy_if_aac: true,
                bitrate_bps: 0,
            });
        let chunk_seconds = if s.chunk_seconds == 0.0 {
            d::JobSpec::DEFAULT_CHUNK_SECONDS
        } else {
            s.chunk_seconds
        };
        let min_chunk_seconds = if s.min_chunk_seconds == 0.0 {
            chunk_seconds / 4.0
        } else {
            s.min_chunk_seconds
        };
        let spec = d::JobSpec {
            input: s.input,
            output: s.output,
            video,
            audio,
            container,
            chunk_seconds,
            min_chunk_seconds,
            priority: match pb::Priority::try_from(s.priority) {
                Ok(pb::Priority::Latency) => d::Priority::Latency,
                _ => d::Priority::Cost,
            },
            max_attempts: if s.max_attempts == 0 {
                d::JobSpec::DEFAULT_MAX_ATTEMPTS
            } else {
                s.max_attempts
            },
            escalate_after_attempts: if s.escalate_after_attempts == 0 {
                d::JobSpec::DEFAULT_ESCALATE_AFTER_ATTEMPTS
            } else {
                s.escalate_after_attempts
            },
            escalate_after_wait_seconds: if s.escalate_after_wait_seconds == 0 {
                d::JobSpec::DEFAULT_ESCALATE_AFTER_WAIT_SECONDS
            } else {
                s.escalate_after_wait_seconds
            },
            renditions: s
                .renditions
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let n = i + 1;
                    Ok(d::Rendition {
                        container: container_from_pb(r.container, &r.output)
                            .map_err(|e| Error::invalid(format!("rendition {n}: {e}")))?,
                        video: r
                            .video
                            .ok_or_else(|| missing("rendition.video"))?
                            .try_into()
                            .map_err(|e: Error| Error::invalid(format!("rendition {n}: {e}")))?,
                        output: r.output,
                    })
                })
                .collect::<Result<_>>()?,
            audio_tracks: s
                .audio_tracks
                .parse()
                .map_err(|e: Error| Error::invalid(format!("audio tracks: {e}")))?,
            subtitle_tracks: s
                .subtitle_tracks
                .parse()
                .map_err(|e: Error| Error::invalid(format!("subtitle tracks: {e}")))?,
            quality: s.quality.try_into()?,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl From<d::Rational> for pb::Rational {
    fn from(r: d::Rational) -> Self {
        pb::Rational {
            num: r.num,
            den: r.den,
        }
    }
}

fn rational(r: Option<pb::Rational>, field: &str) -> Result<d::Rational> {
    let r = r.ok_or_else(|| missing(field))?;
    Ok(d::Rational::new(r.num, r.den))
}

impl From<d::ChunkRange> for pb::ChunkRange {
    fn from(c: d::ChunkRange) -> Self {
        pb::ChunkRange {
            index: c.index,
            start_frame: c.start_frame,
            end_frame: c.end_frame,
            start_pts: c.start_pts,
            end_pts: c.end_pts,
        }
    }
}

impl From<pb::ChunkRange> for d::ChunkRange {
    fn from(c: pb::ChunkRange) -> Self {
        d::ChunkRange {
            index: c.index,
            start_frame: c.start_frame,
            end_frame: c.end_frame,
            start_pts: c.start_pts,
            end_pts: c.end_pts,
        }
    }
}

impl From<d::OutputObject> for pb::OutputObject {
    fn from(o: d::OutputObject) -> Self {
        pb::OutputObject {
            path: o.path,
            size_bytes: o.size_bytes,
            sha256: o.sha256,
            frames: o.frames,
            renditions: o.renditions.into_iter().map(Into::into).collect(),
            encoder: o.encoder,
            encode_ms: o.encode_ms,
            quality: o.quality.map(|q| (*q).into()),
        }
    }
}

impl From<pb::OutputObject> for d::OutputObject {
    fn from(o: pb::OutputObject) -> Self {
        d::OutputObject {
            path: o.path,
            size_bytes: o.size_bytes,
            sha256: o.sha256,
            frames: o.frames,
            renditions: o.renditions.into_iter().map(Into::into).collect(),
            encoder: o.encoder,
            encode_ms: o.encode_ms,
            quality: o.quality.map(|q| Box::new(q.into())),
        }
    }
}

fn stitch_chunk(o: d::OutputObject) -> pb::StitchChunk {
    pb::StitchChunk {
        path: o.path,
        size_bytes: o.size_bytes,
        sha256: o.sha256,
        frames: o.frames,
        encoder: o.encoder,
    }
}

fn from_stitch_chunk(o: pb::StitchChunk) -> d::OutputObject {
    d::OutputObject {
        path: o.path,
        size_bytes: o.size_bytes,
        sha256: o.sha256,
        frames: o.frames,
        encoder: o.encoder,
        ..Default::default()
    }
}

/// Domain task work to the wire `oneof`.
pub fn work_to_pb(w: d::Work) -> pb::task::Work {
    match w {
        d::Work::Probe(p) => pb::task::Work::Probe(pb::ProbeTask { input: p.input }),
        d::Work::Encode(e) => pb::task::Work::Encode(pb::EncodeTask {
            input: e.input,
            output: e.output,
            chunk: Some(e.chunk.into()),
            video: Some(e.video.into()),
            origin_pts: e.origin_pts,
            video_stream: e.video_stream,
            source_frame_rate: Some(e.source_frame_rate.into()),
            renditions: e
                .renditions
                .into_iter()
                .map(|r| pb::RenditionTarget {
                    video: Some(r.video.into()),
                    output: r.output,
                })
                .collect(),
            identities: e.identities.into_iter().map(Into::into).collect(),
            measure_quality: e.measure_quality,
        }),
        d::Work::Audio(a) => pb::task::Work::Audio(pb::AudioTask {
            input: a.input,
            output: a.output,
            audio: Some(a.audio.into()),
            origin_seconds: a.origin_seconds,
            duration_seconds: a.duration_seconds,
            stream_index: a.stream,
        }),
        d::Work::Stitch(s) => pb::task::Work::Stitch(pb::StitchTask {
            chunks: s.chunks.into_iter().map(stitch_chunk).collect(),
            audio: s.audio.map(stitch_chunk),
            more_audio: s.more_audio.into_iter().map(stitch_chunk).collect(),
            frame_rate: s.frame_rate.map(Into::into),
            autorotated: s.autorotated,
            carry: s.carry.map(|c| pb::SourceCarry {
                input: c.input,
                video_stream: c.video_stream,
                audio_streams: c.audio_streams,
                subtitle_streams: c.subtitle_streams,
                attachment_streams: c.attachment_streams,
                origin_seconds: c.origin_seconds,
                duration_seconds: c.duration_seconds,
            }),
            output: s.output,
            container: pb::Container::from(s.container) as i32,
            expected_frames: s.expected_frames,
            part_urls: s.part_urls,
            part_size_bytes: s.part_size_bytes,
            rendition: s.rendition,
        }),
    }
}

impl From<d::LeasedTask> for pb::Task {
    fn from(t: d::LeasedTask) -> Self {
        pb::Task {
            task_id: t.task_id,
            job_id: t.job_id,
            attempt: t.attempt,
            lease_ttl_ms: t.lease_ttl_ms,
            work: Some(work_to_pb(t.work)),
        }
    }
}

impl TryFrom<pb::Task> for d::LeasedTask {
    type Error = Error;
    fn try_from(t: pb::Task) -> Result<Self> {
        let work = match t.work.ok_or_else(|| missing("task.work"))? {
            pb::task::Work::Probe(p) => d::Work::Probe(d::ProbeTask { input: p.input }),
            pb::task::Work::Encode(e) => d::Work::Encode(d::EncodeTask {
                input: e.input,
                output: e.output,
                chunk: e.chunk.ok_or_else(|| missing("encode.chunk"))?.into(),
                video: e.video.ok_or_else(|| missing("encode.video"))?.try_into()?,
                origin_pts: e.origin_pts,
                video_stream: e.video_stream,
                source_frame_rate: rational(e.source_frame_rate, "encode.source_frame_rate")?,
                renditions: e
                    .renditions
                    .into_iter()
                    .map(|r| {
                        Ok(d::RenditionTarget {
                            video: r
                                .video
                                .ok_or_else(|| missing("rendition.video"))?
                                .try_into()?,
                            output: r.output,
                        })
                    })
                    .collect::<Result<_>>()?,
                identities: e
                    .identities
                    .into_iter()
                    .map(d::EncoderIdentity::try_from)
                    .collect::<Result<_>>()?,
                measure_quality: e.measure_quality,
            }),
            pb::task::Work::Audio(a) => d::Work::Audio(d::AudioTask {
                input: a.input,
                output: a.output,
                audio: a.audio.ok_or_else(|| missing("audio.audio"))?.into(),
                origin_seconds: a.origin_seconds,
                duration_seconds: a.duration_seconds,
                stream: a.stream_index,
            }),
            pb::task::Work::Stitch(s) => d::Work::Stitch(d::StitchTask {
                container: container_from_pb(s.container, &s.output)?,
                chunks: s.chunks.into_iter().map(from_stitch_chunk).collect(),
                audio: s.audio.map(from_stitch_chunk),
                more_audio: s.more_audio.into_iter().map(from_stitch_chunk).collect(),
                frame_rate: s.frame_rate.map(|r| d::Rational::new(r.num, r.den)),
                autorotated: s.autorotated,
                carry: s.carry.map(|c| d::SourceCarry {
                    input: c.input,
                    video_stream: c.video_stream,
                    audio_streams: c.audio_streams,
                    subtitle_streams: c.subtitle_streams,
                    attachment_streams: c.attachment_streams,
                    origin_seconds: c.origin_seconds,
                    duration_seconds: c.duration_seconds,
                }),
                output: s.output,
                expected_frames: s.expected_frames,
                part_urls: s.part_urls,
                part_size_bytes: s.part_size_bytes,
                rendition: s.rendition,
            }),
        };
        Ok(d::LeasedTask {
            task_id: t.task_id,
            job_id: t.job_id,
            attempt: t.attempt,
            lease_ttl_ms: t.lease_ttl_ms,
            work,
        })
    }
}

impl From<d::ProbeInfo> for pb::ProbeResult {
    fn from(p: d::ProbeInfo) -> Self {
        let v = p.video;
        pb::ProbeResult {
            format_name: p.format_name,
            duration_seconds: p.duration_seconds,
            index_source: p.index_source,
            video: Some(pb::VideoStreamInfo {
                stream_index: v.stream_index,
                codec: v.codec,
                width: v.width,
                height: v.height,
                pix_fmt: v.pix_fmt,
                time_base: Some(v.time_base.into()),
                avg_frame_rate: Some(v.avg_frame_rate.into()),
                start_pts: v.start_pts,
                frame_count: v.frame_count,
                keyframes: v
                    .keyframes
                    .iter()
                    .map(|k| pb::Keyframe {
                        frame: k.frame,
                        pts: k.pts,
                    })
                    .collect(),
                end_pts: v.end_pts,
            }),
            audio: p.audio.map(|a| pb::AudioStreamInfo {
                stream_index: a.stream_index,
                codec: a.codec,
                sample_rate: a.sample_rate,
                channels: a.channels,
                start_offset_seconds: a.start_offset_seconds,
            }),
            streams: p.streams.into_iter().map(stream_to_pb).collect(),
            chapters: p.chapters,
            color: Some(pb::ColorInfo {
                primaries: p.color.primaries,
                transfer: p.color.transfer,
                matrix: p.color.matrix,
                range: p.color.range,
                bit_depth: p.color.bit_depth,
                rotation: p.color.rotation,
            }),
        }
    }
}

impl TryFrom<pb::ProbeResult> for d::ProbeInfo {
    type Error = Error;
    fn try_from(p: pb::ProbeResult) -> Result<Self> {
        let v = p.video.ok_or_else(|| missing("probe.video"))?;
        Ok(d::ProbeInfo {
            format_name: p.format_name,
            duration_seconds: p.duration_seconds,
            index_source: p.index_source,
            video: d::VideoStreamInfo {
                stream_index: v.stream_index,
                codec: v.codec,
                width: v.width,
                height: v.height,
                pix_fmt: v.pix_fmt,
                time_base: rational(v.time_base, "probe.video.time_base")?,
                avg_frame_rate: rational(v.avg_frame_rate, "probe.video.avg_frame_rate")?,
                start_pts: v.start_pts,
                end_pts: v.end_pts,
                frame_count: v.frame_count,
                keyframes: v
                    .keyframes
                    .into_iter()
                    .map(|k| d::Keyframe {
                        frame: k.frame,
                        pts: k.pts,
                    })
                    .collect(),
            },
            audio: p.audio.map(|a| d::AudioStreamInfo {
                stream_index: a.stream_index,
                codec: a.codec,
                sample_rate: a.sample_rate,
                channels: a.channels,
                start_offset_seconds: a.start_offset_seconds,
            }),
            streams: p.streams.into_iter().map(stream_from_pb).collect(),
            chapters: p.chapters,
            color: p
                .color
                .map(|c| d::ColorInfo {
                    primaries: c.primaries,
                    transfer: c.transfer,
                    matrix: c.matrix,
                    range: c.range,
                    bit_depth: c.bit_depth,
                    rotation: c.rotation,
                })
                .unwrap_or_default(),
        })
    }
}

fn stream_to_pb(s: d::StreamInfo) -> pb::StreamInfo {
    pb::StreamInfo {
        index: s.index,
        kind: s.kind.map_or("", d::StreamKind::name).to_string(),
        codec: s.codec,
        language: s.language,
        title: s.title,
        disposition: s.disposition,
        channels: s.channels,
        channel_layout: s.channel_layout,
        sample_rate: s.sample_rate,
        bitmap: s.bitmap,
        start_offset_seconds: s.start_offset_seconds,
    }
}

fn stream_from_pb(s: pb::StreamInfo) -> d::StreamInfo {
    d::StreamInfo {
        index: s.index,
        kind: d::StreamKind::from_name(&s.kind),
        codec: s.codec,
        language: s.language,
        title: s.title,
        disposition: s.disposition,
        channels: s.channels,
        channel_layout: s.channel_layout,
        sample_rate: s.sample_rate,
        bitmap: s.bitmap,
        start_offset_seconds: s.start_offset_seconds,
    }
}

impl From<d::TaskOutcome> for pb::complete_task_request::Result {
    fn from(o: d::TaskOutcome) -> Self {
        use pb::complete_task_request::Result as R;
        match o {
            d::TaskOutcome::Probe(p) => R::Probe(p.into()),
            d::TaskOutcome::Encode(o) => R::Encode(o.into()),
            d::TaskOutcome::Audio(o) => R::Audio(o.into()),
            d::TaskOutcome::Stitch(o) => R::Stitch(o.into()),
        }
    }
}

impl TryFrom<pb::complete_task_request::Result> for d::TaskOutcome {
    type Error = Error;
    fn try_from(r: pb::complete_task_request::Result) -> Result<Self> {
        use pb::complete_task_request::Result as R;
        Ok(match r {
            R::Probe(p) => d::TaskOutcome::Probe(p.try_into()?),
            R::Encode(o) => d::TaskOutcome::Encode(o.into()),
            R::Audio(o) => d::TaskOutcome::Audio(o.into()),
            R::Stitch(o) => d::TaskOutcome::Stitch(o.into()),
        })
    }
}

impl From<d::JobState> for pb::JobState {
    fn from(s: d::JobState) -> Self {
        match s {
            d::JobState::Queued => pb::JobState::Queued,
            d::JobState::Running => pb::JobState::Running,
            d::JobState::Committing => pb::JobState::Committing,
            d::JobState::Succeeded => pb::JobState::Succeeded,
            d::JobState::Failed => pb::JobState::Failed,
            d::JobState::Cancelled => pb::JobState::Cancelled,
        }
    }
}

impl TryFrom<pb::JobState> for d::JobState {
    type Error = Error;
    fn try_from(s: pb::JobState) -> Result<Self> {
        Ok(match s {
            pb::JobState::Queued => d::JobState::Queued,
            pb::JobState::Running => d::JobState::Running,
            pb::JobState::Committing => d::JobState::Committing,
            pb::JobState::Succeeded => d::JobState::Succeeded,
            pb::JobState::Failed => d::JobState::Failed,
            pb::JobState::Cancelled => d::JobState::Cancelled,
            pb::JobState::Unspecified => return Err(missing("job state")),
        })
    }
}

fn task_kind(k: d::TaskKind) -> pb::TaskKind {
    match k {
        d::TaskKind::Probe => pb::TaskKind::Probe,
        d::TaskKind::Encode => pb::TaskKind::Encode,
        d::TaskKind::Audio => pb::TaskKind::Audio,
        d::TaskKind::Stitch => pb::TaskKind::Stitch,
    }
}

fn task_state(s: d::TaskState) -> pb::TaskState {
    match s {
        d::TaskState::Blocked => pb::TaskState::Blocked,
        d::TaskState::Pending => pb::TaskState::Pending,
        d::TaskState::Leased => pb::TaskState::Leased,
        d::TaskState::Done => pb::TaskState::Done,
        d::TaskState::Failed => pb::TaskState::Failed,
        d::TaskState::Cancelled => pb::TaskState::Cancelled,
    }
}

/// A job record on the wire.
pub fn job_to_pb(j: d::JobView) -> pb::Job {
    pb::Job {
        id: j.id,
        spec: Some(j.spec.into()),
        state: pb::JobState::from(j.state) as i32,
        error: j.error,
        created_unix_ms: j.created_unix_ms,
        updated_unix_ms: j.updated_unix_ms,
        finished_unix_ms: j.finished_unix_ms,
        frames_total: j.frames_total,
        frames_done: j.frames_done,
        chunks_total: j.chunks_total,
        chunks_done: j.chunks_done,
        interruptions: pool_counts(j.interruptions),
        left_out: j.left_out,
        identities: j.identities,
        restarts: j.restarts,
        quality: j.quality.into_iter().map(Into::into).collect(),
        cost: Some(pb::JobCost {
            spot_dollars: j.cost.spot_dollars,
            on_demand_dollars: j.cost.on_demand_dollars,
            wasted_dollars: j.cost.wasted_dollars,
            output_seconds: j.cost.output_seconds,
            dollars_per_output_minute: j.cost.dollars_per_output_minute,
            output_bytes: j.cost.output_bytes,
        }),
        tasks: j
            .tasks
            .into_iter()
            .map(|t| pb::TaskSummary {
                task_id: t.task_id,
                kind: task_kind(t.kind) as i32,
                state: task_state(t.state) as i32,
                chunk: t.chunk,
                attempts: t.attempts,
                worker_id: t.worker_id,
                frames_done: t.frames_done,
                frames_total: t.frames_total,
                partition: pb::Capacity::from(t.partition) as i32,
                interruptions: pool_counts(t.interruptions),
                history: t
                    .history
                    .into_iter()
                    .map(|a| pb::AttemptRecord {
                        attempt: a.attempt,
                        worker_id: a.worker_id,
                        started_unix_ms: a.started_unix_ms,
                        ended_unix_ms: a.ended_unix_ms,
                        outcome: a.outcome.as_str().into(),
                        error: a.error,
                        pool: a.pool,
                        log_bytes: a.log_bytes,
                        rate_per_hour: a.rate_per_hour,
                        on_demand: a.on_demand,
                        cost_dollars: a.cost_dollars,
                        identities: a.identities,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn pool_counts(c: d::PoolCounts) -> Vec<pb::PoolCount> {
    c.into_iter()
        .map(|(pool, count)| pb::PoolCount { pool, count })
        .collect()
}

impl From<d::TaskLog> for pb::TaskLog {
    fn from(l: d::TaskLog) -> Self {
        pb::TaskLog {
            task_id: l.task_id,
            attempt: l.attempt,
            worker_id: l.worker_id,
            pool: l.pool,
            outcome: l.outcome,
            error: l.error,
            started_unix_ms: l.started_unix_ms,
            ended_unix_ms: l.ended_unix_ms,
            log: l.log,
        }
    }
}
