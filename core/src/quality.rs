//! What a job's measured chunks add up to, per output: the report (means,
//! worst chunk, flagged seams, re-encoded chunks), and the outlier guard's
//! verdict before the stitch.
//!
//! - A **seam** between two chunks is judged by its step beyond the change
//!   in the two chunks' levels: `(first second − mean)` of the chunk after
//!   it minus `(last second − mean)` of the chunk before it. A cut in the
//!   content changes both chunks' means and leaves this near 0; a rate
//!   control restart (worst with bitrate targets and tight VBV buffers)
//!   moves the first second away from its chunk's level.
//! - An **outlier** is a chunk whose mean PSNR is `outlier_db` under its
//!   output's median chunk, or under the job's floor. It is re-encoded
//!   once, on another worker of the same identity; an outlier that was
//!   already re-encoded fails the job.

use spotenc_proto::domain::{
    mse_of, psnr_of, AttemptOutcome, ChunkQuality, JobSpec, QualitySettings, Reencode,
    RenditionQuality, Seam, TaskKind, TaskOutcome, TaskState,
};

use crate::state::TaskRecord;

/// One output's measured chunk.
#[derive(Debug, Clone)]
pub struct Measured<'a> {
    pub task_id: &'a str,
    pub chunk: u32,
    /// The worker that made the done attempt.
    pub worker_id: &'a str,
    pub quality: &'a ChunkQuality,
    pub bytes: u64,
    /// The chunk was already re-encoded once by the guard.
    pub reencoded: bool,
}

/// The done chunks of output `rendition` (0: the job's output) that were
/// measured, in chunk order.
pub fn measured(tasks: &[TaskRecord], rendition: usize) -> Vec<Measured<'_>> {
    let mut out: Vec<Measured<'_>> = tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Encode && t.state == TaskState::Done)
        .filter_map(|t| {
            let Some(TaskOutcome::Encode(obj)) = &t.result else {
                return None;
            };
            let obj = match rendition {
                0 => obj,
                r => obj.renditions.get(r - 1)?,
            };
            let done = t
                .history
                .iter()
                .rev()
                .find(|a| a.outcome == AttemptOutcome::Done)?;
            Some(Measured {
                task_id: &t.id,
                chunk: t.chunk,
                worker_id: &done.worker_id,
                quality: obj.quality.as_ref()?,
                bytes: obj.size_bytes,
                reencoded: t
                    .history
                    .iter()
                    .any(|a| a.outcome == AttemptOutcome::Rejected),
            })
        })
        .collect();
    out.sort_by_key(|m| m.chunk);
    out
}

/// Each output's report, in the order of the outputs; empty when no chunk
/// was measured.
pub fn report(spec: &JobSpec, tasks: &[TaskRecord]) -> Vec<RenditionQuality> {
    let reencoded: Vec<Reencode> = tasks
        .iter()
        .flat_map(|t| {
            t.history
                .iter()
                .filter(|a| a.outcome == AttemptOutcome::Rejected)
                .map(|a| Reencode {
                    chunk: t.chunk,
                    worker_id: a.worker_id.clone(),
                    reason: a.error.clone(),
                })
        })
        .collect();
    let mut out = Vec::new();
    for (r, (output, _, _)) in spec.outputs().into_iter().enumerate() {
        let chunks = measured(tasks, r);
        if chunks.is_empty() {
            continue;
        }
        let mut q = summarise(&chunks);
        q.output = output.to_string();
        q.seams = seams(&chunks, spec.quality.seam_step_db);
        q.reencoded = reencoded.clone();
        out.push(q);
    }
    out
}

/// Means over the chunks: PSNR of the frame-weighted mean error (as one
/// measurement of the whole output would give), frame-weighted SSIM, and
/// the bitrate of their bytes.
fn summarise(chunks: &[Measured<'_>]) -> RenditionQuality {
    let frames: u64 = chunks.iter().map(|c| c.quality.frames).sum();
    let weight = |c: &Measured<'_>| c.quality.frames as f64 / frames.max(1) as f64;
    let mse: f64 = chunks
        .iter()
        .map(|c| weight(c) * mse_of(c.quality.psnr))
        .sum();
    let seconds: f64 = chunks.iter().map(|c| c.quality.seconds).sum();
    let bytes: u64 = chunks.iter().map(|c| c.bytes).sum();
    let worst = chunks
        .iter()
        .min_by(|a, b| a.quality.psnr.total_cmp(&b.quality.psnr))
        .expect("at least one chunk");
    let first = chunks[0].quality;
    RenditionQuality {
        chunks_measured: chunks.len() as u32,
        psnr: psnr_of(mse),
        psnr_min: chunks
            .iter()
            .map(|c| c.quality.psnr_min)
            .fold(f64::INFINITY, f64::min),
        ssim: chunks.iter().map(|c| weight(c) * c.quality.ssim).sum(),
        ssim_min: chunks
            .iter()
            .map(|c| c.quality.ssim_min)
            .fold(f64::INFINITY, f64::min),
        bitrate_bps: if seconds > 0.0 {
            (bytes as f64 * 8.0 / seconds).round() as u64
        } else {
            0
        },
        bytes,
        worst_chunk: worst.chunk,
        worst_chunk_psnr: worst.quality.psnr,
        vmaf: None,
        vmaf_unavailable: first.vmaf_unavailable.clone(),
        ..Default::default()
    }
}

/// The step at the boundary before `after`, beyond the change in the two
/// chunks' levels (dB).
pub fn seam_step(before: &ChunkQuality, after: &ChunkQuality) -> f64 {
    (after.psnr_first - after.psnr) - (before.psnr_last - before.psnr)
}

/// Boundaries between consecutive measured chunks whose step exceeds
/// `step_db` either way.
pub fn seams(chunks: &[Measured<'_>], step_db: f64) -> Vec<Seam> {
    chunks
        .windows(2)
        .filter(|w| w[1].chunk == w[0].chunk + 1)
        .filter_map(|w| {
            let step = seam_step(w[0].quality, w[1].quality);
            (step.abs() > step_db).then(|| Seam {
                chunk: w[1].chunk,
                at_seconds: w[1].quality.start_seconds,
                step_db: step,
            })
        })
        .collect()
}

/// A chunk the guard found short.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub task_id: String,
    pub chunk: u32,
    /// The worker that made it.
    pub worker_id: String,
    pub reason: String,
}

/// What the guard decided for a job whose chunks are all done.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Stitch.
    Clean,
    /// Encode these chunks again, each on another worker than the one
    /// named.
    Reencode(Vec<Outlier>),
    /// A chunk was short again after its re-encode: the job fails with this
    /// message, which names it.
    Fail(String),
}

/// The guard's verdict over every output of a job.
pub fn judge(spec: &JobSpec, tasks: &[TaskRecord]) -> Verdict {
    let mut redo: Vec<Outlier> = Vec::new();
    for (r, (output, _, _)) in spec.outputs().into_iter().enumerate() {
        let chunks = measured(tasks, r);
        for (c, why) in outliers(&chunks, &spec.quality) {
            let reason = format!("chunk {} of {output}: {why}", c.chunk);
            if c.reencoded {
                return Verdict::Fail(format!(
                    "{reason}, again after it was re-encoded (this time by worker {})",
                    c.worker_id
                ));
            }
            if !redo.iter().any(|o| o.task_id == c.task_id) {
                redo.push(Outlier {
                    task_id: c.task_id.to_string(),
                    chunk: c.chunk,
                    worker_id: c.worker_id.to_string(),
                    reason: format!("{reason} (made by worker {})", c.worker_id),
                });
            }
        }
    }
    if redo.is_empty() {
        Verdict::Clean
    } else {
        Verdict::Reencode(redo)
    }
}

/// The chunks of one output under the floor or `outlier_db` under the
/// median chunk, each with why.
fn outliers<'m, 'a>(
    chunks: &'m [Measured<'a>],
    settings: &QualitySettings,
) -> Vec<(&'m Measured<'a>, String)> {
    let mut psnr: Vec<f64> = chunks.iter().map(|c| c.quality.psnr).collect();
    psnr.sort_by(f64::total_cmp);
    let median = match psnr.len() {
        0 => return Vec::new(),
        n if n % 2 == 1 => psnr[n / 2],
        n => (psnr[n / 2 - 1] + psnr[n / 2]) / 2.0,
    };
    chunks
        .iter()
        .filter_map(|c| {
            let p = c.quality.psnr;
            let why = if settings.min_psnr.is_some_and(|floor| p < floor) {
                format!(
                    "PSNR {p:.2} dB is under the job's floor of {:.2} dB",
                    settings.min_psnr.unwrap_or_default()
                )
            } else if chunks.len() > 1 && p < median - settings.outlier_db {
                format!(
                    "PSNR {p:.2} dB is {:.2} dB under the median chunk's {median:.2} dB",
                    median - p
                )
            } else {
                return None;
            };
            Some((c, why))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(psnr: f64, first: f64, last: f64) -> ChunkQuality {
        ChunkQuality {
            frames: 50,
            seconds: 2.0,
            psnr,
            psnr_first: first,
            psnr_last: last,
            ..Default::default()
        }
    }

    fn m<'a>(chunk: u32, quality: &'a ChunkQuality, reencoded: bool) -> Measured<'a> {
        Measured {
            task_id: "t",
            chunk,
            worker_id: "w",
            quality,
            bytes: 1000,
            reencoded,
        }
    }

    #[test]
    fn a_cut_in_the_content_is_not_a_seam_but_a_restart_is() {
        // Still (48 dB throughout) then motion (34 dB throughout): a cut.
        let (still, motion) = (q(48.0, 48.0, 48.0), q(34.0, 34.2, 34.0));
        assert!(seams(&[m(0, &still, false), m(1, &motion, false)], 1.0).is_empty());
        // The motion chunk's first second 3 dB above its level: a restart.
        let restart = q(34.0, 37.0, 34.0);
        let flagged = seams(&[m(0, &still, false), m(1, &restart, false)], 1.0);
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].chunk, 1);
        assert!((flagged[0].step_db - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_chunk_far_under_the_median_is_reencoded_once() {
        let (good, bad) = (q(40.0, 40.0, 40.0), q(20.0, 20.0, 20.0));
        let settings = QualitySettings::default();
        let chunks = [m(0, &good, false), m(1, &bad, false), m(2, &good, false)];
        let found = outliers(&chunks, &settings);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.chunk, 1);
        assert!(
            found[0].1.contains("20.00 dB under the median"),
            "{}",
            found[0].1
        );
        // 5 dB under is within the default 6 dB.
        let fair = q(35.0, 35.0, 35.0);
        let chunks = [m(0, &good, false), m(1, &fair, false), m(2, &good, false)];
        assert!(outliers(&chunks, &settings).is_empty());
        // A floor catches what the median cannot.
        let floor = QualitySettings {
            min_psnr: Some(45.0),
            ..Default::default()
        };
        assert_eq!(outliers(&chunks, &floor).len(), 3);
    }
}
