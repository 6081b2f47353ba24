//! Encoder affinity in the state: a job's renditions are pinned to the
//! encoder identities of the worker that leases its first encode chunk
//! (chunks of one rendition stitch into one track only when one identity
//! made them all), and a job whose identities no live worker serves
//! restarts under whichever identity leases next.

use spotenc_proto::domain::{AttemptOutcome, JobState, TaskKind, TaskState};
use spotenc_proto::Result;

use super::records::{close_attempt, relabel_done};
use super::{not_found, State};
use crate::state::{JobRecord, PinnedJob, Transition};

/// Pins `job` to `identities` (one name per output) if it is not pinned
/// yet; placement keeps every later chunk to the same names.
pub(super) fn pin(job: &mut JobRecord, identities: Vec<String>) {
    if job.identities.is_empty() && !identities.is_empty() {
        job.identities = identities;
    } else {
        debug_assert!(
            identities.is_empty() || job.identities == identities,
            "placement broke the pin of {}",
            job.id
        );
    }
}

impl State {
    /// Running jobs pinned to identities that have encode chunks waiting,
    /// each with one waiting chunk's demand (what a worker must be able to
    /// run to serve the pin).
    pub fn pinned_waiting(&self) -> Vec<PinnedJob> {
        let mut out: Vec<PinnedJob> = self
            .jobs
            .values()
            .filter(|j| !j.identities.is_empty() && !j.state.is_terminal())
            .filter_map(|j| {
                let waiting = j.task_ids.iter().find_map(|id| {
                    let t = self.tasks.get(id.as_str())?;
                    (t.kind == TaskKind::Encode && t.state == TaskState::Pending).then_some(t)
                })?;
                Some(PinnedJob {
                    job_id: j.id.clone(),
                    identities: j.identities.clone(),
                    demand: waiting.demand.clone(),
                    partition: waiting.partition,
                })
            })
            .collect();
        out.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        out
    }

    /// Restarts a job pinned to `expected` under whichever identity leases
    /// next: its done and leased encode chunks go back to pending (leased
    /// ones lose their lease, so a late result is refused as stale), their
    /// attempts end as discarded (waste) with `reason`, and the job records
    /// why. `None` when the job ended or its pin is no longer `expected`
    /// (another replica restarted it first).
    pub fn restart_identity(
        &mut self,
        job_id: &str,
        expected: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Transition>> {
        let job = self
            .jobs
            .get(job_id)
            .ok_or_else(|| not_found("job", job_id))?;
        if job.state.is_terminal()
            || job.state == JobState::Committing
            || job.identities != expected
        {
            return Ok(None);
        }
        // Only while chunks wait and every stitch still waits for them: the
        // last chunk may have been made since the caller looked.
        let tasks: Vec<&crate::state::TaskRecord> = job
            .task_ids
            .iter()
            .filter_map(|id| self.tasks.get(id.as_str()).map(|t| &**t))
            .collect();
        let waiting = tasks
            .iter()
            .any(|t| t.kind == TaskKind::Encode && t.state == TaskState::Pending);
        let stitches_blocked = tasks
            .iter()
            .filter(|t| t.kind == TaskKind::Stitch)
            .all(|t| t.state == TaskState::Blocked);
        if !waiting || !stitches_blocked {
            return Ok(None);
        }
        let (mut chunks, mut dollars) = (0u32, 0.0);
        for id in job.task_ids.clone() {
            let Some(t) = self.tasks.get_mut(id.as_str()) else {
                continue;
            };
            if t.kind != TaskKind::Encode {
                continue;
            }
            let holder = (t.state == TaskState::Leased).then(|| t.worker_id.clone());
            match t.state {
                TaskState::Done => {
                    dollars += relabel_done(t, AttemptOutcome::Discarded, reason)
                        .map_or(0.0, |a| a.cost_dollars);
                    self.index.undone(&id);
                }
                TaskState::Leased => {
                    close_attempt(t, AttemptOutcome::Discarded, reason, now_ms);
                    dollars += t.history.last().map_or(0.0, |a| a.cost_dollars);
                }
                _ => continue,
            }
            t.state = TaskState::Pending;
            t.pending_since_ms = now_ms;
            t.frames_done = 0;
            self.index.sync(t, holder.as_deref());
            chunks += 1;
        }
        let job = self.jobs.get_mut(job_id).expect("looked up above");
        job.identities.clear();
        job.restarts.push(format!(
            "{reason}; restarted under another identity, discarding {chunks} finished or running chunks (${dollars:.4} of waste)"
        ));
        job.updated_unix_ms = now_ms;
        Ok(Some(self.transition(job_id)))
    }
}
