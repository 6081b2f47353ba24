//! Rebuilding the derived indexes after a load, and dropping finished
//! jobs with their tasks, logs and keys (the simulator as it goes,
//! retention by age).

use super::super::index::Index;
use super::super::{JobRecord, Purged, TaskRecord};
use super::records::{deps_done, job_traits};
use super::{log_key, task_order, State};

impl State {
    /// Rebuilds the indexes from the records (after a load).
    pub fn reindex(&mut self) {
        let mut index = Index::default();
        let mut jobs: Vec<&JobRecord> = self.jobs.values().map(|j| &**j).collect();
        jobs.sort_by_key(|j| j.seq);
        for j in jobs {
            if !j.state.is_terminal() {
                let outputs: Vec<&str> = j.spec.outputs().into_iter().map(|(o, _, _)| o).collect();
                index.job_paths(&j.id, &j.spec.input, &outputs);
                index.client_job(&j.client, &j.id, true);
            }
            for (i, id) in j.task_ids.iter().enumerate() {
                if let Some(t) = self.tasks.get(id.as_str()) {
                    let done = deps_done(&self.tasks, t);
                    index.add(t, task_order(j.seq, i), job_traits(&j.spec), done);
                }
            }
        }
        self.index = index;
    }

    /// Drops a finished job with its tasks, logs and idempotency key (the
    /// simulator summarises and forgets; retention will too).
    pub fn forget_job(&mut self, job_id: &str) -> Option<JobRecord> {
        self.take_job(job_id).map(|(job, _)| *job)
    }

    /// [`State::forget_job`], handing back the job's tasks too, in the
    /// job's order (the simulator sums them, then frees them on another
    /// thread). The job comes boxed, as it was kept: moving it copies a
    /// pointer, not its 632 bytes.
    pub fn take_job(&mut self, job_id: &str) -> Option<(Box<JobRecord>, Vec<Box<TaskRecord>>)> {
        // A job that ended forgot its paths then (and a load indexes only
        // running jobs').
        if self
            .jobs
            .get(job_id)
            .is_some_and(|j| !j.state.is_terminal())
        {
            self.index_paths(job_id, false);
        }
        let job = self.jobs.remove(job_id)?;
        let mut tasks = Vec::with_capacity(job.task_ids.len());
        for id in &job.task_ids {
            if let Some(t) = self.tasks.remove(id) {
                self.index.remove(&t);
                if !self.logs.is_empty() {
                    for a in &t.history {
                        self.logs.remove(&log_key(id, a.attempt));
                    }
                }
                tasks.push(t);
            }
        }
        if !job.idempotency_key.is_empty() {
            self.idempotency.remove(&job.idempotency_key);
        }
        Some((job, tasks))
    }

    /// Retention: see [`super::StateStore::purge`]. Jobs go oldest-ended
    /// first.
    pub fn purge(&mut self, cutoff_ms: i64, limit: usize) -> Purged {
        let mut ended: Vec<(i64, String)> = self
            .jobs
            .values()
            .filter(|j| j.state.is_terminal() && j.finished_unix_ms < cutoff_ms)
            .map(|j| (j.finished_unix_ms, j.id.clone()))
            .collect();
        ended.sort();
        ended.truncate(limit);
        for (_, id) in &ended {
            self.forget_job(id);
        }
        // Oldest ids first, as when the map was sorted by id.
        let mut dead: Vec<String> = self
            .workers
            .values()
            .filter(|w| {
                let seen = self
                    .seen
                    .get(w.id.as_str())
                    .copied()
                    .unwrap_or(w.registered_unix_ms);
                seen.max(w.registered_unix_ms) < cutoff_ms
            })
            .map(|w| w.id.clone())
            .collect();
        dead.sort_unstable();
        dead.truncate(limit);
        for id in &dead {
            self.workers.remove(id);
            self.seen.remove(id.as_str());
        }
        Purged {
            jobs: ended.len(),
            workers: dead.len(),
        }
    }
}
