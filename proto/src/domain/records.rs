//! Job and task states, attempts and their outcomes, costs, audit logs,
//! and the job as a client sees it (`JobView`).

use serde::{Deserialize, Serialize};

use super::{Capacity, JobSpec, RenditionQuality, TaskKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
    Queued,
    Running,
    Committing,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Waiting for the tasks it depends on.
    Blocked,
    Pending,
    Leased,
    Done,
    Failed,
    Cancelled,
}

/// How an attempt ended, or `Running` while it runs. Stored and sent as
/// the lowercase word (`"done"`), as the Redis scripts write it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    #[default]
    Running,
    Done,
    Failed,
    /// Its lease ran out.
    Expired,
    /// A spot notice or shutdown handed it back.
    Interrupted,
    /// Its worker never received the lease.
    Released,
    /// Its job ended while it ran.
    Cancelled,
    /// Its result was thrown away: the rendition restarted under another
    /// encoder identity. Counted as waste.
    Discarded,
    /// Its chunk fell short of the job's quality checks and was encoded
    /// again. Counted as waste.
    Rejected,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Running => "running",
            AttemptOutcome::Done => "done",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Expired => "expired",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::Released => "released",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Discarded => "discarded",
            AttemptOutcome::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt at a task, kept for the job record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub worker_id: String,
    pub started_unix_ms: i64,
    pub ended_unix_ms: i64,
    pub outcome: AttemptOutcome,
    pub error: String,
    /// The pool of the worker that made the attempt.
    #[serde(default)]
    pub pool: String,
    /// Size of the attempt's audit log; 0 when there is none.
    #[serde(default)]
    pub log_bytes: u64,
    /// The pool's price for the slot share this attempt held, $/h.
    #[serde(default)]
    pub rate_per_hour: f64,
    #[serde(default)]
    pub on_demand: bool,
    /// NVENC sessions the attempt held (renditions), 0 off NVENC.
    #[serde(default)]
    pub sessions: u32,
    /// `rate_per_hour` × wall time, set when the attempt ends.
    #[serde(default)]
    pub cost_dollars: f64,
    /// An encode attempt's encoder identity per rendition (names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<String>,
    /// A rejected chunk's mean PSNR per output (0: not measured), which
    /// its re-encode is compared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_psnr: Vec<f64>,
}

impl AttemptRecord {
    /// The attempt's cost so far: its final cost once it ended, else its
    /// rate × the time since it started.
    pub fn cost_at(&self, now_ms: i64) -> f64 {
        if self.ended_unix_ms != 0 {
            self.cost_dollars
        } else {
            self.rate_per_hour * (now_ms - self.started_unix_ms).max(0) as f64 / 3_600_000.0
        }
    }
}

/// What a job has cost so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobCost {
    pub spot_dollars: f64,
    pub on_demand_dollars: f64,
    /// Of the above: interrupted, failed, expired and cancelled attempts.
    pub wasted_dollars: f64,
    /// Output seconds of every rendition.
    pub output_seconds: f64,
    pub dollars_per_output_minute: f64,
    /// Bytes of the committed outputs.
    #[serde(default)]
    pub output_bytes: u64,
}

/// Interruption counts by pool name.
pub type PoolCounts = std::collections::BTreeMap<String, u32>;

/// One attempt's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLog {
    pub task_id: String,
    pub attempt: u32,
    pub worker_id: String,
    pub pool: String,
    pub outcome: String,
    pub error: String,
    pub started_unix_ms: i64,
    pub ended_unix_ms: i64,
    pub log: String,
}

impl TaskLog {
    /// The most log text kept per attempt: the tail, where an encoder says
    /// how it ended.
    pub const MAX_BYTES: usize = 32 * 1024;

    /// Keeps the last [`TaskLog::MAX_BYTES`] of `log`, cut at a character
    /// boundary.
    pub fn clamp(log: &str) -> &str {
        if log.len() <= Self::MAX_BYTES {
            return log;
        }
        let mut start = log.len() - Self::MAX_BYTES;
        while !log.is_char_boundary(start) {
            start += 1;
        }
        &log[start..]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub task_id: String,
    pub kind: TaskKind,
    pub state: TaskState,
    pub chunk: u32,
    pub attempts: u32,
    pub worker_id: String,
    pub frames_done: u64,
    pub frames_total: u64,
    pub history: Vec<AttemptRecord>,
    pub partition: Capacity,
    /// Interruptions of this task by pool.
    pub interruptions: PoolCounts,
}

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    pub spec: JobSpec,
    pub state: JobState,
    pub error: String,
    pub created_unix_ms: i64,
    pub updated_unix_ms: i64,
    pub finished_unix_ms: i64,
    pub frames_total: u64,
    pub frames_done: u64,
    pub chunks_total: u32,
    pub chunks_done: u32,
    pub tasks: Vec<TaskSummary>,
    /// Interruptions of the job's tasks by pool.
    pub interruptions: PoolCounts,
    pub cost: JobCost,
    /// What the outputs leave out of the source, and why, one line each.
    pub left_out: Vec<String>,
    /// The encoder identity each rendition is pinned to (names); empty
    /// before the first chunk was leased.
    pub identities: Vec<String>,
    /// Each restart under another identity: why, and what it discarded.
    pub restarts: Vec<String>,
    /// Each output's measured quality; empty while no chunk was measured.
    pub quality: Vec<RenditionQuality>,
}
