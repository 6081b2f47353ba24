//! Job and task state: the records, and the [`StateStore`] trait whose every
//! method is one atomic transition.
//!
//! The trait is shaped as the transitions the coordinator needs (submit,
//! lease, heartbeat, complete-with-fence, fail, hand back, expire, cancel,
//! finish commit), not as get/put of records: each maps onto one Lua script
//! in a Redis backend, so coordinator replicas cannot race.
//!
//! - [`machine`]: the transitions as plain functions over an in-memory
//!   [`machine::State`]; no I/O.
//! - `index`: the machine's derived indexes (pending queues, waiting
//!   dependents, leases by worker).
//! - [`embedded`]: the file-backed store for one coordinator: the machine
//!   behind a mutex, persisted atomically after every change.
//! - [`redis`]: the shared store for coordinator replicas: one Lua script
//!   per transition (`lua/`).

use std::collections::BTreeMap;

use crate::cost::capacity::BacklogItem;
use crate::cost::model::{Demand, Model, Observation};
use crate::cost::Lease;
pub use machine::PoolStat;

pub mod embedded;
mod index;
pub mod machine;
pub mod redis;
pub mod tracked;

use serde::{Deserialize, Serialize};
use spotenc_proto::domain::{
    AttemptRecord, Capacity, JobSpec, JobState, JobView, LeasedTask, PoolCounts, ProbeInfo,
    TaskKind, TaskLog, TaskOutcome, TaskState, TaskSummary, Work, WorkerInfo,
};
use spotenc_proto::Result;

/// A job's or task's id as the state's maps key it: inline up to 24 bytes
/// (the simulator's ids and most others), so a lookup compares the key
/// where the table holds it instead of following a pointer to it, and a
/// new key allocates nothing.
pub type Key = compact_str::CompactString;

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// Submission order, for first-in first-out leasing.
    pub seq: u64,
    pub spec: JobSpec,
    pub state: JobState,
    pub error: String,
    pub idempotency_key: String,
    pub created_unix_ms: i64,
    pub updated_unix_ms: i64,
    pub finished_unix_ms: i64,
    /// Where this job's intermediate objects live.
    pub work_dir: String,
    pub probe: Option<ProbeInfo>,
    pub task_ids: Vec<String>,
    /// Who submitted it (the token's name; `anonymous` without
    /// authentication), for per-client quotas.
    #[serde(default)]
    pub client: String,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    /// Inline (a [`Key`]): a completion copies it out.
    pub job_id: Key,
    pub kind: TaskKind,
    /// Chunk index for encode tasks, 0 otherwise.
    pub chunk: u32,
    pub work: Work,
    pub state: TaskState,
    /// Tasks that must be done before this one can be leased.
    pub deps: Vec<String>,
    /// The fencing token of the current (or last) lease.
    pub attempt: u32,
    pub failures: u32,
    pub expiries: u32,
    /// Inline (a [`Key`]): every lease writes it.
    pub worker_id: Key,
    pub lease_until_ms: i64,
    pub frames_done: u64,
    pub frames_total: u64,
    pub result: Option<TaskOutcome>,
    pub history: Vec<AttemptRecord>,
    /// Interruptions by the pool of the interrupted worker.
    #[serde(default)]
    pub interruptions: PoolCounts,
    /// The queue partition: spot, or on-demand for latency jobs and
    /// escalated tasks.
    pub partition: Capacity,
    /// When the task last became pending, for wait-based escalation.
    pub pending_since_ms: i64,
    /// What it asks of a slot, for placement and the cost model.
    #[serde(default)]
    pub demand: Demand,
}

/// A task to create, as planning produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: String,
    pub kind: TaskKind,
    pub chunk: u32,
    pub work: Work,
    pub deps: Vec<String>,
    pub frames_total: u64,
    pub demand: Demand,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: String,
    pub info: WorkerInfo,
    pub registered_unix_ms: i64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub jobs: usize,
    pub workers: usize,
}

/// Where a transition left a job, so the coordinator can act on it: commit
/// a job that reached `Committing`, clean up after a failed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub job_id: Key,
    pub state: JobState,
}

/// How an attempt ended without a result: the error (or notice), whether
/// another attempt can help, and the encoder's log of the attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ending {
    pub message: String,
    pub retryable: bool,
    pub log: String,
}

impl Ending {
    pub fn new(message: impl Into<String>, retryable: bool) -> Self {
        Ending {
            message: message.into(),
            retryable,
            log: String::new(),
        }
    }

    /// A worker's failure or hand-back, with the query strings of any URLs
    /// (presigned credentials) redacted before anything stores or logs it.
    pub fn from_worker(message: &str, retryable: bool, log: &str) -> Self {
        use spotenc_proto::redact::redact_urls;
        Ending {
            message: redact_urls(message).into_owned(),
            retryable,
            log: redact_urls(log).into_owned(),
        }
    }
}

/// What the lease TTL and attempt limits are for this coordinator.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lease_ttl_ms: u32,
    /// A task whose lease expires this many times fails its job.
    pub max_expiries: u32,
}

/// The atomic transitions of job and task state.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Creates a job with its probe task, or returns the job an earlier
    /// submission with the same idempotency key created.
    async fn submit(&self, spec: JobSpec, idempotency_key: &str, now_ms: i64) -> Result<JobRecord> {
        self.submit_as(spec, idempotency_key, "", 0, now_ms).await
    }
    /// [`StateStore::submit`] for `client`, refused (`Exhausted`) when the
    /// client already has `max_live` jobs that have not ended (0: no limit).
    async fn submit_as(
        &self,
        spec: JobSpec,
        idempotency_key: &str,
        client: &str,
        max_live: u32,
        now_ms: i64,
    ) -> Result<JobRecord>;
    async fn register_worker(&self, worker: WorkerRecord) -> Result<()>;
    /// Leases the task `lease` places on the worker (see
    /// [`crate::cost::place`]), bumping its fencing token and opening an
    /// attempt priced for the worker's pool.
    async fn lease(
        &self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<Option<LeasedTask>>;
    /// Leases the oldest pending task of the worker's partitions.
    async fn lease_next(&self, worker_id: &str, now_ms: i64) -> Result<Option<LeasedTask>> {
        self.lease(worker_id, &Lease::fifo(), now_ms).await
    }
    /// A registered worker.
    async fn worker(&self, worker_id: &str) -> Result<WorkerRecord>;
    /// Workers that asked for work at or after `since_ms`.
    async fn live_workers(&self, since_ms: i64) -> Result<Vec<WorkerRecord>>;
    /// The cost model's learned samples.
    async fn model(&self) -> Result<Model>;
    /// Adds observations to the cost model, atomically per key.
    async fn learn(&self, observations: &[Observation]) -> Result<()>;
    /// Interruptions and attempt time by pool.
    async fn pool_stats(&self) -> Result<BTreeMap<String, PoolStat>>;
    /// What the capacity planner reads: pending work summed into backlog
    /// items, and leased tasks per worker.
    async fn capacity_inputs(&self) -> Result<(Vec<BacklogItem>, BTreeMap<String, u32>)>;
    /// Extends a lease; `false` means the caller no longer holds it.
    async fn heartbeat(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        frames_done: u64,
        now_ms: i64,
    ) -> Result<bool>;
    /// Records a result if `attempt` is still the task's fencing token; a
    /// probe result comes with the tasks planning made from it.
    async fn complete(
        &self,
        task_id: &str,
        attempt: u32,
        outcome: TaskOutcome,
        follow_ups: Vec<NewTask>,
        now_ms: i64,
    ) -> Result<Transition>;
    /// Records a failed attempt and its log; requeues the task, or fails
    /// the job when the error is final or attempts ran out.
    async fn fail(
        &self,
        task_id: &str,
        attempt: u32,
        failure: &Ending,
        now_ms: i64,
    ) -> Result<Transition>;
    /// Requeues an interrupted task at once, counting the interruption
    /// against the pool of the worker that held it, and keeps its log.
    async fn hand_back(
        &self,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
        now_ms: i64,
    ) -> Result<Transition>;
    /// Retention: drops up to `limit` jobs that ended before `cutoff_ms`
    /// (with their tasks, attempts, logs and idempotency key) and up to
    /// `limit` workers registered before it that have not asked for work
    /// since.
    async fn purge(&self, cutoff_ms: i64, limit: usize) -> Result<Purged>;
    /// Undoes a lease its worker never received (a dropped lease call):
    /// the attempt ends as `released` and the task is pending again, with
    /// nothing counted against it or the worker's pool.
    async fn release(
        &self,
        task_id: &str,
        attempt: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition>;
    /// The audit logs of a job's attempts, of one task when `task_id` is
    /// not empty.
    async fn task_logs(&self, job_id: &str, task_id: &str) -> Result<Vec<TaskLog>>;
    /// Tasks waiting for a worker: (spot, on-demand).
    async fn queue_depth(&self) -> Result<(u64, u64)>;
    async fn expire_leases(&self, now_ms: i64) -> Result<Vec<Transition>>;
    /// Moves spot tasks that waited longer than their job allows to the
    /// on-demand partition; returns their ids.
    async fn escalate_waiting(&self, now_ms: i64) -> Result<Vec<String>>;
    async fn cancel(&self, job_id: &str, now_ms: i64) -> Result<Transition>;
    /// Ends a job in `Committing`: `Ok` once its output is at the final path.
    async fn finish_commit(
        &self,
        job_id: &str,
        outcome: std::result::Result<(), String>,
        now_ms: i64,
    ) -> Result<Transition>;
    async fn job(&self, job_id: &str) -> Result<(JobRecord, Vec<TaskRecord>)>;
    async fn task(&self, task_id: &str) -> Result<TaskRecord>;
    async fn list_jobs(&self, states: &[JobState], limit: usize) -> Result<Vec<JobRecord>>;
}

/// The client's view of a job and its tasks.
pub fn job_view(job: &JobRecord, tasks: &[TaskRecord], now_ms: i64) -> JobView {
    let encodes = tasks.iter().filter(|t| t.kind == TaskKind::Encode);
    let frames_total = job.probe.as_ref().map_or(0, |p| p.video.frame_count);
    let frames_done = encodes
        .clone()
        .map(|t| match t.state {
            TaskState::Done => t.frames_total,
            _ => t.frames_done.min(t.frames_total),
        })
        .sum();
    JobView {
        left_out: job
            .probe
            .as_ref()
            .map_or_else(Vec::new, |p| crate::plan::left_out(&job.spec, p)),
        id: job.id.clone(),
        spec: job.spec.clone(),
        state: job.state,
        error: job.error.clone(),
        created_unix_ms: job.created_unix_ms,
        updated_unix_ms: job.updated_unix_ms,
        finished_unix_ms: job.finished_unix_ms,
        frames_total,
        frames_done,
        chunks_total: encodes.clone().count() as u32,
        chunks_done: encodes.filter(|t| t.state == TaskState::Done).count() as u32,
        cost: crate::cost::job_cost(
            tasks.iter().flat_map(|t| t.history.iter()),
            job.probe.as_ref().map_or(0.0, |p| {
                p.duration_seconds * job.spec.outputs().len() as f64
            }),
            now_ms,
        ),
        interruptions: tasks.iter().fold(PoolCounts::new(), |mut acc, t| {
            for (pool, n) in &t.interruptions {
                *acc.entry(pool.clone()).or_default() += n;
            }
            acc
        }),
        tasks: tasks
            .iter()
            .map(|t| TaskSummary {
                task_id: t.id.clone(),
                kind: t.kind,
                state: t.state,
                chunk: t.chunk,
                attempts: t.attempt,
                worker_id: t.worker_id.to_string(),
                frames_done: t.frames_done,
                frames_total: t.frames_total,
                history: t.history.clone(),
                partition: t.partition,
                interruptions: t.interruptions.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
