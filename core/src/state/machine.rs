//! The state transitions as plain functions over [`State`]. No I/O and no
//! clock: callers pass `now_ms` in, which keeps every rule testable.
//!
//! Layout: this file holds the state and its transitions; `queries` what
//! the state answers without
//! changing; `affinity` pinning renditions to encoder identities and
//! restarting them under another; `quality` the outlier guard's
//! re-encodes and worker strikes; `retention` rebuilding the indexes after a load and dropping
//! finished jobs; `records` the records' plain helpers (new task records,
//! requeueing, closing attempts, stitch inputs).

mod affinity;
mod quality;
mod queries;
mod records;
mod retention;

use records::{close_attempt, deps_done, job_traits, new_job, new_task_record, requeue};
pub use records::{fill_stitch, task_log, with_attempt_paths};

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use spotenc_proto::domain::{
    AttemptOutcome, AttemptRecord, Capacity, JobSpec, JobState, LeasedTask, TaskKind, TaskLog,
    TaskOutcome, TaskState, Work,
};
use spotenc_proto::{Error, Result};

use super::index::{Index, Window};
use super::tracked::Tracked;
use super::{Ending, JobRecord, Key, Limits, NewTask, TaskRecord, Transition, WorkerRecord};
use crate::cost::catalogue::Hardware;
use crate::cost::model::Model;
use crate::cost::place::JOB_ORDER_SPAN;
use crate::cost::{Lease, WINDOW_PER_CLASS};

/// Everything the coordinator knows, in memory. Jobs, tasks, keys and logs
/// are in hash maps with a fixed hasher (`rustc-hash`): lookups by id are
/// what every transition does, and a `BTreeMap` of ids that share long
/// prefixes spent its time comparing them (a quarter of the simulator's
/// time). A fixed hasher keeps iteration order the same from run to run,
/// so the simulator's reports stay byte-identical; nothing depends on the
/// order itself. Task and job records are boxed: a task's is 704 bytes (a
/// job's 632), and a table of 32-byte slots (id and box) is a small part
/// of the cache a lookup reads through, where records inline made every
/// probe a miss; moving a record in or out copies a pointer.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub jobs: Tracked<FxHashMap<Key, Box<JobRecord>>>,
    pub tasks: Tracked<FxHashMap<Key, Box<TaskRecord>>>,
    pub idempotency: Tracked<FxHashMap<String, String>>,
    pub workers: Tracked<FxHashMap<Key, WorkerRecord>>,
    pub next_seq: u64,
    /// Audit logs of ended attempts, by [`log_key`].
    #[serde(default)]
    pub logs: Tracked<FxHashMap<String, String>>,
    /// The codec cost model's learned samples.
    #[serde(default)]
    pub model: Model,
    /// When each worker last asked for work; not persisted (a restart
    /// forgets liveness, and workers come back within a lease poll).
    #[serde(skip)]
    pub seen: FxHashMap<Key, i64>,
    /// Pending, blocked and leased tasks indexed (derived; see
    /// [`State::reindex`]).
    #[serde(skip)]
    pub(crate) index: Index,
}

/// A task's first-in first-out order: its job's submission, then its
/// position in the job.
fn task_order(job_seq: u64, position: usize) -> u64 {
    job_seq * JOB_ORDER_SPAN + position as u64
}

/// What a pool's ended attempts add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolStat {
    pub interruptions: u32,
    /// Wall seconds of attempts (each holding one slot or its sessions).
    pub attempt_seconds: f64,
}

/// Where an attempt's audit log is kept.
pub(crate) fn log_key(task_id: &str, attempt: u32) -> String {
    format!("{task_id}#{attempt}")
}

/// The task if `attempt` still holds its lease. On the task map alone, so
/// that the index can be changed while the record is held.
fn fenced<'t>(
    tasks: &'t mut Tracked<FxHashMap<Key, Box<TaskRecord>>>,
    task_id: &str,
    attempt: u32,
) -> Result<&'t mut TaskRecord> {
    let t = tasks
        .get_mut(task_id)
        .ok_or_else(|| not_found("task", task_id))?;
    if t.state != TaskState::Leased || t.attempt != attempt {
        return Err(Error::Stale(format!(
            "task {task_id} attempt {attempt} does not hold the lease (attempt {} is {:?})",
            t.attempt, t.state
        )));
    }
    Ok(t)
}

/// Whether `t`, a chunk the outlier guard sent back, still waits for
/// another worker than `worker_id` (for `avoid_ms` after it became
/// pending).
pub(crate) fn avoids(t: &TaskRecord, worker_id: &str, now_ms: i64, avoid_ms: i64) -> bool {
    t.avoid_worker == worker_id && now_ms - t.pending_since_ms < avoid_ms
}

fn not_found(what: &str, id: &str) -> Error {
    Error::NotFound(format!("{what} {id}"))
}

/// The refusal of a worker call on a lease the worker never held.
pub fn not_holder(worker_id: &str, task_id: &str, attempt: u32) -> Error {
    Error::PermissionDenied(format!(
        "worker {worker_id:?} does not hold task {task_id} attempt {attempt}"
    ))
}

impl State {
    pub fn submit(
        &mut self,
        spec: JobSpec,
        idempotency_key: &str,
        job_id: String,
        work_root: &str,
        now_ms: i64,
    ) -> Result<&JobRecord> {
        self.submit_as(spec, idempotency_key, "", 0, job_id, work_root, now_ms)
    }

    /// [`State::submit`] for `client`, refused when it already has
    /// `max_live` jobs that have not ended (0: no limit). Returns the
    /// record in place: callers that keep it copy it (the simulator does
    /// not).
    #[allow(clippy::too_many_arguments)]
    pub fn submit_as(
        &mut self,
        spec: JobSpec,
        idempotency_key: &str,
        client: &str,
        max_live: u32,
        job_id: String,
        work_root: &str,
        now_ms: i64,
    ) -> Result<&JobRecord> {
        let (mut job, mut probe) = new_job(spec, idempotency_key, client, job_id, work_root);
        let known = (!job.idempotency_key.is_empty())
            .then(|| self.idempotency.get(&job.idempotency_key))
            .flatten()
            .filter(|id| self.jobs.contains_key(id.as_str()))
            .cloned();
        if let Some(id) = known {
            let known = &self.jobs[id.as_str()];
            if known.spec != job.spec {
                return Err(Error::invalid(format!(
                    "idempotency key {:?} was used for job {} with a \
                     different spec; use a new key for a different job",
                    job.idempotency_key, known.id
                )));
            }
            return Ok(known);
        }
        self.check_paths(&job.spec)?;
        let live = self.index.client_live(&job.client);
        if max_live > 0 && live >= max_live as usize {
            return Err(Error::Exhausted(format!(
                "client {:?} has {live} jobs that have not ended, the most it may have \
                 queued or running (quotas.queued_jobs_per_client)",
                job.client
            )));
        }
        // What only this moment knows: the job's number and times.
        job.seq = self.next_seq;
        job.created_unix_ms = now_ms;
        job.updated_unix_ms = now_ms;
        probe.pending_since_ms = now_ms;
        self.next_seq += 1;
        self.index
            .add(&probe, task_order(job.seq, 0), job_traits(&job.spec), 0);
        let job_key = Key::from(job.id.as_str());
        self.tasks.insert(Key::from(probe.id.as_str()), probe);
        if !job.idempotency_key.is_empty() {
            self.idempotency
                .insert(job.idempotency_key.clone(), job.id.clone());
        }
        self.jobs.insert(job_key.clone(), job);
        self.index_paths(&job_key, true);
        Ok(&self.jobs[job_key.as_str()])
    }

    /// Refuses a job whose outputs are the input or an output of a job
    /// still running, or whose input is such an output.
    fn check_paths(&self, spec: &JobSpec) -> Result<()> {
        for (o, _, _) in spec.outputs() {
            if let Some(job) = self.index.writer(o).or_else(|| self.index.reader(o)) {
                return Err(Error::invalid(format!(
                    "output {o:?} is the input or an output of running job {job}"
                )));
            }
        }
        if let Some(job) = self.index.writer(&spec.input) {
            return Err(Error::invalid(format!(
                "input {:?} is an output of running job {job}",
                spec.input
            )));
        }
        Ok(())
    }

    /// Notes (`running`) or forgets a job's input and outputs in the path
    /// index.
    fn index_paths(&mut self, job_id: &str, running: bool) {
        let Some(job) = self.jobs.get(job_id) else {
            return;
        };
        let outputs: Vec<&str> = job.spec.outputs().into_iter().map(|(o, _, _)| o).collect();
        if running {
            self.index.job_paths(job_id, &job.spec.input, &outputs);
        } else {
            self.index.end_job_paths(job_id, &job.spec.input, &outputs);
        }
        self.index.client_job(&job.client, job_id, running);
    }

    pub fn register_worker(&mut self, worker: WorkerRecord) {
        self.seen
            .insert(Key::from(worker.id.as_str()), worker.registered_unix_ms);
        self.workers.insert(worker.id.clone(), worker);
    }

    /// Leases the task `lease` chooses for a worker, bumping its fencing
    /// token and opening an attempt priced for the worker's pool.
    pub fn lease(
        &mut self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
        limits: Limits,
    ) -> Result<Option<LeasedTask>> {
        let mut work = None;
        let Some((task_id, attempt)) =
            self.claim(worker_id, lease, now_ms, limits, Some(&mut work))?
        else {
            return Ok(None);
        };
        let work = work.expect("asked for the work");
        let job_id = self.tasks[task_id.as_str()].job_id.clone();
        Ok(Some(LeasedTask {
            task_id: task_id.into(),
            job_id: job_id.into(),
            attempt,
            lease_ttl_ms: limits.lease_ttl_ms,
            work: with_attempt_paths(work, attempt),
        }))
    }

    /// [`State::lease`] with the same transition, returning only the task
    /// and attempt: the simulator, which runs no media, skips building the
    /// work a worker would get (a stitch's is still checked).
    pub fn lease_id(
        &mut self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
        limits: Limits,
    ) -> Result<Option<(Key, u32)>> {
        self.claim(worker_id, lease, now_ms, limits, None)
    }

    /// The transition of a lease; the work the task had before the attempt
    /// into `work`, when given (a stitch's is filled either way, as filling
    /// can fail the lease). The work goes out through the caller's slot:
    /// returned, it would be copied out with the rest on every lease.
    fn claim(
        &mut self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
        limits: Limits,
        mut work: Option<&mut Option<Work>>,
    ) -> Result<Option<(Key, u32)>> {
        let Some(record) = self.workers.get(worker_id) else {
            return Err(not_found("worker", worker_id));
        };
        // On-demand capacity serves on-demand work first, then spot work
        // rather than idle; spot capacity serves only spot work.
        let capacity = record.info.capacity;
        let pool = &record.info.pool;
        match self.seen.get_mut(worker_id) {
            Some(at) => *at = now_ms,
            None => {
                self.seen.insert(Key::from(worker_id), now_ms);
            }
        }
        // Sessions matter to NVENC workers only: others skip the count.
        let held = match &lease.worker {
            Some(w) if w.pool.hardware != Hardware::Nvenc => w.sessions_held,
            _ => self.sessions_held(worker_id),
        };
        // The window borrows the index, which the lease changes below, so
        // it lives in this block and is dropped where it was built
        // (`drop` would copy all of it out first).
        let chosen = {
            // Unsorted: choosing does not depend on the candidates' order.
            // Built in place (a window returned would be copied out).
            let mut candidates = Window::new();
            self.index.window_into(
                WINDOW_PER_CLASS,
                capacity == Capacity::Spot,
                &mut candidates,
            );
            if capacity == Capacity::OnDemand
                && lease.worker.is_none()
                && candidates.iter().any(|c| c.partition == Capacity::OnDemand)
            {
                candidates.retain(|c| c.partition == Capacity::OnDemand);
            }
            let avoid_ms = lease.policy.avoid_rejected_ms;
            let mut avoided = false;
            for c in candidates.iter_mut() {
                if !c.demand.outputs.is_empty() {
                    let t = &self.tasks[c.task_id.as_ref()];
                    avoided |= avoids(t, worker_id, now_ms, avoid_ms);
                    c.pinned = std::borrow::Cow::Borrowed(&self.jobs[t.job_id.as_str()].identities);
                }
            }
            if avoided {
                candidates.retain(|c| {
                    !avoids(&self.tasks[c.task_id.as_ref()], worker_id, now_ms, avoid_ms)
                });
            }
            lease.choose(&candidates, held, now_ms).map(Key::from)
        };
        let Some(task_id) = chosen else {
            return Ok(None);
        };
        let pool = pool.clone();
        let mut task = self.tasks.get_mut(&task_id).expect("a candidate");
        if work.is_some() || matches!(task.work, Work::Stitch(_)) {
            let filled = self.work_for_lease(&task_id)?;
            if let Some(out) = work.as_deref_mut() {
                *out = Some(filled);
            }
            task = self.tasks.get_mut(&task_id).expect("a candidate");
        }
        let (rate_per_hour, on_demand, sessions) = lease.pricing(&task.demand);
        let identities = lease.identity_names(&task.demand);
        if let Some(Some(Work::Encode(e))) = work {
            e.identities = lease.identities(&task.demand);
        }
        task.attempt += 1;
        task.state = TaskState::Leased;
        task.worker_id = worker_id.into();
        task.lease_until_ms = now_ms + i64::from(limits.lease_ttl_ms);
        task.frames_done = 0;
        // Most tasks run once: room for one attempt, not the four a first
        // push would make.
        task.history.reserve_exact(1);
        task.history.push(AttemptRecord {
            attempt: task.attempt,
            worker_id: worker_id.into(),
            started_unix_ms: now_ms,
            ended_unix_ms: 0,
            outcome: AttemptOutcome::Running,
            error: String::new(),
            pool,
            log_bytes: 0,
            rate_per_hour,
            on_demand,
            sessions,
            cost_dollars: 0.0,
            identities: identities.clone(),
            rejected_psnr: Vec::new(),
        });
        let attempt = task.attempt;
        self.index.sync(task, None);
        let job = self.jobs.get_mut(&task.job_id).expect("task has a job");
        affinity::pin(job, identities);
        if job.state == JobState::Queued {
            job.state = JobState::Running;
        }
        job.updated_unix_ms = now_ms;
        Ok(Some((task_id, attempt)))
    }

    /// The work of a task about to be leased; a stitch task gets the objects
    /// its dependencies produced.
    fn work_for_lease(&self, task_id: &str) -> Result<Work> {
        let task = &self.tasks[task_id];
        let Work::Stitch(stitch) = &task.work else {
            return Ok(task.work.clone());
        };
        let results = task
            .deps
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    self.tasks.get(d.as_str()).and_then(|t| t.result.clone()),
                )
            })
            .collect();
        fill_stitch(stitch, results)
    }

    /// Extends `worker_id`'s lease; `false` once the lease is gone. A
    /// worker that never held `attempt` is refused.
    pub fn heartbeat(
        &mut self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        frames_done: u64,
        now_ms: i64,
        limits: Limits,
    ) -> Result<bool> {
        let job_live = |jobs: &FxHashMap<Key, Box<JobRecord>>, id: &str| {
            jobs.get(id).is_some_and(|j| !j.state.is_terminal())
        };
        let t = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| not_found("task", task_id))?;
        if !t
            .history
            .iter()
            .any(|a| a.attempt == attempt && a.worker_id == worker_id)
        {
            return Err(not_holder(worker_id, task_id, attempt));
        }
        if t.state == TaskState::Leased && t.attempt == attempt && job_live(&self.jobs, &t.job_id) {
            t.lease_until_ms = now_ms + i64::from(limits.lease_ttl_ms);
            t.frames_done = frames_done;
            self.seen.insert(t.worker_id.clone(), now_ms);
            return Ok(true);
        }
        Ok(false)
    }

    pub fn complete(
        &mut self,
        task_id: &str,
        attempt: u32,
        outcome: TaskOutcome,
        follow_ups: Vec<NewTask>,
        now_ms: i64,
    ) -> Result<Transition> {
        let task = fenced(&mut self.tasks, task_id, attempt)?;
        let matches = matches!(
            (&task.work, &outcome),
            (Work::Probe(_), TaskOutcome::Probe(_))
                | (Work::Encode(_), TaskOutcome::Encode(_))
                | (Work::Audio(_), TaskOutcome::Audio(_))
                | (Work::Stitch(_), TaskOutcome::Stitch(_))
        );
        if !matches {
            return Err(Error::invalid(format!(
                "result for task {task_id} is of the wrong kind"
            )));
        }
        // A chunk with the wrong frame count fails the chunk, never the stitch.
        if let TaskOutcome::Encode(obj) | TaskOutcome::Stitch(obj) = &outcome {
            if obj.frames != task.frames_total {
                let msg = format!(
                    "{task_id} produced {} frames, the plan says {}",
                    obj.frames, task.frames_total
                );
                self.fail(task_id, attempt, &Ending::new(msg.clone(), true), now_ms)?;
                return Err(Error::invalid(msg));
            }
        }
        close_attempt(task, AttemptOutcome::Done, "", now_ms);
        task.state = TaskState::Done;
        task.frames_done = task.frames_total;
        // The job keeps the probe too; only a probe's result is copied.
        let probe = match &outcome {
            TaskOutcome::Probe(info) => Some(info.clone()),
            _ => None,
        };
        let stitched = matches!(outcome, TaskOutcome::Stitch(_));
        task.result = Some(outcome);
        let job_id = task.job_id.clone();
        // Done keeps its worker's id: the index reads it from the record.
        self.index.sync(task, Some(&task.worker_id));
        // A job commits once every rendition is stitched.
        let all_stitched = stitched
            && self.jobs[job_id.as_str()].task_ids.iter().all(|t| {
                let t = &self.tasks[t.as_str()];
                t.kind != TaskKind::Stitch || t.state == TaskState::Done
            });
        let job = self.jobs.get_mut(&job_id).expect("task has a job");
        job.updated_unix_ms = now_ms;
        match probe {
            Some(info) => {
                job.probe = Some(info);
                let partition = job.spec.partition();
                let traits = job_traits(&job.spec);
                job.task_ids.reserve_exact(follow_ups.len());
                for nt in follow_ups {
                    let key = Key::from(nt.id.as_str());
                    job.task_ids.push(nt.id.clone());
                    let mut t = Box::new(new_task_record(&job_id, partition, 0, nt));
                    t.pending_since_ms = now_ms;
                    let order = task_order(job.seq, job.task_ids.len() - 1);
                    let done = deps_done(&self.tasks, &t);
                    self.index.add(&t, order, traits, done);
                    self.tasks.insert(key, t);
                }
            }
            None if all_stitched => job.state = JobState::Committing,
            None => {}
        }
        // Completing a task changes its job's state only here.
        let state = job.state;
        self.unblock(task_id, now_ms);
        Ok(Transition { job_id, state })
    }

    /// Makes the blocked tasks waiting on `done` pending once all their
    /// dependencies are done.
    fn unblock(&mut self, done: &str, now_ms: i64) {
        // The index counts each blocked task's dependencies down; the ones
        // it names are checked in full before they move.
        for id in self.index.done(done) {
            let ready = {
                let Some(t) = self.tasks.get(id.as_str()) else {
                    continue;
                };
                t.state == TaskState::Blocked
                    && t.deps.iter().all(|d| {
                        self.tasks
                            .get(d.as_str())
                            .is_some_and(|d| d.state == TaskState::Done)
                    })
            };
            if ready {
                let t = self.tasks.get_mut(&id).expect("listed");
                t.state = TaskState::Pending;
                t.pending_since_ms = now_ms;
                self.index.sync(t, None);
            }
        }
    }

    fn transition(&self, job_id: &str) -> Transition {
        Transition {
            job_id: job_id.into(),
            state: self.jobs[job_id].state,
        }
    }

    pub fn fail(
        &mut self,
        task_id: &str,
        attempt: u32,
        failure: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        let (error, retryable) = (failure.message.as_str(), failure.retryable);
        let task = fenced(&mut self.tasks, task_id, attempt)?;
        close_attempt(task, AttemptOutcome::Failed, error, now_ms);
        self.keep_log(task_id, attempt, &failure.log);
        let task = self.tasks.get_mut(task_id).expect("fenced");
        task.failures += 1;
        let (job_id, failures) = (task.job_id.clone(), task.failures);
        if !retryable || failures >= self.jobs[job_id.as_str()].spec.max_attempts {
            let msg = if retryable {
                format!("{task_id} failed {failures} times, last: {error}")
            } else {
                error.to_string()
            };
            self.fail_job(&job_id, &msg, now_ms);
        } else {
            self.requeue_ended(task_id, now_ms);
        }
        Ok(self.transition(&job_id))
    }

    /// An interrupted attempt: counted against the worker's pool, requeued
    /// at once; a pool that keeps interrupting the task escalates it.
    pub fn hand_back(
        &mut self,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        let task = fenced(&mut self.tasks, task_id, attempt)?;
        close_attempt(task, AttemptOutcome::Interrupted, &notice.message, now_ms);
        let pool = task
            .history
            .last()
            .map(|a| a.pool.to_string())
            .unwrap_or_default();
        *task.interruptions.entry(pool).or_default() += 1;
        let worker = task.worker_id.clone();
        let job_id = task.job_id.clone();
        // The worker is going away: its pool no longer counts as live.
        self.seen.remove(worker.as_str());
        self.requeue_ended(task_id, now_ms);
        self.keep_log(task_id, attempt, &notice.log);
        Ok(self.transition(&job_id))
    }

    /// A lease its worker never received: the attempt ends as `released`
    /// and the task is pending again; nothing is counted against it.
    pub fn release(
        &mut self,
        task_id: &str,
        attempt: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition> {
        let task = fenced(&mut self.tasks, task_id, attempt)?;
        close_attempt(task, AttemptOutcome::Released, reason, now_ms);
        let job_id = task.job_id.clone();
        self.requeue_ended(task_id, now_ms);
        Ok(self.transition(&job_id))
    }

    /// Puts a task whose attempt just ended back in its queue (escalated
    /// when its job's limits say so) and out of its worker's leases.
    fn requeue_ended(&mut self, task_id: &str, now_ms: i64) {
        let task = self.tasks.get_mut(task_id).expect("a known task");
        let holder = task.worker_id.clone();
        let spec = &self.jobs[task.job_id.as_str()].spec;
        requeue(task, spec, now_ms);
        self.index.sync(task, Some(&holder));
    }

    /// Stores an ended attempt's audit log and notes its size in the
    /// attempt record.
    fn keep_log(&mut self, task_id: &str, attempt: u32, log: &str) {
        if log.is_empty() {
            return;
        }
        let log = TaskLog::clamp(log);
        if let Some(a) = self
            .tasks
            .get_mut(task_id)
            .and_then(|t| t.history.iter_mut().find(|a| a.attempt == attempt))
        {
            a.log_bytes = log.len() as u64;
        }
        self.logs.insert(log_key(task_id, attempt), log.to_string());
    }

    pub fn expire_leases(&mut self, now_ms: i64, limits: Limits) -> Vec<Transition> {
        // Oldest deadline first, then by id, as Redis's LEASED set orders
        // them: when one expiry fails a job, which of its tasks expired
        // before it depends on this order.
        let mut expired: Vec<(i64, String)> = self
            .index
            .all_leased()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| t.state == TaskState::Leased && t.lease_until_ms < now_ms)
            .map(|t| (t.lease_until_ms, t.id.clone()))
            .collect();
        expired.sort();
        let mut out = Vec::new();
        for (_, id) in expired {
            let task = self.tasks.get_mut(&id).expect("listed");
            // An earlier expiry in this pass may have failed the job and
            // cancelled this task: it is no longer leased.
            if task.state != TaskState::Leased {
                continue;
            }
            close_attempt(task, AttemptOutcome::Expired, "lease expired", now_ms);
            task.expiries += 1;
            let job_id = task.job_id.clone();
            if task.expiries > limits.max_expiries {
                let msg = format!("{id} lost its lease {} times", task.expiries);
                self.fail_job(&job_id, &msg, now_ms);
            } else {
                self.requeue_ended(&id, now_ms);
            }
            out.push(self.transition(&job_id));
        }
        out
    }

    /// Whether pending task `t` has waited in the spot partition longer
    /// than its job allows.
    fn waited_too_long(&self, t: &TaskRecord, now_ms: i64) -> bool {
        t.partition == Capacity::Spot
            && self.jobs.get(t.job_id.as_str()).is_some_and(|job| {
                let limit = i64::from(job.spec.escalate_after_wait_seconds) * 1000;
                now_ms - t.pending_since_ms > limit
            })
    }

    pub fn escalate_waiting(&mut self, now_ms: i64) -> Vec<String> {
        let moved: Vec<String> = self
            .index
            .escalations_due(now_ms)
            .into_iter()
            .filter_map(|id| self.tasks.get(id))
            .filter(|t| self.waited_too_long(t, now_ms))
            .map(|t| t.id.clone())
            .collect();
        for id in &moved {
            let t = self.tasks.get_mut(id).expect("listed");
            // Out of the spot queue, into on-demand.
            self.index.unqueue(t);
            t.partition = Capacity::OnDemand;
            self.index.sync(t, None);
        }
        moved
    }

    pub fn cancel(&mut self, job_id: &str, now_ms: i64) -> Result<Transition> {
        let job = self
            .jobs
            .get_mut(job_id)
            .ok_or_else(|| not_found("job", job_id))?;
        if job.state == JobState::Committing {
            // Outputs may already be moving into place: a cancel now could
            // leave some renditions replaced and others not.
            return Err(Error::Stale(format!(
                "job {job_id} is committing its outputs and can no longer be cancelled"
            )));
        }
        if !job.state.is_terminal() {
            job.state = JobState::Cancelled;
            job.error = "cancelled".into();
            self.end_job(job_id, now_ms);
        }
        Ok(self.transition(job_id))
    }

    pub fn finish_commit(
        &mut self,
        job_id: &str,
        outcome: std::result::Result<(), String>,
        now_ms: i64,
    ) -> Result<Transition> {
        let job = self
            .jobs
            .get_mut(job_id)
            .ok_or_else(|| not_found("job", job_id))?;
        if job.state != JobState::Committing {
            return Err(Error::Stale(format!(
                "job {job_id} is {:?}, not committing",
                job.state
            )));
        }
        match outcome {
            Ok(()) => {
                job.state = JobState::Succeeded;
                job.finished_unix_ms = now_ms;
                job.updated_unix_ms = now_ms;
                self.index_paths(job_id, false);
            }
            Err(e) => self.fail_job(job_id, &format!("commit failed: {e}"), now_ms),
        }
        Ok(self.transition(job_id))
    }

    fn fail_job(&mut self, job_id: &str, error: &str, now_ms: i64) {
        let job = self.jobs.get_mut(job_id).expect("job exists");
        if job.state.is_terminal() {
            return;
        }
        job.state = JobState::Failed;
        job.error = error.to_string();
        self.end_job(job_id, now_ms);
    }

    /// Cancels every unfinished task of a job that just ended.
    fn end_job(&mut self, job_id: &str, now_ms: i64) {
        self.index_paths(job_id, false);
        let job = self.jobs.get_mut(job_id).expect("job exists");
        job.finished_unix_ms = now_ms;
        job.updated_unix_ms = now_ms;
        for id in job.task_ids.clone() {
            let t = self.tasks.get_mut(&id).expect("listed");
            let holder = (t.state == TaskState::Leased).then(|| t.worker_id.clone());
            if holder.is_some() {
                close_attempt(t, AttemptOutcome::Cancelled, "job ended", now_ms);
            }
            if !matches!(t.state, TaskState::Done | TaskState::Failed) {
                t.state = TaskState::Cancelled;
            }
            self.index.sync(t, holder.as_deref());
        }
    }
}
