//! The embedded store: the [`State`] machine behind a mutex, kept on disk as
//! a snapshot (`state.json`) and an append-only log of changed records
//! (`state.log`).
//!
//! Each transition appends one line to the log: the records it wrote (jobs,
//! tasks, idempotency keys, workers, audit logs, the model when it learned),
//! whole, or `null` for a removed one, and the submission counter; then
//! `fdatasync`s it. So a transition's cost on disk is its own records, not
//! the store's history. [`Tracked`](super::tracked::Tracked) maps find the
//! written records; nothing else is serialised.
//!
//! - **Replay.** Opening reads the snapshot and applies the log's lines in
//!   order. Each line carries whole records, so replaying a line the
//!   snapshot already holds changes nothing: a crash anywhere in compaction
//!   loses nothing. A torn last line (a crash mid-append) is dropped; a bad
//!   line before the last is an error, not a silent loss.
//! - **Compaction.** When the log outgrows the snapshot (and 8 MiB), it is
//!   renamed `state.log.old`, appends go on in a new `state.log`, and a
//!   thread writes a copy of the state as the new snapshot (temporary file,
//!   fsync, rename, fsync the directory), then removes `state.log.old`.
//!   Transitions wait only for the copy (with 100k finished jobs, writing
//!   the snapshot under the lock stalled every call for seconds); memory
//!   holds two states meanwhile. Opening replays `state.log.old` then
//!   `state.log`, and compacts before serving. The amortised cost per byte
//!   of log is O(1).
//! - **Failed writes.** Appends write at the last good length, so a torn
//!   append is overwritten by the next. A transition whose append fails is
//!   undone in memory (the maps keep each written record's value from
//!   before), so a full disk refuses a submission and leaves no ghost job.
//! - **One owner.** An exclusive lock on `dir/lock`, held while the store
//!   is open, keeps a second coordinator off the same data directory.
//!
//! Heartbeats change only the in-memory lease deadline and progress and are
//! not written on their own; after a restart a running task's lease may
//! expire early, which costs a retry but never a wrong result (fencing).
//! A std `Mutex` is enough: no lock is held across an `.await`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use spotenc_proto::domain::{JobSpec, JobState, LeasedTask, TaskLog, TaskOutcome};
use spotenc_proto::{Error, Result};

use crate::StateStore;
use spotenc_core::cost::capacity::BacklogItem;
use spotenc_core::cost::model::{Model, Observation};
use spotenc_core::cost::Lease;
use spotenc_core::quality::Outlier;
use spotenc_core::state::machine::State;
use spotenc_core::state::tracked::{KeyMap, Tracked};
use spotenc_core::state::{
    Ending, JobRecord, Limits, NewTask, PinnedJob, PoolStat, TaskRecord, Transition, WorkerRecord,
};

/// The log is compacted once it is larger than the snapshot and this.
const COMPACT_MIN_BYTES: u64 = 8 << 20;

pub struct EmbeddedStore {
    state: Mutex<State>,
    /// Locked only while `state` is.
    journal: Mutex<Journal>,
    /// Held (locked) for the store's lifetime.
    _lock: std::fs::File,
    work_root: String,
    limits: Limits,
}

/// Where the state is on disk, and how much of it.
struct Journal {
    snapshot: PathBuf,
    log: PathBuf,
    /// The log being folded into the snapshot, while `folding` runs.
    old_log: PathBuf,
    /// Bytes of whole lines in the log.
    log_len: u64,
    snapshot_len: u64,
    /// The log is folded once it is larger than the snapshot and this.
    compact_min: u64,
    /// The thread writing the next snapshot; its answer is the snapshot's
    /// length.
    folding: Option<std::thread::JoinHandle<Result<u64>>>,
}

impl Drop for EmbeddedStore {
    /// Lets a running compaction finish before the directory's lock goes,
    /// so the next opener never races it for the snapshot.
    fn drop(&mut self) {
        let journal = self.journal.get_mut().unwrap_or_else(|p| p.into_inner());
        journal.finish_folding(true);
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store kept in `dir` (`state.json` and
    /// `state.log`); intermediate objects go under `dir/jobs`.
    pub fn open(dir: &Path, limits: Limits) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Internal(format!("create {}: {e}", dir.display())))?;
        let lock = lock_dir(dir)?;
        let mut journal = Journal {
            snapshot: dir.join("state.json"),
            log: dir.join("state.log"),
            old_log: dir.join("state.log.old"),
            log_len: 0,
            snapshot_len: 0,
            compact_min: COMPACT_MIN_BYTES,
            folding: None,
        };
        let (mut state, replayed) = journal.read()?;
        if replayed > 0 {
            journal.compact(&state)?;
        }
        track(&mut state);
        Ok(EmbeddedStore {
            state: Mutex::new(state),
            journal: Mutex::new(journal),
            _lock: lock,
            work_root: dir.join("jobs").display().to_string(),
            limits,
        })
    }

    /// Folds the log once it passes `bytes` (and the snapshot), for tests.
    #[cfg(test)]
    pub(crate) fn compact_at(self, bytes: u64) -> Self {
        self.journal.lock().expect("journal lock").compact_min = bytes;
        self
    }

    /// A copy of the state in memory, for tests.
    #[cfg(test)]
    pub(crate) fn state_now(&self) -> State {
        self.state.lock().expect("state lock").clone()
    }

    /// Runs one transition under the lock and appends what it wrote to the
    /// log before returning. (A failed transition can still have written
    /// something, such as a refused completion's failure.) `learns` says
    /// the transition may change the model, which is written whole.
    fn apply<T>(&self, learns: bool, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut state = self.state.lock().expect("state lock");
        let seq = state.next_seq;
        let model = learns.then(|| state.model.clone());
        let out = f(&mut state);
        let mut journal = self.journal.lock().expect("journal lock");
        let line = delta(&state, learns);
        if let Some(line) = line {
            if let Err(e) = journal.append(&line) {
                // What is not on disk did not happen.
                rollback(&mut state, seq, model);
                return Err(e);
            }
            commit(&mut state);
            journal.finish_folding(false);
            if journal.folding.is_none()
                && journal.log_len > journal.snapshot_len.max(journal.compact_min)
            {
                if let Err(e) = journal.fold(&state) {
                    tracing::warn!(error = %e, "compacting the state log failed; it keeps growing");
                }
            }
        }
        out
    }
}

/// One log line as read back.
#[derive(Deserialize)]
struct Delta {
    next_seq: u64,
    #[serde(default)]
    jobs: BTreeMap<String, Option<Box<JobRecord>>>,
    #[serde(default)]
    tasks: BTreeMap<String, Option<Box<TaskRecord>>>,
    #[serde(default)]
    idempotency: BTreeMap<String, Option<String>>,
    #[serde(default)]
    workers: BTreeMap<String, Option<WorkerRecord>>,
    #[serde(default)]
    logs: BTreeMap<String, Option<String>>,
    #[serde(default)]
    model: Option<Model>,
}

/// The written records of one map, as a log line holds them.
fn written<M: KeyMap>(m: &Tracked<M>) -> BTreeMap<&str, Option<&M::Value>>
where
    M::Value: Clone,
{
    m.written().collect()
}

/// The log line for what the transition wrote; `None` when it wrote
/// nothing.
fn delta(s: &State, learns: bool) -> Option<Vec<u8>> {
    #[derive(Serialize)]
    struct Out<'a, J, T, W> {
        next_seq: u64,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        jobs: BTreeMap<&'a str, Option<&'a J>>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        tasks: BTreeMap<&'a str, Option<&'a T>>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        idempotency: BTreeMap<&'a str, Option<&'a String>>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        workers: BTreeMap<&'a str, Option<&'a W>>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        logs: BTreeMap<&'a str, Option<&'a String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<&'a Model>,
    }
    let out = Out {
        next_seq: s.next_seq,
        jobs: written(&s.jobs),
        tasks: written(&s.tasks),
        idempotency: written(&s.idempotency),
        workers: written(&s.workers),
        logs: written(&s.logs),
        model: learns.then_some(&s.model),
    };
    if out.jobs.is_empty()
        && out.tasks.is_empty()
        && out.idempotency.is_empty()
        && out.workers.is_empty()
        && out.logs.is_empty()
        && out.model.is_none()
    {
        return None;
    }
    let mut line = serde_json::to_vec(&out).expect("records serialise");
    line.push(b'\n');
    Some(line)
}

fn track(s: &mut State) {
    s.jobs.track();
    s.tasks.track();
    s.idempotency.track();
    s.workers.track();
    s.logs.track();
}

fn commit(s: &mut State) {
    s.jobs.commit();
    s.tasks.commit();
    s.idempotency.commit();
    s.workers.commit();
    s.logs.commit();
}

fn rollback(s: &mut State, next_seq: u64, model: Option<Model>) {
    s.jobs.rollback();
    s.tasks.rollback();
    s.idempotency.rollback();
    s.workers.rollback();
    s.logs.rollback();
    s.next_seq = next_seq;
    if let Some(m) = model {
        s.model = m;
    }
    s.reindex();
}

/// Applies one log line's records.
fn replay(s: &mut State, d: Delta) {
    fn put<M: KeyMap>(m: &mut Tracked<M>, records: BTreeMap<String, Option<M::Value>>)
    where
        M::Value: Clone,
    {
        for (k, v) in records {
            match v {
                Some(v) => m.insert(k, v),
                None => m.remove(&k),
            };
        }
    }
    s.next_seq = d.next_seq;
    put(&mut s.jobs, d.jobs);
    put(&mut s.tasks, d.tasks);
    put(&mut s.idempotency, d.idempotency);
    put(&mut s.workers, d.workers);
    put(&mut s.logs, d.logs);
    if let Some(m) = d.model {
        s.model = m;
    }
}

impl Journal {
    /// The snapshot with the log applied, indexed, and how many log lines
    /// there were; empty when there are no files yet.
    fn read(&mut self) -> Result<(State, usize)> {
        let bad = |f: &Path, e: &dyn std::fmt::Display| {
            Error::Internal(format!("read {}: {e}", f.display()))
        };
        let mut state: State = match std::fs::read(&self.snapshot) {
            Ok(bytes) => {
                self.snapshot_len = bytes.len() as u64;
                serde_json::from_slice(&bytes).map_err(|e| bad(&self.snapshot, &e))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(bad(&self.snapshot, &e)),
        };
        let mut lines = 0;
        for file in [&self.old_log, &self.log] {
            let (n, len) = replay_file(&mut state, file)?;
            lines += n;
            self.log_len = len;
        }
        state.reindex();
        Ok((state, lines))
    }

    /// Reaps a finished compaction (or, with `wait`, waits for a running
    /// one).
    fn finish_folding(&mut self, wait: bool) {
        if !self
            .folding
            .as_ref()
            .is_some_and(|h| wait || h.is_finished())
        {
            return;
        }
        match self.folding.take().expect("checked").join() {
            Ok(Ok(len)) => self.snapshot_len = len,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "compacting the state log failed; the next start folds it")
            }
            Err(_) => tracing::error!("the state compaction thread panicked"),
        }
    }

    /// Starts folding the log into a new snapshot: the log becomes the old
    /// log, and a thread writes a copy of `state`. Not while an old log is
    /// left from a compaction that failed (the next start folds both).
    fn fold(&mut self, state: &State) -> Result<()> {
        if self.old_log.exists() {
            return Ok(());
        }
        let io = |e: std::io::Error| Error::Internal(format!("rotate {}: {e}", self.log.display()));
        std::fs::rename(&self.log, &self.old_log).map_err(io)?;
        sync_dir(&self.log).map_err(io)?;
        self.log_len = 0;
        let copy = state.clone();
        let (snapshot, old_log) = (self.snapshot.clone(), self.old_log.clone());
        self.folding = Some(
            std::thread::Builder::new()
                .name("state-compaction".into())
                .spawn(move || {
                    let bytes = serde_json::to_vec(&copy).expect("state serialises");
                    drop(copy);
                    write_atomically(&snapshot, &bytes)?;
                    let io = |e: std::io::Error| {
                        Error::Internal(format!("remove {}: {e}", old_log.display()))
                    };
                    std::fs::remove_file(&old_log).map_err(io)?;
                    sync_dir(&old_log).map_err(io)?;
                    Ok(bytes.len() as u64)
                })
                .map_err(io)?,
        );
        Ok(())
    }

    /// Appends one whole line at the last good length and syncs it.
    fn append(&mut self, line: &[u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let io = |e: std::io::Error| Error::Internal(format!("write {}: {e}", self.log.display()));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.log)
            .map_err(io)?;
        f.write_all_at(line, self.log_len).map_err(io)?;
        let end = self.log_len + line.len() as u64;
        // A torn append that failed earlier may have left bytes past it.
        if f.metadata().map_err(io)?.len() > end {
            f.set_len(end).map_err(io)?;
        }
        f.sync_data().map_err(io)?;
        self.log_len = end;
        Ok(())
    }

    /// Writes the whole state as the snapshot and empties the logs, before
    /// the store serves.
    fn compact(&mut self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec(state).expect("state serialises");
        write_atomically(&self.snapshot, &bytes)?;
        self.snapshot_len = bytes.len() as u64;
        let gone =
            |e: std::io::Error| Error::Internal(format!("remove {}: {e}", self.old_log.display()));
        match std::fs::remove_file(&self.old_log) {
            Ok(()) => sync_dir(&self.old_log).map_err(gone)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(gone(e)),
        }
        let io =
            |e: std::io::Error| Error::Internal(format!("truncate {}: {e}", self.log.display()));
        match std::fs::OpenOptions::new().write(true).open(&self.log) {
            Ok(f) => {
                f.set_len(0).map_err(io)?;
                f.sync_data().map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        self.log_len = 0;
        Ok(())
    }
}

/// Applies the log lines in `file` (none when it does not exist); returns
/// how many, and the length of its whole lines.
fn replay_file(state: &mut State, file: &Path) -> Result<(usize, u64)> {
    let bad = |e: &dyn std::fmt::Display| Error::Internal(format!("read {}: {e}", file.display()));
    let log = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(bad(&e)),
    };
    let mut lines = 0;
    let mut at = 0;
    while at < log.len() {
        let Some(n) = log[at..].iter().position(|&b| b == b'\n') else {
            tracing::warn!(
                bytes = log.len() - at,
                "dropping a torn last line of {} (a crash during a write)",
                file.display()
            );
            break;
        };
        let d: Delta = serde_json::from_slice(&log[at..at + n])
            .map_err(|e| bad(&format!("line {} (byte {at}): {e}", lines + 1)))?;
        replay(state, d);
        lines += 1;
        at += n + 1;
    }
    Ok((lines, at as u64))
}

/// Makes a rename or removal in `file`'s directory durable.
fn sync_dir(file: &Path) -> std::io::Result<()> {
    match file.parent() {
        Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
        None => Ok(()),
    }
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

fn write_atomically(file: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = file.with_extension("json.tmp");
    let io = |e: std::io::Error| Error::Internal(format!("write {}: {e}", file.display()));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, file).map_err(io)?;
    // The rename is durable once the directory is.
    sync_dir(file).map_err(io)
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
        self.apply(false, |s| {
            s.submit_as(spec, key, client, max_live, id, &self.work_root, now_ms)
                .cloned()
        })
    }

    async fn register_worker(&self, worker: WorkerRecord) -> Result<()> {
        self.apply(false, |s| {
            s.register_worker(worker);
            Ok(())
        })
    }

    async fn lease(
        &self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<Option<LeasedTask>> {
        self.apply(false, |s| s.lease(worker_id, lease, now_ms, self.limits))
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
        self.apply(true, |s| {
            s.model.learn(observations);
            Ok(())
        })
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
        // Not written: see the module's doc.
        let mut s = self.state.lock().expect("state lock");
        let out = s.heartbeat(worker_id, task_id, attempt, frames, now_ms, self.limits);
        commit(&mut s);
        out
    }

    async fn complete(
        &self,
        task_id: &str,
        attempt: u32,
        outcome: TaskOutcome,
        follow_ups: Vec<NewTask>,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(false, |s| {
            s.complete(task_id, attempt, outcome, follow_ups, now_ms)
        })
    }

    async fn fail(
        &self,
        task_id: &str,
        attempt: u32,
        failure: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(false, |s| s.fail(task_id, attempt, failure, now_ms))
    }

    async fn hand_back(
        &self,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(false, |s| s.hand_back(task_id, attempt, notice, now_ms))
    }

    async fn purge(&self, cutoff_ms: i64, limit: usize) -> Result<super::Purged> {
        self.apply(false, |s| Ok(s.purge(cutoff_ms, limit)))
    }

    async fn release(
        &self,
        task_id: &str,
        attempt: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(false, |s| s.release(task_id, attempt, reason, now_ms))
    }

    async fn pinned_waiting(&self) -> Result<Vec<PinnedJob>> {
        Ok(self.state.lock().expect("state lock").pinned_waiting())
    }

    async fn restart_identity(
        &self,
        job_id: &str,
        expected: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Transition>> {
        self.apply(false, |s| {
            s.restart_identity(job_id, expected, reason, now_ms)
        })
    }

    async fn reject_chunks(
        &self,
        stitch_id: &str,
        attempt: u32,
        outliers: &[Outlier],
        now_ms: i64,
    ) -> Result<Option<Transition>> {
        self.apply(false, |s| {
            s.reject_chunks(stitch_id, attempt, outliers, now_ms)
        })
    }

    async fn strike_worker(&self, worker_id: &str, key: &str, reason: &str) -> Result<Vec<String>> {
        self.apply(false, |s| Ok(s.strike_worker(worker_id, key, reason)))
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
        self.apply(false, |s| Ok(s.expire_leases(now_ms, self.limits)))
    }

    async fn escalate_waiting(&self, now_ms: i64) -> Result<Vec<String>> {
        self.apply(false, |s| Ok(s.escalate_waiting(now_ms)))
    }

    async fn cancel(&self, job_id: &str, now_ms: i64) -> Result<Transition> {
        self.apply(false, |s| s.cancel(job_id, now_ms))
    }

    async fn finish_commit(
        &self,
        job_id: &str,
        outcome: std::result::Result<(), String>,
        now_ms: i64,
    ) -> Result<Transition> {
        self.apply(false, |s| s.finish_commit(job_id, outcome, now_ms))
    }

    async fn job(&self, job_id: &str) -> Result<(JobRecord, Vec<TaskRecord>)> {
        let s = self.state.lock().expect("state lock");
        let job = s
            .jobs
            .get(job_id)
            .map(|j| JobRecord::clone(j))
            .ok_or_else(|| Error::NotFound(format!("job {job_id}")))?;
        let tasks = job
            .task_ids
            .iter()
            .filter_map(|t| s.tasks.get(t.as_str()).map(|t| TaskRecord::clone(t)))
            .collect();
        Ok((job, tasks))
    }

    async fn task(&self, task_id: &str) -> Result<TaskRecord> {
        let s = self.state.lock().expect("state lock");
        s.tasks
            .get(task_id)
            .map(|t| TaskRecord::clone(t))
            .ok_or_else(|| Error::NotFound(format!("task {task_id}")))
    }

    async fn list_jobs(&self, states: &[JobState], limit: usize) -> Result<Vec<JobRecord>> {
        let s = self.state.lock().expect("state lock");
        let mut jobs: Vec<JobRecord> = s
            .jobs
            .values()
            .filter(|j| states.is_empty() || states.contains(&j.state))
            .map(|j| JobRecord::clone(j))
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.seq));
        jobs.truncate(limit);
        Ok(jobs)
    }
}
