//! Secondary indexes over [`super::machine::State`]: pending tasks by
//! partition × queue class in first-in first-out order, the blocked tasks
//! waiting on each task, leased tasks by worker, running jobs' paths, and
//! jobs not ended by client. They are derived data,
//! never persisted ([`super::machine::State::reindex`] rebuilds them after a
//! load), and they turn leasing, unblocking and session counting into
//! lookups instead of scans over every job and task.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap as HashMap;

use spotenc_proto::domain::{Capacity, TaskState};

use super::TaskRecord;

/// A queue: partition (spot first) and the demand's queue class.
pub type QueueKey = (bool, &'static str);

fn queue(t: &TaskRecord) -> QueueKey {
    (t.partition == Capacity::Spot, t.demand.class())
}

#[derive(Debug, Default, Clone)]
pub struct Index {
    /// Pending tasks of live jobs: queue → order → task id.
    pub(crate) pending: BTreeMap<QueueKey, BTreeMap<u64, String>>,
    /// Each task's first-in first-out order (job submission, then position
    /// in the job).
    order: HashMap<String, u64>,
    /// Blocked tasks by the task they wait on.
    dependents: HashMap<String, Vec<String>>,
    /// Leased tasks by worker.
    leased: HashMap<String, BTreeSet<String>>,
    /// Outputs and inputs of jobs still running, to the jobs.
    outputs: HashMap<String, String>,
    inputs: HashMap<String, BTreeSet<String>>,
    /// Jobs not ended, by the client that submitted them (quotas).
    live_by_client: HashMap<String, BTreeSet<String>>,
}

/// Derived data: two states with the same records are equal whatever their
/// indexes hold.
impl PartialEq for Index {
    fn eq(&self, _: &Index) -> bool {
        true
    }
}

impl Index {
    /// Notes a new task at `order`; a blocked one waits on its deps.
    pub fn add(&mut self, t: &TaskRecord, order: u64) {
        self.order.insert(t.id.clone(), order);
        if t.state == TaskState::Blocked {
            for d in &t.deps {
                self.dependents
                    .entry(d.clone())
                    .or_default()
                    .push(t.id.clone());
            }
        }
        self.sync(t, None);
    }

    /// Files `t` under its current state; `was_leased_by` is the worker
    /// that held it before this change, if any.
    pub fn sync(&mut self, t: &TaskRecord, was_leased_by: Option<&str>) {
        let Some(&order) = self.order.get(&t.id) else {
            return;
        };
        self.unfile(&t.id, order, t.demand.class(), was_leased_by);
        match t.state {
            TaskState::Pending => {
                self.pending
                    .entry(queue(t))
                    .or_default()
                    .insert(order, t.id.clone());
            }
            TaskState::Leased => {
                self.leased
                    .entry(t.worker_id.clone())
                    .or_default()
                    .insert(t.id.clone());
            }
            _ => {}
        }
    }

    /// The oldest `n` pending tasks of each queue (of the spot partition
    /// only when `spot_only`), with their order.
    pub fn oldest(&self, n: usize, spot_only: bool) -> impl Iterator<Item = (u64, &str)> + '_ {
        self.pending
            .iter()
            .filter(move |((spot, _), _)| *spot || !spot_only)
            .flat_map(move |(_, m)| m.iter().take(n).map(|(o, id)| (*o, id.as_str())))
    }

    /// Every pending task id.
    pub fn all_pending(&self) -> impl Iterator<Item = &str> + '_ {
        self.pending
            .values()
            .flat_map(|m| m.values().map(String::as_str))
    }

    /// Pending tasks: (spot, on-demand).
    pub fn depth(&self) -> (u64, u64) {
        let mut d = (0, 0);
        for ((spot, _), m) in &self.pending {
            if *spot {
                d.0 += m.len() as u64;
            } else {
                d.1 += m.len() as u64;
            }
        }
        d
    }

    pub fn leased_by(&self, worker: &str) -> impl Iterator<Item = &str> + '_ {
        self.leased
            .get(worker)
            .into_iter()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    pub fn all_leased(&self) -> impl Iterator<Item = &str> + '_ {
        self.leased
            .values()
            .flat_map(|s| s.iter().map(String::as_str))
    }

    pub fn dependents(&self, task: &str) -> &[String] {
        self.dependents.get(task).map_or(&[], Vec::as_slice)
    }

    /// Notes a running job's paths.
    pub fn job_paths(&mut self, job_id: &str, input: &str, outputs: &[&str]) {
        for o in outputs {
            self.outputs.insert(o.to_string(), job_id.to_string());
        }
        self.inputs
            .entry(input.to_string())
            .or_default()
            .insert(job_id.to_string());
    }

    /// Forgets an ended job's paths.
    pub fn end_job_paths(&mut self, job_id: &str, input: &str, outputs: &[&str]) {
        for o in outputs {
            if self.outputs.get(*o).is_some_and(|j| j == job_id) {
                self.outputs.remove(*o);
            }
        }
        if let Some(s) = self.inputs.get_mut(input) {
            s.remove(job_id);
            if s.is_empty() {
                self.inputs.remove(input);
            }
        }
    }

    /// Counts (`live`) or uncounts a job towards its client's quota;
    /// repeating either is harmless.
    pub fn client_job(&mut self, client: &str, job_id: &str, live: bool) {
        if live {
            self.live_by_client
                .entry(client.to_string())
                .or_default()
                .insert(job_id.to_string());
        } else if let Some(s) = self.live_by_client.get_mut(client) {
            s.remove(job_id);
            if s.is_empty() {
                self.live_by_client.remove(client);
            }
        }
    }

    /// Jobs of `client` that have not ended.
    pub fn client_live(&self, client: &str) -> usize {
        self.live_by_client.get(client).map_or(0, BTreeSet::len)
    }

    /// The running job that writes `path`, if any.
    pub fn writer(&self, path: &str) -> Option<&str> {
        self.outputs.get(path).map(String::as_str)
    }

    /// A running job that reads `path`, if any.
    pub fn reader(&self, path: &str) -> Option<&str> {
        self.inputs
            .get(path)
            .and_then(|s| s.iter().next())
            .map(String::as_str)
    }

    /// Takes a task out of the pending queues and its worker's leases.
    fn unfile(&mut self, id: &str, order: u64, class: &'static str, leased_by: Option<&str>) {
        for q in [(true, class), (false, class)] {
            if let Some(m) = self.pending.get_mut(&q) {
                if m.remove(&order).is_some() && m.is_empty() {
                    self.pending.remove(&q);
                }
            }
        }
        if let Some(w) = leased_by {
            if let Some(s) = self.leased.get_mut(w) {
                s.remove(id);
                if s.is_empty() {
                    self.leased.remove(w);
                }
            }
        }
    }

    /// Takes a task out of the queues whatever its state says (before its
    /// partition changes).
    pub fn unqueue(&mut self, t: &TaskRecord) {
        if let Some(&order) = self.order.get(&t.id) {
            self.unfile(&t.id, order, t.demand.class(), None);
        }
    }

    /// Forgets a task that left the state.
    pub fn remove(&mut self, t: &TaskRecord) {
        let leased = (t.state == TaskState::Leased).then_some(t.worker_id.as_str());
        if let Some(order) = self.order.remove(&t.id) {
            self.unfile(&t.id, order, t.demand.class(), leased);
        }
        self.dependents.remove(&t.id);
    }
}
