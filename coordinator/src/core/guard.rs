//! The outlier guard, run where a stitch is leased: every chunk of the job
//! is done then, so each output's chunks are judged together
//! ([`spotenc_core::quality::judge`]) before any of them is stitched. Short
//! chunks go back to be encoded again on another worker (once), the
//! workers that made them get a strike, and a chunk short again fails the
//! job. Also the quality metrics of each encoded chunk.

use spotenc_core::quality::{judge, Strike, Verdict};
use spotenc_core::state::{Ending, WorkerRecord};
use spotenc_proto::domain::{LeasedTask, OutputObject, Work, WorkerInfo};
use spotenc_proto::Result;
use tracing::{error, info, warn};

use super::{now_ms, Coordinator, LIVE_MS, VIEW_TTL};

impl Coordinator {
    /// Judges the chunks of a just-leased stitch's job; `false` when the
    /// stitch must not go out (chunks sent back, the job failed, or another
    /// replica's stitch is ahead and this lease was released).
    pub(super) async fn stitch_passes(&self, task: &LeasedTask) -> Result<bool> {
        let (job, tasks) = self.store.job(&task.job_id).await?;
        if !job.spec.quality.metrics {
            return Ok(true);
        }
        let judgement = judge(&job.spec, &tasks);
        for s in &judgement.strikes {
            self.strike(s).await;
        }
        match judgement.verdict {
            Verdict::Clean => Ok(true),
            Verdict::Fail(reason) => {
                warn!(job = %job.id, %reason, "job fails the outlier guard");
                let t = self
                    .store
                    .fail(
                        &task.task_id,
                        task.attempt,
                        &Ending::new(reason, false),
                        now_ms(),
                    )
                    .await?;
                self.after(t).await;
                Ok(false)
            }
            Verdict::Reencode(outliers) => {
                match self
                    .store
                    .reject_chunks(&task.task_id, task.attempt, &outliers, now_ms())
                    .await?
                {
                    Some(t) => {
                        for o in &outliers {
                            info!(job = %job.id, chunk = o.chunk, worker = %o.worker_id, reason = %o.reason, "chunk sent back to be encoded again");
                        }
                        metrics::counter!("spotenc_outlier_reencodes_total")
                            .increment(outliers.len() as u64);
                        self.work_ready.notify_waiters();
                        self.after(t).await;
                    }
                    None => {
                        let why = "another stitch of its job is ahead of the outlier guard";
                        self.release(&task.task_id, task.attempt, why).await;
                    }
                }
                Ok(false)
            }
        }
    }

    /// Counts a rejected chunk against its worker (once: the reason names
    /// the attempt), which takes no more work at the limit.
    async fn strike(&self, s: &Strike) {
        match self
            .store
            .strike_worker(&s.worker_id, &s.key, &s.reason)
            .await
        {
            Ok(strikes) if strikes.len() >= WorkerRecord::MAX_STRIKES => {
                error!(worker = %s.worker_id, strikes = strikes.len(), reason = %s.reason, "worker takes no more work: its chunks keep falling short of the quality checks");
            }
            Ok(_) => warn!(worker = %s.worker_id, reason = %s.reason, "strike against worker"),
            Err(e) => warn!(worker = %s.worker_id, error = %e, "strike not recorded"),
        }
    }

    /// Whether another live worker encodes as `info` does (the same
    /// hardware and operator parameters).
    pub(super) async fn has_peer(&self, worker_id: &str, info: &WorkerInfo) -> Result<bool> {
        let signature = |i: &WorkerInfo| format!("{}|{:?}", i.hardware, i.encoder_params);
        let mut peers = self.peers.lock().await;
        let fresh = peers
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < VIEW_TTL);
        if !fresh {
            let live = self.store.live_workers(now_ms() - LIVE_MS).await?;
            let list = live
                .iter()
                .map(|w| (w.id.clone(), signature(&w.info)))
                .collect();
            *peers = Some((tokio::time::Instant::now(), list));
        }
        let mine = signature(info);
        Ok(peers
            .as_ref()
            .is_some_and(|(_, list)| list.iter().any(|(id, s)| id != worker_id && *s == mine)))
    }

    /// Refuses work to a worker with too many rejected chunks.
    pub(super) async fn check_not_quarantined(&self, worker_id: &str) -> Result<()> {
        let record = self.store.worker(worker_id).await?;
        match record.quarantined() {
            Some(why) => Err(spotenc_proto::Error::PermissionDenied(why)),
            None => Ok(()),
        }
    }

    /// Each measured output of an encoded chunk into the PSNR histogram.
    pub(super) fn record_quality(work: &Work, obj: &OutputObject) {
        let Work::Encode(e) = work else {
            return;
        };
        let codecs =
            std::iter::once(e.video.codec).chain(e.renditions.iter().map(|r| r.video.codec));
        let objects = std::iter::once(obj).chain(obj.renditions.iter());
        for (codec, o) in codecs.zip(objects) {
            if let Some(q) = &o.quality {
                metrics::histogram!("spotenc_chunk_psnr_db", "codec" => codec.name(), "identity" => o.encoder.clone())
                    .record(q.psnr);
            }
        }
    }
}
