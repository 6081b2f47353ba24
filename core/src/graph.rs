//! The task graph of a job, built once its probe is known:
//! probe → (encode × chunks, plus one task per kept audio track) → stitch ×
//! renditions. Each encode task writes every rendition of its chunk from one
//! decode; each rendition has its own stitch, which also carries the kept
//! subtitles, attachments, chapters and tags from the source. Pure.

use spotenc_proto::domain::{
    output_size, AudioTask, ChunkRange, EncodeTask, JobSpec, ProbeInfo, RenditionTarget,
    SourceCarry, StitchTask, TaskKind, Work,
};
use spotenc_proto::Result;

use crate::cost::model::{AudioWork, Demand, Output};
use crate::paths;
use crate::plan::{check_audio, check_hdr, check_rotation, plan_chunks, KeptStreams};
use crate::state::{JobRecord, NewTask};

/// The tasks that follow a job's probe; intermediate objects go under
/// `work_dir`.
pub fn expand(job: &JobRecord, probe: &ProbeInfo, work_dir: &str) -> Result<Vec<NewTask>> {
    expand_spec(&job.id, &job.spec, probe, work_dir)
}

/// [`expand`] from what it reads of the job: its id and spec (the fleet
/// simulator plans a job on another thread before the job is submitted).
pub fn expand_spec(
    job_id: &str,
    spec: &JobSpec,
    probe: &ProbeInfo,
    work_dir: &str,
) -> Result<Vec<NewTask>> {
    if probe.streams.is_empty() {
        // Probes that list streams have each kept track checked instead.
        check_audio(probe)?;
    }
    check_hdr(spec, probe)?;
    check_rotation(spec, probe)?;
    let kept = KeptStreams::resolve(spec, probe)?;
    let chunks = plan_chunks(&probe.video, spec.chunk_seconds, spec.min_chunk_seconds)?;
    let mut tasks = Vec::with_capacity(chunks.len() + kept.audio.len() + spec.outputs().len());
    tasks.extend(encode_tasks(job_id, spec, probe, &chunks, work_dir));
    tasks.extend(audio_tasks(job_id, spec, probe, &kept, work_dir));
    let deps: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    tasks.extend(stitch_tasks(job_id, spec, probe, &kept, deps));
    Ok(tasks)
}

/// The seconds of the source the job covers: from the video's origin, for
/// its length.
fn span_seconds(probe: &ProbeInfo) -> (f64, f64) {
    let v = &probe.video;
    let tb = v.time_base.as_f64();
    (
        v.start_pts as f64 * tb,
        (v.end_pts - v.start_pts) as f64 * tb,
    )
}

/// One encode task per chunk, writing every rendition of it.
fn encode_tasks(
    job_id: &str,
    spec: &JobSpec,
    probe: &ProbeInfo,
    chunks: &[ChunkRange],
    work_dir: &str,
) -> Vec<NewTask> {
    let v = &probe.video;
    let outputs: Vec<Output> = spec
        .outputs()
        .into_iter()
        .map(|(_, video, _)| {
            let (width, height) =
                output_size(v.width, v.height, video.max_size, video.allow_upscale);
            Output {
                codec: video.codec,
                preset: video.preset.clone(),
                width,
                height,
                ten_bit: video.depth_for(probe.color.bit_depth) > 8,
            }
        })
        .collect();
    chunks
        .iter()
        .map(|c| NewTask {
            id: format!("{}/encode-{:05}", job_id, c.index),
            kind: TaskKind::Encode,
            chunk: c.index,
            work: Work::Encode(EncodeTask {
                // Set at lease, from the leasing worker.
                identities: Vec::new(),
                renditions: spec
                    .renditions
                    .iter()
                    .enumerate()
                    .map(|(r, rendition)| RenditionTarget {
                        video: rendition.video.clone(),
                        output: format!("{}/chunk-{:05}.r{}.nut", work_dir, c.index, r + 1),
                    })
                    .collect(),
                input: spec.input.clone(),
                output: format!("{}/chunk-{:05}.nut", work_dir, c.index),
                chunk: *c,
                video: spec.video.clone(),
                origin_pts: v.start_pts,
                video_stream: v.stream_index,
                source_frame_rate: v.avg_frame_rate,
                measure_quality: spec.quality.metrics,
            }),
            deps: vec![],
            frames_total: c.frames(),
            demand: Demand {
                outputs: outputs.clone(),
                frames: c.frames(),
                audio: None,
            },
        })
        .collect()
}

/// One audio task per kept track.
fn audio_tasks(
    job_id: &str,
    spec: &JobSpec,
    probe: &ProbeInfo,
    kept: &KeptStreams,
    work_dir: &str,
) -> Vec<NewTask> {
    let (origin_seconds, duration_seconds) = span_seconds(probe);
    kept.audio
        .iter()
        .enumerate()
        .map(|(n, stream)| NewTask {
            // The first keeps the id jobs had before multi-track audio.
            id: if n == 0 {
                format!("{}/audio", job_id)
            } else {
                format!("{}/audio-{n}", job_id)
            },
            kind: TaskKind::Audio,
            chunk: n as u32,
            work: Work::Audio(AudioTask {
                input: spec.input.clone(),
                output: if n == 0 {
                    format!("{}/audio.nut", work_dir)
                } else {
                    format!("{}/audio-{n}.nut", work_dir)
                },
                audio: spec.audio.clone(),
                origin_seconds,
                duration_seconds,
                stream: *stream,
            }),
            deps: vec![],
            frames_total: 0,
            demand: audio_demand(spec, probe, *stream, duration_seconds),
        })
        .collect()
}

/// One stitch per rendition, after every encode and audio task, carrying
/// what the job keeps from the source.
fn stitch_tasks(
    job_id: &str,
    spec: &JobSpec,
    probe: &ProbeInfo,
    kept: &KeptStreams,
    deps: Vec<String>,
) -> Vec<NewTask> {
    let v = &probe.video;
    let (origin_seconds, duration_seconds) = span_seconds(probe);
    let carry = kept.carried.then(|| SourceCarry {
        input: spec.input.clone(),
        video_stream: v.stream_index,
        audio_streams: kept.audio.iter().flatten().copied().collect(),
        subtitle_streams: kept.subtitles.clone(),
        attachment_streams: kept.attachments.clone(),
        origin_seconds,
        duration_seconds,
    });
    spec.outputs()
        .into_iter()
        .enumerate()
        .map(|(r, (output, video, container))| NewTask {
            id: if r == 0 {
                format!("{}/stitch", job_id)
            } else {
                format!("{}/stitch-r{r}", job_id)
            },
            kind: TaskKind::Stitch,
            chunk: 0,
            work: Work::Stitch(StitchTask {
                chunks: vec![],
                audio: None,
                more_audio: vec![],
                carry: carry.clone(),
                frame_rate: kept.carried.then_some(v.avg_frame_rate),
                // Only quarter turns are applied to the pixels.
                autorotated: video.autorotate
                    && probe.color.rotation != 0
                    && probe.color.rotation % 90 == 0,
                output: paths::temp_output(output, job_id),
                container,
                expected_frames: v.frame_count,
                part_urls: vec![],
                part_size_bytes: 0,
                rendition: r as u32,
            }),
            deps: deps.clone(),
            frames_total: v.frame_count,
            demand: Demand::default(),
        })
        .collect()
}

/// An audio task's demand: its track's length and channels, and whether it
/// is encoded or copied. Unknown (a probe from before streams were listed)
/// leaves it a small task.
fn audio_demand(spec: &JobSpec, probe: &ProbeInfo, stream: Option<u32>, seconds: f64) -> Demand {
    let Some(s) = stream.and_then(|i| probe.streams.iter().find(|s| s.index == i)) else {
        return Demand::default();
    };
    Demand {
        audio: Some(AudioWork {
            seconds,
            channels: s.channels,
            encode: !(s.codec == "aac" && spec.audio.copy_if_aac),
        }),
        ..Demand::default()
    }
}
