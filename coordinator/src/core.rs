//! The coordinator's behaviour between the RPC edge and the state store:
//! checks on submission, long-poll leasing, planning after a probe, and the
//! effects of transitions (commit a stitched job, clean up a failed one).
//!
//! Layout: this file holds the RPCs' side; `placement` what placement and
//! the cost model see of it (worker pools, the cached model and fleet, the
//! lease context, learning from encodes, the pools and costs tables);
//! `background` what runs beside them (retention, the reaper, capacity
//! planning) and the effects of transitions (commit, clean-up, cost
//! counters); `guard` the outlier guard before a stitch, worker strikes and
//! the chunk quality metrics.

mod background;
mod guard;
mod placement;

use std::sync::Arc;
use std::time::Duration;

use spotenc_proto::domain::{
    AttemptRecord, GpuTelemetry, JobSpec, JobState, JobView, LeasedTask, TaskLog, TaskOutcome,
    Work, WorkerInfo, WorkerStatus,
};
use spotenc_proto::{Error, Result};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::Config;
use spotenc_core::cost::capacity::HealthTracker;
use spotenc_core::cost::model::Model;
use spotenc_core::cost::place::Fleet;
use spotenc_core::cost::Lease;
use spotenc_core::graph;
use spotenc_core::state::machine::with_attempt_paths;
use spotenc_core::state::{job_of, job_view, Ending, JobRecord, Transition, WorkerRecord};
use spotenc_storage::broker::Broker;
use spotenc_store::StateStore;

/// When the live workers were read, and each one's id and how it encodes.
type Peers = (tokio::time::Instant, Vec<(String, String)>);

pub struct Coordinator {
    store: Arc<dyn StateStore>,
    /// Woken whenever a task may have become leasable.
    work_ready: Notify,
    /// Serialises commits, which both transitions and the reaper start.
    commit_lock: tokio::sync::Mutex<()>,
    /// How often a waiting lease re-checks the store when other replicas can
    /// add work (`None`: only this process adds work).
    lease_poll: Option<Duration>,
    broker: Broker,
    config: Config,
    /// Workers this process has heard from, with their last telemetry.
    /// Per replica: with Redis, each replica knows the workers that talk to
    /// it.
    workers: std::sync::Mutex<std::collections::BTreeMap<String, WorkerStatus>>,
    /// Pools not in the catalogue that were already warned about.
    warned_pools: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The cost model and the live fleet, re-read from the store at most
    /// every [`VIEW_TTL`].
    view: tokio::sync::Mutex<Option<(tokio::time::Instant, Model, Fleet)>>,
    /// Each live worker's id and how it encodes (its hardware and operator
    /// parameters), cached for [`VIEW_TTL`]: a chunk the outlier guard sent
    /// back waits for another worker only while there is one.
    peers: tokio::sync::Mutex<Option<Peers>>,
    /// Pool health from this replica's hand-backs and plans.
    health: std::sync::Mutex<HealthTracker>,
    /// On-demand pools with more live workers than their last plan.
    over_plan: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Since when each pinned job has had no live worker of its identities.
    unserved: std::sync::Mutex<spotenc_core::cost::affinity::Unserved>,
    /// When the planner last ran.
    last_plan: std::sync::Mutex<Option<std::time::Instant>>,
    /// Open WatchJob streams by client, on this replica.
    watches: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
}

/// An open WatchJob stream, counted against its client (and in
/// `spotenc_watch_streams`) until dropped.
pub struct WatchGuard {
    watches: Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
    client: String,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        metrics::gauge!("spotenc_watch_streams").decrement(1.0);
        let mut w = self.watches.lock().expect("watches lock");
        if let Some(n) = w.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.client);
            }
        }
    }
}

/// How often the reaper runs the capacity planner.
const PLAN_INTERVAL: Duration = Duration::from_secs(5);

/// How long a snapshot of the cost model and the live fleet is reused.
const VIEW_TTL: Duration = Duration::from_secs(2);
/// A worker that has neither asked for work (workers long-poll for 5 s)
/// nor heartbeated (every 2 s by default) this long is not live.
const LIVE_MS: i64 = 30_000;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Coordinator {
    pub fn new(store: Arc<dyn StateStore>, config: Config, lease_poll: Option<Duration>) -> Self {
        Coordinator {
            store,
            work_ready: Notify::new(),
            commit_lock: tokio::sync::Mutex::new(()),
            lease_poll,
            broker: Broker::new(config.s3.clone()),
            config,
            workers: Default::default(),
            warned_pools: Default::default(),
            view: Default::default(),
            peers: Default::default(),
            health: Default::default(),
            over_plan: Default::default(),
            unserved: Default::default(),
            last_plan: Default::default(),
            watches: Default::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub async fn submit(
        &self,
        mut spec: JobSpec,
        idempotency_key: &str,
        client: &str,
    ) -> Result<JobView> {
        spec.validate()?;
        check_idempotency_key(idempotency_key)?;
        let files = &self.config.files;
        spec.input = self.broker.check_input(&spec.input, files)?;
        spec.output = self.broker.check_output(&spec.output, files)?;
        for r in &mut spec.renditions {
            r.output = self.broker.check_output(&r.output, files)?;
        }
        Self::check_aliases(&spec)?;
        let max = self.config.quotas.queued_jobs_per_client;
        let job = self
            .store
            .submit_as(spec, idempotency_key, client, max, now_ms())
            .await
            .inspect_err(|e| {
                if matches!(e, Error::Exhausted(_)) {
                    metrics::counter!("spotenc_quota_refusals_total", "quota" => "queued_jobs")
                        .increment(1);
                }
            })?;
        metrics::counter!("spotenc_jobs_submitted_total").increment(1);
        info!(job = %job.id, input = %job.spec.input, output = %job.spec.output, "job submitted");
        self.work_ready.notify_waiters();
        self.job(&job.id).await
    }

    /// Refuses a job whose outputs (canonical by now) are its input or
    /// each other. (Aliasing another running job's paths is not checked
    /// yet: that needs a path index in both stores.)
    fn check_aliases(spec: &JobSpec) -> Result<()> {
        let outputs: Vec<&str> = spec.outputs().into_iter().map(|(o, _, _)| o).collect();
        for (i, o) in outputs.iter().enumerate() {
            if *o == spec.input {
                return Err(Error::invalid(format!("output {o:?} is the job's input")));
            }
            if outputs[..i].contains(o) {
                return Err(Error::invalid(format!("output {o:?} is used twice")));
            }
        }
        Ok(())
    }

    pub async fn job(&self, job_id: &str) -> Result<JobView> {
        let (job, tasks) = self.store.job(job_id).await?;
        Ok(job_view(&job, &tasks, now_ms()))
    }

    pub async fn list_jobs(&self, states: &[JobState], limit: usize) -> Result<Vec<JobView>> {
        let mut out = Vec::new();
        for job in self.store.list_jobs(states, limit).await? {
            out.push(self.job(&job.id).await?);
        }
        Ok(out)
    }

    pub async fn cancel(&self, job_id: &str) -> Result<JobView> {
        let t = self.store.cancel(job_id, now_ms()).await?;
        self.after(t).await;
        self.job(job_id).await
    }

    pub async fn register(&self, info: WorkerInfo) -> Result<String> {
        let id = format!(
            "{}-{}",
            info.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        info!(worker = %id, slots = info.slots, pool = %info.pool, hardware = %info.hardware, encoder = %info.encoder, gpus = info.gpus.len(), "worker registered");
        let now = now_ms();
        self.store
            .register_worker(WorkerRecord {
                id: id.clone(),
                info: info.clone(),
                registered_unix_ms: now,
                strikes: Vec::new(),
            })
            .await?;
        self.workers.lock().expect("workers lock").insert(
            id.clone(),
            WorkerStatus {
                worker_id: id.clone(),
                info,
                registered_unix_ms: now,
                last_seen_unix_ms: 0,
                gpus: Vec::new(),
                withdrawn: Vec::new(),
            },
        );
        // The next lease sees the new worker's pool in the fleet, and the
        // new worker as a peer of those that encode alike.
        *self.view.lock().await = None;
        *self.peers.lock().await = None;
        Ok(id)
    }

    /// Leases a task, waiting up to `wait` for one to become ready.
    pub async fn lease(
        self: &Arc<Self>,
        worker_id: &str,
        wait: Duration,
    ) -> Result<Option<LeasedTask>> {
        self.check_not_quarantined(worker_id).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.work_ready.notified();
            let lease = self.lease_context(worker_id).await?;
            if let Some(task) = self.lease_once(worker_id, lease).await? {
                return Ok(Some(task));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wake = self.lease_poll.map_or(deadline, |p| deadline.min(now + p));
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    /// One lease, cancel-safe: the store call and the signing run to their
    /// end on their own task, and a task leased for a caller that has gone
    /// (the worker dropped its LeaseTask call) is released at once instead
    /// of staying leased to nobody until the TTL.
    async fn lease_once(
        self: &Arc<Self>,
        worker_id: &str,
        lease: Lease,
    ) -> Result<Option<LeasedTask>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let core = self.clone();
        let worker = worker_id.to_string();
        tokio::spawn(async move {
            let leased = core.lease_and_sign(&worker, &lease).await;
            if let Err(Ok(Some(task))) = tx.send(leased) {
                let reason = "the worker's lease call was dropped before the task reached it";
                core.release(&task.task_id, task.attempt, reason).await;
            }
        });
        rx.await
            .map_err(|_| Error::Internal("the lease task ended without an answer".into()))?
    }

    async fn lease_and_sign(&self, worker_id: &str, lease: &Lease) -> Result<Option<LeasedTask>> {
        let Some(mut task) = self.store.lease(worker_id, lease, now_ms()).await? else {
            return Ok(None);
        };
        if matches!(task.work, Work::Stitch(_)) {
            match self.stitch_passes(&task).await {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                // Another replica's guard sent the chunks back meanwhile.
                Err(Error::Stale(why)) => {
                    info!(task = %task.task_id, %why, "stitch lease revoked by the outlier guard");
                    return Ok(None);
                }
                Err(e) => {
                    let reason = format!("the outlier guard could not judge its chunks: {e}");
                    self.release(&task.task_id, task.attempt, &reason).await;
                    return Err(e);
                }
            }
        }
        info!(task = %task.task_id, attempt = task.attempt, worker = %worker_id, "task leased");
        match self.broker.sign(task.work.clone()).await {
            Ok(work) => {
                task.work = work;
                Ok(Some(task))
            }
            Err(e) => {
                let reason = format!("signing its object URLs failed: {e}");
                self.release(&task.task_id, task.attempt, &reason).await;
                Err(e)
            }
        }
    }

    /// Undoes a lease that never reached its worker.
    async fn release(&self, task_id: &str, attempt: u32, reason: &str) {
        warn!(task = %task_id, attempt, reason, "lease released");
        metrics::counter!("spotenc_leases_released_total").increment(1);
        match self.store.release(task_id, attempt, reason, now_ms()).await {
            Ok(t) => {
                self.work_ready.notify_waiters();
                self.after(t).await;
            }
            Err(e) => {
                warn!(task = %task_id, attempt, error = %e, "release failed; the lease expires at its TTL");
            }
        }
    }

    /// Refuses a worker call on a lease the worker does not hold: the
    /// attempt number alone is not enough, another worker could send it.
    /// (An attempt's worker never changes, so reading it first is safe; the
    /// store still fences the attempt itself.)
    pub async fn check_holder(&self, worker_id: &str, task_id: &str, attempt: u32) -> Result<()> {
        let task = self.store.task(task_id).await?;
        Self::held_attempt(&task, worker_id, attempt).map(|_| ())
    }

    /// The attempt of `task` that `worker_id` holds, or the refusal.
    fn held_attempt<'a>(
        task: &'a spotenc_core::state::TaskRecord,
        worker_id: &str,
        attempt: u32,
    ) -> Result<&'a spotenc_proto::domain::AttemptRecord> {
        match task.history.iter().find(|a| a.attempt == attempt) {
            Some(a) if a.worker_id == worker_id => Ok(a),
            other => {
                let holder = other.map(|a| a.worker_id.as_str());
                warn!(worker = %worker_id, task = %task.id, attempt, holder = ?holder, "worker call on a lease it does not hold");
                Err(spotenc_core::state::machine::not_holder(
                    worker_id, &task.id, attempt,
                ))
            }
        }
    }

    /// The worker's status as this replica knows it, loading workers that
    /// registered through another replica from the store.
    async fn worker_status(&self, worker_id: &str) -> Result<WorkerStatus> {
        if let Some(w) = self.workers.lock().expect("workers lock").get(worker_id) {
            return Ok(w.clone());
        }
        let record = self.store.worker(worker_id).await?;
        let status = WorkerStatus {
            worker_id: record.id.clone(),
            info: record.info,
            registered_unix_ms: record.registered_unix_ms,
            last_seen_unix_ms: now_ms(),
            gpus: Vec::new(),
            withdrawn: Vec::new(),
        };
        self.workers
            .lock()
            .expect("workers lock")
            .insert(worker_id.to_string(), status.clone());
        Ok(status)
    }

    pub async fn heartbeat(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        frames_done: u64,
        gpus: Vec<GpuTelemetry>,
    ) -> Result<bool> {
        let now = now_ms();
        self.seen(worker_id, gpus, None, now);
        self.store
            .heartbeat(worker_id, task_id, attempt, frames_done, now)
            .await
    }

    /// Records that a worker called, with its GPU telemetry and, from a
    /// lease request, the hardware families it withdrew.
    pub fn seen(
        &self,
        worker_id: &str,
        gpus: Vec<GpuTelemetry>,
        withdrawn: Option<Vec<String>>,
        now: i64,
    ) {
        if let Some(w) = self
            .workers
            .lock()
            .expect("workers lock")
            .get_mut(worker_id)
        {
            w.last_seen_unix_ms = now;
            w.gpus = gpus;
            if let Some(withdrawn) = withdrawn {
                w.withdrawn = withdrawn;
            }
        }
    }

    /// The workers this process has heard from, by id.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.workers
            .lock()
            .expect("workers lock")
            .values()
            .cloned()
            .collect()
    }

    /// Where a job's intermediate objects live.
    fn work_dir(&self, job: &JobRecord) -> String {
        self.broker.work_dir(&job.spec, &job.id, &job.work_dir)
    }

    /// Records `worker_id`'s result for its lease of `task_id`.
    pub async fn complete(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        outcome: TaskOutcome,
    ) -> Result<()> {
        let task = self.store.task(task_id).await?;
        let held = Self::held_attempt(&task, worker_id, attempt)?;
        let outcome = match canonical_outcome(&task, attempt, outcome)
            .and_then(|o| same_identities(&task.id, held, o))
        {
            Ok(outcome) => outcome,
            Err(msg) => {
                let retry = Ending::new(msg.clone(), true);
                self.fail_attempt(task_id, attempt, &retry).await?;
                return Err(Error::invalid(msg));
            }
        };
        let mut follow_ups = Vec::new();
        if let TaskOutcome::Probe(probe) = &outcome {
            let (job, _) = self.store.job(job_of(task_id)).await?;
            match graph::expand(&job, probe, &self.work_dir(&job)) {
                Ok(tasks) => follow_ups = tasks,
                Err(e) => {
                    let msg = format!("cannot plan {}: {e}", job.spec.input);
                    self.fail_attempt(task_id, attempt, &Ending::new(msg, false))
                        .await?;
                    return Ok(());
                }
            }
        }
        self.record_completion(&task, held, outcome, follow_ups)
            .await
    }

    /// Fails one attempt and acts on where that leaves its job.
    async fn fail_attempt(&self, task_id: &str, attempt: u32, ending: &Ending) -> Result<()> {
        let t = self.store.fail(task_id, attempt, ending, now_ms()).await?;
        self.after(t).await;
        Ok(())
    }

    /// Records a checked result; the cost model learns from an encode.
    async fn record_completion(
        &self,
        task: &spotenc_core::state::TaskRecord,
        held: &AttemptRecord,
        outcome: TaskOutcome,
        follow_ups: Vec<spotenc_core::state::NewTask>,
    ) -> Result<()> {
        // The attempt the worker completes (checked to be its own), not
        // the task's latest: a stale one is refused by the store's fence.
        let (task_id, attempt) = (task.id.as_str(), held.attempt);
        let encoded = match &outcome {
            TaskOutcome::Encode(o) => Some(o.clone()),
            _ => None,
        };
        let t = self
            .store
            .complete(task_id, attempt, outcome, follow_ups, now_ms())
            .await;
        match t {
            Ok(t) => {
                info!(task = %task_id, attempt, "task done");
                if let Some(obj) = encoded {
                    Self::record_quality(&task.work, &obj);
                    self.observe(task, held, &obj).await;
                }
                self.after(t).await;
                Ok(())
            }
            Err(Error::Invalid(msg)) => {
                // The store recorded the failure; requeue or end the job.
                if let Ok(view) = self.job(job_of(task_id)).await {
                    self.after(Transition {
                        job_id: view.id.into(),
                        state: view.state,
                    })
                    .await;
                }
                Err(Error::Invalid(msg))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn fail(&self, task_id: &str, attempt: u32, failure: &Ending) -> Result<()> {
        warn!(task = %task_id, attempt, retryable = failure.retryable, error = %failure.message, "task failed");
        let t = self.store.fail(task_id, attempt, failure, now_ms()).await?;
        self.after(t).await;
        Ok(())
    }

    /// An interrupted task: requeued at once, and leasable right away.
    pub async fn hand_back(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
    ) -> Result<()> {
        let task = self.store.task(task_id).await?;
        let pool = Self::held_attempt(&task, worker_id, attempt)?.pool.clone();
        info!(task = %task_id, attempt, notice = %notice.message, "task interrupted and requeued");
        let t = self
            .store
            .hand_back(task_id, attempt, notice, now_ms())
            .await?;
        // The interrupted worker's pool may be gone: re-read the fleet.
        *self.view.lock().await = None;
        self.health.lock().expect("health lock").interrupted(
            &pool,
            now_ms(),
            &self.config.capacity,
        );
        self.work_ready.notify_waiters();
        metrics::counter!("spotenc_task_interruptions_total", "pool" => pool.to_string())
            .increment(1);
        self.after(t).await;
        Ok(())
    }

    /// A chunk its worker cannot encode with the lease's identities (its
    /// hardware encoder failed or is missing): requeued at once, nothing
    /// counted against the task or the pool (not an interruption).
    pub async fn give_back(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
    ) -> Result<()> {
        let task = self.store.task(task_id).await?;
        Self::held_attempt(&task, worker_id, attempt)?;
        warn!(task = %task_id, attempt, worker = %worker_id, reason = %notice.message, "chunk given back: its worker cannot encode it with the lease's identities");
        metrics::counter!("spotenc_encoder_unavailable_total").increment(1);
        let t = self
            .store
            .release(task_id, attempt, &notice.message, now_ms())
            .await?;
        self.work_ready.notify_waiters();
        self.after(t).await;
        Ok(())
    }

    pub async fn task_logs(&self, job_id: &str, task_id: &str) -> Result<Vec<TaskLog>> {
        self.store.task_logs(job_id, task_id).await
    }

    /// Queue depth by partition and recently seen workers by hardware, for
    /// `/metrics` (read only when it is served).
    async fn record_gauges(&self) -> Result<()> {
        let (spot, on_demand) = self.store.queue_depth().await?;
        metrics::gauge!("spotenc_tasks_pending", "partition" => "spot").set(spot as f64);
        metrics::gauge!("spotenc_tasks_pending", "partition" => "on-demand").set(on_demand as f64);
        let mut by_hardware = std::collections::BTreeMap::<String, u32>::new();
        let recent = now_ms() - 60_000;
        for w in self.workers() {
            let seen = w.last_seen_unix_ms.max(w.registered_unix_ms);
            let n = by_hardware.entry(w.info.hardware.clone()).or_default();
            if seen >= recent {
                *n += 1;
            }
        }
        for (hardware, n) in by_hardware {
            metrics::gauge!("spotenc_workers", "hardware" => hardware).set(f64::from(n));
        }
        let live = self.store.live_workers(now_ms() - LIVE_MS).await?;
        let mut by_pool: std::collections::BTreeMap<String, u32> = self
            .config
            .pools
            .pools
            .keys()
            .map(|k| (k.clone(), 0))
            .collect();
        for w in live {
            *by_pool
                .entry(self.config.pools.label(&w.info.pool).to_string())
                .or_default() += 1;
        }
        for (pool, n) in by_pool {
            metrics::gauge!("spotenc_pool_workers", "pool" => pool).set(f64::from(n));
        }
        Ok(())
    }

    /// Counts a new WatchJob stream of `client`, or refuses it once the
    /// client holds `quotas.watch_streams_per_client` on this replica.
    pub fn open_watch(&self, client: &str) -> Result<WatchGuard> {
        let max = self.config.quotas.watch_streams_per_client;
        let mut w = self.watches.lock().expect("watches lock");
        let n = w.entry(client.to_string()).or_default();
        if max > 0 && *n >= max {
            metrics::counter!("spotenc_quota_refusals_total", "quota" => "watch_streams")
                .increment(1);
            return Err(Error::Exhausted(format!(
                "client {client:?} has {n} WatchJob streams open, the most allowed \
                 (quotas.watch_streams_per_client)"
            )));
        }
        *n += 1;
        metrics::gauge!("spotenc_watch_streams").increment(1.0);
        Ok(WatchGuard {
            watches: self.watches.clone(),
            client: client.to_string(),
        })
    }
}

/// The longest idempotency key, in bytes: a key is an id, and each is kept
/// (in memory or Redis) for the retention period.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;

fn check_idempotency_key(key: &str) -> Result<()> {
    spotenc_proto::domain::check_text("idempotency key", key, MAX_IDEMPOTENCY_KEY_BYTES)
}

/// A worker's result as the coordinator records it: the objects this
/// attempt was told to write (not whatever URL or path the worker
/// reports), and for an encode every rendition with the chunk's frames;
/// `Err` says what was wrong.
/// A chunk made by identities other than its lease's is refused: it would
/// not stitch with its rendition's other chunks.
fn same_identities(
    task_id: &str,
    held: &spotenc_proto::domain::AttemptRecord,
    outcome: TaskOutcome,
) -> std::result::Result<TaskOutcome, String> {
    if let TaskOutcome::Encode(o) = &outcome {
        let made: Vec<&str> = std::iter::once(o.encoder.as_str())
            .chain(o.renditions.iter().map(|r| r.encoder.as_str()))
            .collect();
        if !held.identities.is_empty() && made != held.identities {
            return Err(format!(
                "{task_id} was encoded by {}, its lease named {}",
                made.join(", "),
                held.identities.join(", ")
            ));
        }
    }
    Ok(outcome)
}

fn canonical_outcome(
    task: &spotenc_core::state::TaskRecord,
    attempt: u32,
    mut outcome: TaskOutcome,
) -> std::result::Result<TaskOutcome, String> {
    let work = with_attempt_paths(task.work.clone(), attempt);
    let canonical = match &work {
        Work::Encode(e) => Some(e.output.clone()),
        Work::Audio(a) => Some(a.output.clone()),
        Work::Stitch(s) => Some(s.output.clone()),
        Work::Probe(_) => None,
    };
    if let (Some(path), TaskOutcome::Encode(o) | TaskOutcome::Audio(o) | TaskOutcome::Stitch(o)) =
        (canonical, &mut outcome)
    {
        o.path = path;
    }
    if let (Work::Encode(e), TaskOutcome::Encode(o)) = (&work, &mut outcome) {
        let task_id = &task.id;
        if o.renditions.len() != e.renditions.len() {
            return Err(format!(
                "{task_id} returned {} renditions, the job has {}",
                o.renditions.len(),
                e.renditions.len()
            ));
        }
        if let Some((i, r)) = o
            .renditions
            .iter()
            .enumerate()
            .find(|(_, r)| r.frames != task.frames_total)
        {
            return Err(format!(
                "{task_id} rendition {} has {} frames, the plan says {}",
                i + 1,
                r.frames,
                task.frames_total
            ));
        }
        for (r, target) in o.renditions.iter_mut().zip(&e.renditions) {
            r.path = target.output.clone();
        }
    }
    Ok(outcome)
}
