//! spotenc-store: where job and task state lives. The [`StateStore`] trait
//! has one method per atomic transition (submit, lease, heartbeat,
//! complete-with-fence, fail, hand back, expire, cancel, finish commit),
//! not get/put of records: each maps onto one Lua script in the Redis
//! backend, so coordinator replicas cannot race.
//!
//! Layout:
//! - [`StateStore`]: the trait; records and the pure transitions come from
//!   `spotenc_core::state`.
//! - [`embedded`]: the file-backed store for one coordinator: the machine
//!   behind a mutex, persisted atomically after every change.
//! - [`redis`]: the shared store for coordinator replicas: one Lua script
//!   per transition (`lua/`, beside `src/`, sharing `lib.lua`).
//! - `tests` (cfg(test)): the contract suite both stores pass, the
//!   differential suite (Redis against the machine), faults, placement,
//!   tracks, and the pure machine's submission and follow-up checks.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use spotenc_core::cost::capacity::BacklogItem;
use spotenc_core::cost::model::{Model, Observation};
use spotenc_core::cost::Lease;
use spotenc_core::quality::Outlier;
use spotenc_core::state::{
    Ending, JobRecord, NewTask, PinnedJob, PoolStat, Purged, TaskRecord, Transition, WorkerRecord,
};
use spotenc_proto::domain::{JobSpec, JobState, LeasedTask, TaskLog, TaskOutcome};
use spotenc_proto::Result;

pub mod embedded;
pub mod redis;

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
    /// [`spotenc_core::cost::place`]), bumping its fencing token and opening an
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
    /// Running jobs pinned to encoder identities with encode chunks
    /// waiting, each with one waiting chunk's demand and partition.
    async fn pinned_waiting(&self) -> Result<Vec<PinnedJob>>;
    /// Restarts a job pinned to `expected` under another identity: its
    /// done and leased chunks go back to pending, their attempts end as
    /// `discarded` (waste) with `reason`, and the job records why. `None`
    /// when the job ended or is no longer pinned to `expected`.
    async fn restart_identity(
        &self,
        job_id: &str,
        expected: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Transition>>;
    /// The outlier guard's re-encode: while `stitch_id`'s lease `attempt`
    /// holds and no stitch of its job is done, the outliers' done chunks go
    /// back to pending (their attempts end as `rejected`, waste, with the
    /// reason), each avoiding the worker that made it, and the job's
    /// stitches wait for them again (leased ones released). `None` when a
    /// stitch is done or a chunk no longer is.
    async fn reject_chunks(
        &self,
        stitch_id: &str,
        attempt: u32,
        outliers: &[Outlier],
        now_ms: i64,
    ) -> Result<Option<Transition>>;
    /// Counts a rejected chunk against the worker that made it, once per
    /// `key`; returns every reason counted (see
    /// [`WorkerRecord::quarantined`]), none for an unknown worker.
    async fn strike_worker(&self, worker_id: &str, key: &str, reason: &str) -> Result<Vec<String>>;
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

#[cfg(test)]
mod tests;
