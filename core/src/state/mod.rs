//! Job and task state: the records, the pure transitions over them
//! ([`machine`]) and the machine's derived indexes.
//!
//! - [`machine`]: the transitions as plain functions over an in-memory
//!   [`machine::State`]; no I/O. The stores in `spotenc-store` run them
//!   (embedded) or mirror them in Lua (Redis).
//! - `index`: the machine's derived indexes (pending queues, waiting
//!   dependents, leases by worker).
//! - [`tracked`]: maps that count their changes, for the machine's dirty
//!   sets.

use crate::cost::model::Demand;
pub use machine::PoolStat;

mod index;
pub mod machine;
pub mod tracked;

use serde::{Deserialize, Serialize};
use spotenc_proto::domain::{
    AttemptRecord, Capacity, JobSpec, JobState, JobView, PoolCounts, ProbeInfo, TaskKind,
    TaskOutcome, TaskState, TaskSummary, Work, WorkerInfo,
};

/// A job's or task's id as the state's maps key it: inline up to 24 bytes
/// (the simulator's ids and most others), so a lookup compares the key
/// where the table holds it instead of following a pointer to it, and a
/// new key allocates nothing.
pub type Key = compact_str::CompactString;

/// The job a task belongs to: task ids are `<job>/<name>`.
pub fn job_of(task_id: &str) -> &str {
    task_id.split('/').next().unwrap_or_default()
}

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
    /// The encoder identity names its renditions are pinned to, one per
    /// output, set when its first encode chunk is leased; empty before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// Each restart under another identity: why, and what it discarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restarts: Vec<String>,
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
    /// A chunk the outlier guard sent back avoids the worker that made the
    /// rejected one (for `Policy::avoid_rejected_ms` after it became
    /// pending); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub avoid_worker: String,
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
    /// Why each chunk it made was rejected by the outlier guard; at
    /// [`WorkerRecord::MAX_STRIKES`] it takes no more work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strikes: Vec<String>,
}

impl WorkerRecord {
    /// Rejected chunks after which a worker takes no more work.
    pub const MAX_STRIKES: usize = 2;

    /// Why the worker takes no more work, if it does not.
    pub fn quarantined(&self) -> Option<String> {
        (self.strikes.len() >= Self::MAX_STRIKES).then(|| {
            format!(
                "worker {} takes no more work: {} of its chunks fell short of the quality checks ({})",
                self.id,
                self.strikes.len(),
                self.strikes.join("; ")
            )
        })
    }
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

/// A running job pinned to encoder identities with encode chunks waiting:
/// what the coordinator checks against the live workers.
#[derive(Debug, Clone, PartialEq)]
pub struct PinnedJob {
    pub job_id: String,
    /// One identity name per output.
    pub identities: Vec<String>,
    /// A waiting chunk's demand and partition.
    pub demand: crate::cost::model::Demand,
    pub partition: spotenc_proto::domain::Capacity,
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
    let mut cost = crate::cost::job_cost(
        tasks.iter().flat_map(|t| t.history.iter()),
        job.probe.as_ref().map_or(0.0, |p| {
            p.duration_seconds * job.spec.outputs().len() as f64
        }),
        now_ms,
    );
    cost.output_bytes = tasks
        .iter()
        .filter_map(|t| match &t.result {
            Some(TaskOutcome::Stitch(obj)) => Some(obj.size_bytes),
            _ => None,
        })
        .sum();
    JobView {
        cost,
        identities: job.identities.clone(),
        restarts: job.restarts.clone(),
        quality: crate::quality::report(&job.spec, tasks),
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
