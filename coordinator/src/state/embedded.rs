//! The embedded store: the [`State`] machine behind a mutex, written to one
//! JSON file after every change.
//!
//! The file is replaced atomically (write a temporary file, fsync, rename,
//! fsync the directory), so a crash leaves either the old state or the new
//! one, never a torn one. A transition whose write fails is undone in
//! memory (the last written state is read back), so a full disk refuses a
//! submission and leaves no ghost job. An exclusive lock on `dir/lock`,
//! held while the store is open, keeps a second coordinator off the same
//! data directory.
//! Heartbeats change only the in-memory lease deadline and progress and are
//! not written on their own; after a restart a running task's lease may
//! expire early, which costs a retry but never a wrong result (fencing).
//! A std `Mutex` is enough: no lock is held across an `.await`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use spotenc_proto::domain::{JobSpec, JobState, LeasedTask, TaskLog, TaskOutcome};
use spotenc_proto::{Error, Result};

use std::collections::BTreeMap;

use super::machine::State;
use super::{
    Ending, JobRecord, Limits, NewTask, PoolStat, StateStore, TaskRecord, Transition, WorkerRecord,
};
use crate::cost::capacity::BacklogItem;
use crate::cost::model::{Model, Observation};
use crate::cost::Lease;

pub struct EmbeddedStore {
    state: Mutex<State>,
    file: Option<PathBuf>,
    /// Held (locked) for the store's lifetime.
    _lock: Option<std::fs::File>,
    work_root: String,
    limits: Limits,
}

impl EmbeddedStore {
    /// Opens (or creates) the store kept in `dir/state.json`; intermediate
    /// objects go under `dir/jobs`.
    pub fn open(dir: &Path, limits: Limits) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", dir.display())))?;
        let lock = lock_dir(dir)?;
        let file = dir.join("state.json");
        let state = read_state(&file)?;
        Ok(EmbeddedStore {
            state: Mutex::new(state),
            file: Some(file),
            _lock: Some(lock),
            work_root: dir.join("jobs").display().to_string(),
            limits,
        })
    }

    /// Runs one transition under the lock and, when `changed` says it may
    /// have changed something, writes the state file before returning. (A
    /// failed transition can still have recorded something, such as a
    /// refused completion's failure.)
    fn apply<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T>,
        changed: impl FnOnce(&Result<T>) -> bool,
    ) -> Result<T> {
        let mut state = self.state.lock().expect("state lock");
        let out = f(&mut state);
        if let (true, Some(file)) = (changed(&out), &self.file) {
            let bytes = serde_json::to_vec(&*state).expect("state serialises");
            if let Err(e) = write_atomically(file, &bytes) {
                // Undo the transition in memory: what is not on disk did
                // not happen.
                match read_state(file) {
                    Ok(durable) => *state = durable,
                    Err(r) => {
                        tracing::error!(error = %r, "cannot reread the state after a failed write")
                    }
                }
                return Err(e);
            }
        }
        out
    }
}

/// The state in `file`, indexed; empty when there is no file yet.
fn read_state(file: &Path) -> Result<State> {
    let mut state: State = match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Internal(format!("read {}: {e}", file.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
        Err(e) => return Err(Error::Internal(format!("read {}: {e}", file.display()))),
    };
    state.reindex();
    Ok(state)
}

/// Takes the exclusive lock on `dir/lock` (released when the file closes,
/// so also when the process dies), or says who holds it.
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("lock");
    let io = |e: std::io::Error| Error::Internal(format!("lock {}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            f.read_to_string(&mut holder).ok();
            return Err(Error::invalid(format!(
                "{} is in use by another coordinator (pid {}): two coordinators on one data \
                 directory would overwrite each other's state; give each its own --data-dir, or \
                 share state through Redis",
                dir.display(),
                holder.trim()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    f.set_len(0).map_err(io)?;
    f.rewind().map_err(io)?;
    write!(f, "{}", std::process::id()).map_err(io)?;
    Ok(f)
}

fn always<T>(_: &Result<T>) -> bool {
    true
}

fn write_atomically(file: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("json.tmp");
    let io = |e: std::io::Error| Error::Internal(format!("write {}: {e}", file.display()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, file).map_err(io)?;
    // The rename is durable once the directory is.
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl StateStore for EmbeddedStore {
    async fn submit_as(
        &self,
        spec: JobSpec,
        key: &str,
        client: &str,
        max_live: u32,
        now_ms: i64,
    ) -> Result<JobRecord> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.apply(
            |s| s.submit_as(spec, key, client, max_live, id, &self.work_root, now_ms),
            |r| r.is_ok(),
        )
    }

    async fn register_worker(&self, worker: WorkerRecord) -> Result<()> {
        self.apply(
            |s| {
                s.register_worker(worker);
                Ok(())
            },
            always,
        )
    }

    async fn lease(
        &self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<Option<LeasedTask>> {
        self.apply(
            |s| s.lease(worker_id, lease, now_ms, self.limits),
            |r| matches!(r, Ok(Some(_))),
        )
    }

    async fn worker(&self, worker_id: &str) -> Result<WorkerRecord> {
        let s = self.state.lock().expect("state lock");
        s.workers
            .get(worker_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("worker {worker_id}")))
    }

    async fn live_workers(&self, since_ms: i64) -> Result<Vec<WorkerRecord>> {
        Ok(self
            .state
            .lock()
            .expect("state lock")
            .live_workers(since_ms))
    }

    async fn model(&self) -> Result<Model> {
        Ok(self.state.lock().expect("state lock").model.clone())
    }

    async fn learn(&self, observations: &[Observation]) -> Result<()> {
        self.apply(
            |s| {
                s.model.learn(observations);
                Ok(())
            },
            always,
        )
    }

    async fn pool_stats(&self) -> Result<BTreeMap<String, PoolStat>> {
        Ok(self.state.lock().expect("state lock").pool_stats())
    }

    async fn capacity_inputs(&self) -> Result<(Vec<BacklogItem>, BTreeMap<String, u32>)> {
        let state = self.state.lock().expect("state lock");
        Ok((state.backlog(), state.leases_by_worker()))
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        frames: u64,
        now_ms: i64,
    ) -> Result<bool> {
        self.apply(
            |s| s.heartbeat(worker_id, task_id, attempt, frames, now_ms, self.limits),
            |_| false,
        )
    }

    async fn complete(
        &self,
        task_id: &str,
        attempt: u32,
        outcome: TaskOutcome,
        follow_ups: Vec<NewTask>,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(
            |s| s.complete(task_id, attempt, outcome, follow_ups, now_ms),
            always,
        )
    }

    async fn fail(
        &self,
        task_id: &str,
        attempt: u32,
        failure: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(|s| s.fail(task_id, attempt, failure, now_ms), always)
    }

    async fn hand_back(
        &self,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(|s| s.hand_back(task_id, attempt, notice, now_ms), always)
    }

    async fn purge(&self, cutoff_ms: i64, limit: usize) -> Result<super::Purged> {
        self.apply(
            |s| Ok(s.purge(cutoff_ms, limit)),
            |p| p.as_ref().is_ok_and(|p| p.jobs + p.workers > 0),
        )
    }

    async fn release(
        &self,
        task_id: &str,
        attempt: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(|s| s.release(task_id, attempt, reason, now_ms), always)
    }

    async fn queue_depth(&self) -> Result<(u64, u64)> {
        Ok(self.state.lock().expect("state lock").queue_depth())
    }

    async fn task_logs(&self, job_id: &str, task_id: &str) -> Result<Vec<TaskLog>> {
        self.state
            .lock()
            .expect("state lock")
            .task_logs(job_id, task_id)
    }

    async fn expire_leases(&self, now_ms: i64) -> Result<Vec<Transition>> {
        self.apply(
            |s| Ok(s.expire_leases(now_ms, self.limits)),
            |r| r.as_ref().is_ok_and(|v| !v.is_empty()),
        )
    }

    async fn escalate_waiting(&self, now_ms: i64) -> Result<Vec<String>> {
        self.apply(
            |s| Ok(s.escalate_waiting(now_ms)),
            |r| r.as_ref().is_ok_and(|v| !v.is_empty()),
        )
    }

    async fn cancel(&self, job_id: &str, now_ms: i64) -> Result<Transition> {
        self.apply(|s| s.cancel(job_id, now_ms), always)
    }

    async fn finish_commit(
        &self,
        job_id: &str,
        outcome: std::result::Result<(), String>,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(|s| s.finish_commit(job_id, outcome, now_ms), always)
    }

    async fn job(&self, job_id: &str) -> Result<(JobRecord, Vec<TaskRecord>)> {
        let s = self.state.lock().expect("state lock");
        let job = s
            .jobs
            .get(job_id)
            .ok_or_else(|| Error::NotFound(format!("job {job_id}")))?
            .clone();
        let tasks = job
            .task_ids
            .iter()
            .filter_map(|t| s.tasks.get(t).cloned())
            .collect();
        Ok((job, tasks))
    }

    async fn task(&self, task_id: &str) -> Result<TaskRecord> {
        let s = self.state.lock().expect("state lock");
        s.tasks
            .get(task_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("task {task_id}")))
    }

    async fn list_jobs(&self, states: &[JobState], limit: usize) -> Result<Vec<JobRecord>> {
        let s = self.state.lock().expect("state lock");
        let mut jobs: Vec<JobRecord> = s
            .jobs
            .values()
            .filter(|j| states.is_empty() || states.contains(&j.state))
            .cloned()
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.seq));
        jobs.truncate(limit);
        Ok(jobs)
    }
}
