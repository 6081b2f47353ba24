//! The outlier guard in the state: chunks that fell short of their job's
//! quality checks go back to pending before the stitch, each avoiding the
//! worker that made it, and that worker's strikes.

use spotenc_proto::domain::{AttemptOutcome, JobState, TaskKind, TaskState};
use spotenc_proto::Result;

use super::records::{close_attempt, relabel_done};
use super::{fenced, not_found, State};
use crate::quality::Outlier;
use crate::state::Transition;

impl State {
    /// Sends `outliers` (done encode chunks of the stitch's job) back to
    /// pending, while the stitch's lease `attempt` holds and no stitch of
    /// the job is done: their done attempts end as `rejected` (waste) with
    /// the reason, each chunk avoids the worker that made it, and every
    /// stitch of the job waits for them again (leased ones, this one and
    /// any another replica leased at the same time, are released: their
    /// workers' results are refused as stale). `None` when a stitch is
    /// done or a chunk no longer is.
    pub fn reject_chunks(
        &mut self,
        stitch_id: &str,
        attempt: u32,
        outliers: &[Outlier],
        now_ms: i64,
    ) -> Result<Option<Transition>> {
        let stitch = fenced(&mut self.tasks, stitch_id, attempt)?;
        let job_id = stitch.job_id.clone();
        let job = self
            .jobs
            .get(job_id.as_str())
            .ok_or_else(|| not_found("job", &job_id))?;
        if job.state.is_terminal() || job.state == JobState::Committing {
            return Ok(None);
        }
        let task_ids = job.task_ids.clone();
        let ahead = task_ids.iter().any(|id| {
            id != stitch_id
                && self
                    .tasks
                    .get(id.as_str())
                    .is_some_and(|t| t.kind == TaskKind::Stitch && t.state == TaskState::Done)
        });
        let all_done = outliers.iter().all(|o| {
            self.tasks
                .get(o.task_id.as_str())
                .is_some_and(|t| t.state == TaskState::Done && t.job_id == job_id)
        });
        if ahead || !all_done {
            return Ok(None);
        }
        for o in outliers {
            self.reopen_chunk(o, now_ms);
        }
        for id in &task_ids {
            let Some(t) = self.tasks.get_mut(id.as_str()) else {
                continue;
            };
            if t.kind != TaskKind::Stitch {
                continue;
            }
            let holder = (t.state == TaskState::Leased).then(|| t.worker_id.clone());
            if holder.is_some() {
                close_attempt(
                    t,
                    AttemptOutcome::Released,
                    "the outlier guard sent chunks back to be encoded again",
                    now_ms,
                );
            }
            t.state = TaskState::Blocked;
            self.index.sync(t, holder.as_deref());
        }
        let job = self.jobs.get_mut(job_id.as_str()).expect("looked up above");
        job.updated_unix_ms = now_ms;
        Ok(Some(self.transition(&job_id)))
    }

    /// A done chunk back to pending: its done attempt rejected, its result
    /// dropped, avoiding the worker that made it.
    fn reopen_chunk(&mut self, o: &Outlier, now_ms: i64) {
        let t = self
            .tasks
            .get_mut(o.task_id.as_str())
            .expect("checked by the caller");
        if let Some(a) = relabel_done(t, AttemptOutcome::Rejected, &o.reason) {
            a.rejected_psnr = o.psnr.clone();
        }
        t.state = TaskState::Pending;
        t.pending_since_ms = now_ms;
        t.frames_done = 0;
        t.avoid_worker = o.worker_id.clone();
        self.index.undone(&o.task_id);
        self.index.sync(t, None);
    }

    /// Counts a rejected chunk against the worker that made it, once per
    /// `key` (`reason` starts with it); returns every reason counted (none
    /// for an unknown worker).
    pub fn strike_worker(&mut self, worker_id: &str, key: &str, reason: &str) -> Vec<String> {
        let known = self
            .workers
            .get(worker_id)
            .map(|w| w.strikes.iter().any(|s| s.starts_with(key)));
        match known {
            Some(false) => {
                let w = self.workers.get_mut(worker_id).expect("looked up above");
                w.strikes.push(reason.to_string());
                w.strikes.clone()
            }
            Some(true) => self.workers[worker_id].strikes.clone(),
            None => Vec::new(),
        }
    }
}
