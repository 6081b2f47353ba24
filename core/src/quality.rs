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
    /// The worker that made the done attempt, and its number.
    pub worker_id: &'a str,
    pub attempt: u32,
    pub quality: &'a ChunkQuality,
    pub bytes: u64,
    /// The chunk's mean PSNR in every output (0: not measured).
    pub psnr_by_output: Vec<f64>,
    /// The attempt the guard rejected, when it re-encoded the chunk.
    pub rejected: Option<Rejected<'a>>,
}

/// A rejected attempt of a chunk, as its re-encode is judged against it.
#[derive(Debug, Clone)]
pub struct Rejected<'a> {
    pub worker_id: &'a str,
    pub attempt: u32,
    /// Its mean PSNR in the output being judged (0: not measured).
    pub psnr: f64,
    pub reason: &'a str,
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
            let all: Vec<&spotenc_proto::domain::OutputObject> =
                std::iter::once(obj).chain(obj.renditions.iter()).collect();
            let done = t
                .history
                .iter()
                .rev()
                .find(|a| a.outcome == AttemptOutcome::Done)?;
            let rejected = t
                .history
                .iter()
                .rev()
                .find(|a| a.outcome == AttemptOutcome::Rejected)
                .map(|a| Rejected {
                    worker_id: &a.worker_id,
                    attempt: a.attempt,
                    psnr: a.rejected_psnr.get(rendition).copied().unwrap_or(0.0),
                    reason: &a.error,
                });
            Some(Measured {
                task_id: &t.id,
                chunk: t.chunk,
                worker_id: &done.worker_id,
                attempt: done.attempt,
                quality: all.get(rendition)?.quality.as_ref()?,
                bytes: all.get(rendition)?.size_bytes,
                psnr_by_output: all
                    .iter()
                    .map(|o| o.quality.as_ref().map_or(0.0, |q| q.psnr))
                    .collect(),
                rejected,
            })
        })
        .collect();
    out.sort_by_key(|m| m.chunk);
    out
}

/// Each output's report, in the order of the outputs; empty when no chunk
/// was measured.
pub fn report(spec: &JobSpec, tasks: &[TaskRecord]) -> Vec<RenditionQuality> {
    let mut out = Vec::new();
    for (r, (output, _, _)) in spec.outputs().into_iter().enumerate() {
        let chunks = measured(tasks, r);
        if chunks.is_empty() {
            continue;
        }
        let mut q = summarise(&chunks);
        q.output = output.to_string();
        q.seams = seams(&chunks, spec.quality.seam_step_db);
        q.reencoded = chunks
            .iter()
            .filter_map(|c| {
                let rej = c.rejected.as_ref()?;
                Some(Reencode {
                    chunk: c.chunk,
                    worker_id: rej.worker_id.to_string(),
                    reason: format!(
                        "{}; encoded again by worker {} at {:.2} dB here{}",
                        rej.reason,
                        c.worker_id,
                        c.quality.psnr,
                        match compare(c, rej) {
                            Retry::Better => " (the rejected chunk was faulty)",
                            Retry::Reproduced if rej.worker_id == c.worker_id => {
                                " (reproduced by the same worker, as no other could take it: \
                                 kept, unchecked)"
                            }
                            Retry::Reproduced => " (reproduced: the content, not a fault)",
                            Retry::Worse => " (worse)",
                        }
                    ),
                })
            })
            .collect();
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
    /// The chunk's mean PSNR per output (0: not measured), kept with the
    /// rejected attempt for its re-encode to be compared with.
    pub psnr: Vec<f64>,
}

/// What the guard decided for a job whose chunks are all done.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Stitch.
    Clean,
    /// Encode these chunks again, each on another worker than the one
    /// named.
    Reencode(Vec<Outlier>),
    /// A chunk was short again after its re-encode, and not because of its
    /// content: the job fails with this message, which names it.
    Fail(String),
}

/// A rejected chunk counted against the worker that made it, once per
/// `key` (the chunk and the worker) however often it is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Strike {
    pub worker_id: String,
    pub key: String,
    /// Starts with the key.
    pub reason: String,
}

/// The guard's verdict and the strikes it found.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub strikes: Vec<Strike>,
}

/// How far apart (dB) a chunk and its re-encode on another worker may be
/// for the re-encode to reproduce it.
pub const REPRODUCED_DB: f64 = 1.0;

/// What a re-encode says of the chunk it replaced.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Retry {
    /// Better by more than [`REPRODUCED_DB`]: the rejected chunk was
    /// faulty.
    Better,
    /// Within [`REPRODUCED_DB`]: that is what the identity makes of the
    /// content (checked by another worker, unless none could take it).
    Reproduced,
    /// Worse by more than [`REPRODUCED_DB`] (or the first was not
    /// measured in this output).
    Worse,
}

fn compare(c: &Measured<'_>, rej: &Rejected<'_>) -> Retry {
    if rej.psnr <= 0.0 {
        Retry::Worse
    } else if c.quality.psnr - rej.psnr > REPRODUCED_DB {
        Retry::Better
    } else if (c.quality.psnr - rej.psnr).abs() <= REPRODUCED_DB {
        Retry::Reproduced
    } else {
        Retry::Worse
    }
}

/// The guard's verdict over every output of a job. A short chunk is
/// encoded again once, on another worker when there is one, and the
/// re-encode arbitrates: better by more than [`REPRODUCED_DB`] counts a
/// strike against the first worker; better or the same is what a sound
/// worker makes of the content and is kept, unless under the job's floor
/// (the job fails, no strike); worse and still short fails the job with a
/// strike against both. A worker gets at most one strike per chunk. (A
/// fault that reproduces on every worker looks like content to this rule:
/// a job that must not ship such a chunk sets a floor, `min_psnr`.)
pub fn judge(spec: &JobSpec, tasks: &[TaskRecord]) -> Judgement {
    let (mut redo, mut strikes, mut fail) = (Vec::<Outlier>::new(), Vec::new(), None);
    for (r, (output, _, _)) in spec.outputs().into_iter().enumerate() {
        let chunks = measured(tasks, r);
        let median = median(&chunks);
        for c in &chunks {
            let short = shortfall(c.quality.psnr, median, chunks.len(), &spec.quality);
            // One strike per worker and chunk, whichever outputs and
            // rounds found it: the key says which.
            let mut strike = |worker: &str, psnr: f64, what: &str| {
                let key = format!("chunk {} ({}) by worker {worker}", c.chunk, c.task_id);
                if !strikes.iter().any(|s: &Strike| s.key == key) {
                    strikes.push(Strike {
                        worker_id: worker.to_string(),
                        reason: format!("{key}: {psnr:.2} dB in {output}, {what}"),
                        key,
                    });
                }
            };
            match (&c.rejected, short) {
                (None, None) => {}
                (None, Some((why, _))) => {
                    if !redo.iter().any(|o| o.task_id == c.task_id) {
                        redo.push(Outlier {
                            task_id: c.task_id.to_string(),
                            chunk: c.chunk,
                            worker_id: c.worker_id.to_string(),
                            reason: format!(
                                "chunk {} of {output}: {why} (made by worker {})",
                                c.chunk, c.worker_id
                            ),
                            psnr: c.psnr_by_output.clone(),
                        });
                    }
                }
                (Some(rej), short) => {
                    let retry = compare(c, rej);
                    if retry == Retry::Better {
                        let what = format!(
                            "{:.2} dB when worker {} encoded it again",
                            c.quality.psnr, c.worker_id
                        );
                        strike(rej.worker_id, rej.psnr, &what);
                    }
                    let Some((why, floor)) = short else {
                        continue;
                    };
                    // A re-encode better than or as good as the first is
                    // what a sound worker makes of this content: kept,
                    // unless the job's floor says otherwise.
                    if retry == Retry::Worse {
                        let what = "short again, worse when encoded a second time";
                        strike(rej.worker_id, rej.psnr, what);
                        strike(c.worker_id, c.quality.psnr, what);
                    } else if !floor {
                        continue;
                    }
                    fail.get_or_insert(format!(
                        "chunk {} of {output}: {why}, again after it was encoded a second time \
                         (first by worker {} at {:.2} dB, then by worker {})",
                        c.chunk, rej.worker_id, rej.psnr, c.worker_id
                    ));
                }
            }
        }
    }
    let verdict = match (fail, redo.is_empty()) {
        (Some(msg), _) => Verdict::Fail(msg),
        (None, false) => Verdict::Reencode(redo),
        (None, true) => Verdict::Clean,
    };
    Judgement { verdict, strikes }
}

/// The median of the chunks' mean PSNRs.
fn median(chunks: &[Measured<'_>]) -> f64 {
    let mut psnr: Vec<f64> = chunks.iter().map(|c| c.quality.psnr).collect();
    psnr.sort_by(f64::total_cmp);
    match psnr.len() {
        0 => 0.0,
        n if n % 2 == 1 => psnr[n / 2],
        n => (psnr[n / 2 - 1] + psnr[n / 2]) / 2.0,
    }
}

/// Why a chunk's PSNR `p` is short, and whether it is under the job's
/// floor (rather than `outlier_db` under the median of `n` chunks).
fn shortfall(p: f64, median: f64, n: usize, settings: &QualitySettings) -> Option<(String, bool)> {
    if let Some(floor) = settings.min_psnr.filter(|&f| p < f) {
        Some((
            format!("PSNR {p:.2} dB is under the job's floor of {floor:.2} dB"),
            true,
        ))
    } else if n > 1 && p < median - settings.outlier_db {
        Some((
            format!(
                "PSNR {p:.2} dB is {:.2} dB under the median chunk's {median:.2} dB",
                median - p
            ),
            false,
        ))
    } else {
        None
    }
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

    fn m<'a>(chunk: u32, worker: &'a str, quality: &'a ChunkQuality) -> Measured<'a> {
        Measured {
            task_id: "t",
            chunk,
            worker_id: worker,
            attempt: 2,
            quality,
            bytes: 1000,
            psnr_by_output: vec![quality.psnr],
            rejected: None,
        }
    }

    fn rejected(worker: &str, psnr: f64) -> Rejected<'_> {
        Rejected {
            worker_id: worker,
            attempt: 1,
            psnr,
            reason: "short",
        }
    }

    #[test]
    fn a_cut_in_the_content_is_not_a_seam_but_a_restart_is() {
        // Still (48 dB throughout) then motion (34 dB throughout): a cut.
        let (still, motion) = (q(48.0, 48.0, 48.0), q(34.0, 34.2, 34.0));
        assert!(seams(&[m(0, "a", &still), m(1, "a", &motion)], 1.0).is_empty());
        // The motion chunk's first second 3 dB above its level: a restart.
        let restart = q(34.0, 37.0, 34.0);
        let flagged = seams(&[m(0, "a", &still), m(1, "a", &restart)], 1.0);
        assert_eq!(flagged.len(), 1);
        assert_eq!(flagged[0].chunk, 1);
        assert!((flagged[0].step_db - 3.0).abs() < 1e-9);
    }

    #[test]
    fn short_means_under_the_floor_or_far_under_the_median() {
        let settings = QualitySettings::default();
        let (why, floor) = shortfall(20.0, 40.0, 3, &settings).unwrap();
        assert!(why.contains("20.00 dB under the median") && !floor, "{why}");
        // 5 dB under is within the default 6 dB; a single chunk has no
        // median to be under.
        assert!(shortfall(35.0, 40.0, 3, &settings).is_none());
        assert!(shortfall(10.0, 10.0, 1, &settings).is_none());
        // A floor catches what the median cannot.
        let floor = QualitySettings {
            min_psnr: Some(45.0),
            ..Default::default()
        };
        assert!(shortfall(40.0, 40.0, 3, &floor).unwrap().1);
    }

    #[test]
    fn a_re_encode_is_better_reproduced_or_neither() {
        let again = q(40.0, 40.0, 40.0);
        let c = m(1, "b", &again);
        assert_eq!(compare(&c, &rejected("a", 12.0)), Retry::Better);
        assert_eq!(compare(&c, &rejected("a", 39.5)), Retry::Reproduced);
        // The same worker reproducing itself (none other could take it).
        assert_eq!(compare(&c, &rejected("b", 39.5)), Retry::Reproduced);
        // Worse again on another worker.
        assert_eq!(compare(&c, &rejected("a", 45.0)), Retry::Worse);
    }
}
