//! The task graph of a job, built once its probe is known:
//! probe → (encode × chunks, plus audio) → stitch × renditions. Each encode
//! task writes every rendition of its chunk from one decode; each rendition
//! has its own stitch. Pure.

use spotenc_proto::domain::{
    output_size, AudioTask, EncodeTask, JobSpec, ProbeInfo, RenditionTarget, StitchTask, TaskKind,
    Work,
};
use spotenc_proto::Result;

use crate::cost::model::{Demand, Output};
use crate::plan::{check_audio, plan_chunks};
use crate::state::{JobRecord, NewTask};
use crate::storage;

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
    check_audio(probe)?;
    let chunks = plan_chunks(&probe.video, spec.chunk_seconds, spec.min_chunk_seconds)?;
    let v = &probe.video;
    let tb = v.time_base.as_f64();
    let mut tasks = Vec::with_capacity(chunks.len() + 2);
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
            }
        })
        .collect();
    for c in &chunks {
        tasks.push(NewTask {
            id: format!("{}/encode-{:05}", job_id, c.index),
            kind: TaskKind::Encode,
            chunk: c.index,
            work: Work::Encode(EncodeTask {
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
            }),
            deps: vec![],
            frames_total: c.frames(),
            demand: Demand {
                outputs: outputs.clone(),
                frames: c.frames(),
            },
        });
    }
    if probe.audio.is_some() {
        tasks.push(NewTask {
            id: format!("{}/audio", job_id),
            kind: TaskKind::Audio,
            chunk: 0,
            work: Work::Audio(AudioTask {
                input: spec.input.clone(),
                output: format!("{}/audio.nut", work_dir),
                audio: spec.audio.clone(),
                origin_seconds: v.start_pts as f64 * tb,
                duration_seconds: (v.end_pts - v.start_pts) as f64 * tb,
            }),
            deps: vec![],
            frames_total: 0,
            demand: Demand::default(),
        });
    }
    let deps: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    for (r, (output, _, container)) in spec.outputs().into_iter().enumerate() {
        tasks.push(NewTask {
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
                output: storage::temp_output(output, job_id),
                container,
                expected_frames: v.frame_count,
                part_urls: vec![],
                part_size_bytes: 0,
                rendition: r as u32,
            }),
            deps: deps.clone(),
            frames_total: v.frame_count,
            demand: Demand::default(),
        });
    }
    Ok(tasks)
}
