//! What [`State`] answers without changing: the candidate window, the
//! planner's backlog, leases and sessions by worker, live workers, pool
//! statistics, queue depth, attempt logs, and (tests) the index checked
//! against a scan.

use std::collections::BTreeMap;

use spotenc_proto::domain::TaskLog;
use spotenc_proto::domain::{AttemptOutcome, Capacity, Priority};
use spotenc_proto::Result;

use super::{log_key, not_found, task_log, PoolStat, State};
use crate::cost::capacity::BacklogItem;
use crate::cost::place::Candidate;
use crate::state::index::Window;
use crate::state::WorkerRecord;

impl State {
    /// Pending tasks of live jobs as placement candidates, windowed.
    pub fn candidates(&self, per_class: usize) -> Vec<Candidate<'_>> {
        self.candidates_in(per_class, false)
    }

    /// [`State::candidates`], of the spot partition only when `spot_only`.
    pub(super) fn candidates_in(&self, per_class: usize, spot_only: bool) -> Vec<Candidate<'_>> {
        let mut all = self.window_of(per_class, spot_only).into_vec();
        // Already the oldest `per_class` of each queue: only the order of
        // the whole window is left to set, as `window` would.
        all.sort_by_key(|c| c.order);
        all
    }

    /// [`State::candidates_in`] in no particular order.
    /// On the stack while it fits [`Window`]'s room (a lease's window of one
    /// or two queues does), so a lease allocates no candidate list.
    pub(super) fn window_of(&self, per_class: usize, spot_only: bool) -> Window<'_> {
        // The index holds what a candidate is (its job's priority and
        // demand too): no record is looked up.
        let mut out = Window::new();
        self.index.window_into(per_class, spot_only, &mut out);
        out
    }

    /// Pending and running work for the capacity planner, summed by
    /// [`crate::cost::capacity::aggregate`].
    pub fn backlog(&self) -> Vec<BacklogItem> {
        self.index.backlog()
    }

    /// [`State::backlog`] by a scan of every pending and leased task, as
    /// it was before the index summed it.
    pub fn backlog_by_scan(&self) -> Vec<BacklogItem> {
        use crate::cost::capacity::aggregate;
        let pending = self.index.all_pending().map(|id| (id, false));
        let running = self.index.all_leased().map(|id| (id, true));
        aggregate(pending.chain(running).filter_map(|(id, running)| {
            let t = self.tasks.get(id)?;
            let latency = self
                .jobs
                .get(t.job_id.as_str())
                .is_some_and(|j| j.spec.priority == Priority::Latency);
            let running_on = running.then(|| t.history.last().map_or("", |a| a.pool.as_str()));
            Some((
                &t.demand,
                latency,
                t.partition == Capacity::OnDemand,
                t.pending_since_ms,
                running_on,
            ))
        }))
    }

    /// Leased tasks per worker.
    pub fn leases_by_worker(&self) -> BTreeMap<String, u32> {
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for t in self.index.all_leased().filter_map(|id| self.tasks.get(id)) {
            *out.entry(t.worker_id.to_string()).or_default() += 1;
        }
        out
    }

    /// NVENC sessions the tasks leased to a worker hold.
    pub fn sessions_held(&self, worker_id: &str) -> u32 {
        self.index
            .leased_by(worker_id)
            .filter_map(|id| self.tasks.get(id)?.history.last().map(|a| a.sessions))
            .sum()
    }

    /// Workers that asked for work at or after `since_ms`.
    pub fn live_workers(&self, since_ms: i64) -> Vec<WorkerRecord> {
        let mut live: Vec<WorkerRecord> = self
            .seen
            .iter()
            .filter(|(_, t)| **t >= since_ms)
            .filter_map(|(id, _)| self.workers.get(id).cloned())
            .collect();
        // By id, whatever order the map holds them in.
        live.sort_by(|a, b| a.id.cmp(&b.id));
        live
    }

    /// Interruptions and worker-seconds of ended attempts, by pool.
    pub fn pool_stats(&self) -> BTreeMap<String, PoolStat> {
        // Milliseconds summed as integers: the same total in any order.
        let mut sums: BTreeMap<String, (u32, i64)> = BTreeMap::new();
        for t in self.tasks.values() {
            for a in t.history.iter().filter(|a| a.ended_unix_ms != 0) {
                let s = sums.entry(a.pool.to_string()).or_default();
                if a.outcome == AttemptOutcome::Interrupted {
                    s.0 += 1;
                }
                s.1 += (a.ended_unix_ms - a.started_unix_ms).max(0);
            }
        }
        sums.into_iter()
            .map(|(pool, (interruptions, ms))| {
                (
                    pool,
                    PoolStat {
                        interruptions,
                        attempt_seconds: ms as f64 / 1000.0,
                    },
                )
            })
            .collect()
    }

    /// Pending tasks of live jobs: (spot, on-demand).
    pub fn queue_depth(&self) -> (u64, u64) {
        self.index.depth()
    }

    /// The audit logs of a job's attempts (of one task when `task_id` is
    /// not empty), in task then attempt order.
    pub fn task_logs(&self, job_id: &str, task_id: &str) -> Result<Vec<TaskLog>> {
        let job = self
            .jobs
            .get(job_id)
            .ok_or_else(|| not_found("job", job_id))?;
        if !task_id.is_empty() && !job.task_ids.iter().any(|t| t == task_id) {
            return Err(not_found("task", task_id));
        }
        let mut out = Vec::new();
        for id in job
            .task_ids
            .iter()
            .filter(|t| task_id.is_empty() || *t == task_id)
        {
            for a in &self.tasks[id.as_str()].history {
                if let Some(log) = self.logs.get(&log_key(id, a.attempt)) {
                    out.push(task_log(id, a, log.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Checks the index's sums and escalation times against a scan of
    /// every task (for tests: the simulator's tests run it on every tick).
    pub fn check_index(&self, now_ms: i64) {
        assert_eq!(
            self.backlog(),
            self.backlog_by_scan(),
            "backlog at {now_ms}"
        );
        let by_scan: Vec<&str> = self
            .index
            .all_pending()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| self.waited_too_long(t, now_ms))
            .map(|t| t.id.as_str())
            .collect();
        assert_eq!(
            self.index.escalations_due(now_ms),
            by_scan,
            "escalations at {now_ms}"
        );
        // Every pending task as the window shows it, against its records.
        for c in self.window_of(usize::MAX, false) {
            let t = &self.tasks[c.task_id.as_ref()];
            let job = &self.jobs[t.job_id.as_str()];
            let record = (
                t.state,
                t.partition,
                t.pending_since_ms,
                &t.demand,
                job.spec.priority == Priority::Latency,
                job.seq,
            );
            let window = (
                spotenc_proto::domain::TaskState::Pending,
                c.partition,
                c.pending_since_ms,
                c.demand.as_ref(),
                c.latency,
                c.job,
            );
            assert_eq!(window, record, "{} in the window at {now_ms}", t.id);
        }
    }
}
