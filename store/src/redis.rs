//! The Redis store: every transition is one Lua script (`lua/*.lua`, each
//! prefixed with `lua/lib.lua`), so any number of stateless coordinator
//! replicas can share one Redis. With AOF on, an accepted job survives a
//! Redis restart.
//!
//! Records are hashes of plain fields; work, results and the job spec are
//! opaque JSON the scripts never parse. Reads are plain commands: they need
//! no atomicity beyond one job's snapshot.
//!
//! Layout: this file holds the store and its transitions; `leasing` the
//! lease (first in, first out, or ranked by placement and claimed); `conn`
//! the connection (one Redis or a cluster) and its checks; `fields` records
//! to and from Redis hashes.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use spotenc_proto::domain::{
    JobSpec, JobState, LeasedTask, ProbeTask, TaskKind, TaskLog, TaskOutcome, Work,
};
use spotenc_proto::{Error, Result};

use std::collections::BTreeMap;

use crate::StateStore;
use spotenc_core::cost::capacity::{aggregate, BacklogItem};
use spotenc_core::cost::model::{Demand, Model, Observation};
use spotenc_core::cost::place::JOB_ORDER_SPAN;
use spotenc_core::cost::Lease;
use spotenc_core::quality::Outlier;
use spotenc_core::state::machine::task_log;
use spotenc_core::state::{
    Ending, JobRecord, Limits, NewTask, PinnedJob, PoolStat, TaskRecord, Transition, WorkerRecord,
};

mod conn;
mod fields;
mod leasing;

use conn::{check_eviction, check_not_cluster, Conn};
pub use conn::{cluster_nodes, eviction_policy, hash_tagged};
use fields::{
    demand, enum_name, job_from_fields, json, redis_error, task_from_fields, to_json, transition_of,
};

/// A lease script's reply: task id, job id, attempt, work and deps JSON.
type Leased = (String, String, u32, String, String);

macro_rules! script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("../lua/lib.lua"),
            "\n",
            include_str!(concat!("../lua/", $name, ".lua"))
        ))
    };
}

struct Scripts {
    submit: Script,
    lease: Script,
    window: Script,
    backlog: Script,
    claim: Script,
    heartbeat: Script,
    complete: Script,
    fail: Script,
    hand_back: Script,
    release: Script,
    purge: Script,
    expire: Script,
    escalate: Script,
    cancel: Script,
    finish_commit: Script,
    pinned: Script,
    restart: Script,
    reject: Script,
    strike: Script,
}

pub struct RedisStore {
    conn: Conn,
    prefix: String,
    work_root: String,
    limits: Limits,
    scripts: Scripts,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`, or
    /// `redis+cluster://host:port,host:port` for a Redis Cluster); keys
    /// live under `prefix` as a hash tag ([`hash_tagged`]).
    pub async fn connect(url: &str, prefix: &str, work_root: &str, limits: Limits) -> Result<Self> {
        let conn = match cluster_nodes(url) {
            Some(nodes) => {
                if nodes.is_empty() {
                    return Err(Error::invalid(format!(
                        "invalid redis url {url:?}: redis+cluster:// needs host:port[,host:port...]"
                    )));
                }
                // Every seed node must keep its keys: a cluster is as safe
                // as its most evicting node.
                for node in &nodes {
                    let client = redis::Client::open(node.as_str())
                        .map_err(|e| Error::invalid(format!("invalid redis url {url:?}: {e}")))?;
                    let mut c = client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| {
                            Error::Unavailable(format!(
                                "cannot reach redis cluster node {node}: {e}"
                            ))
                        })?;
                    check_eviction(&mut c, node).await?;
                }
                let client =
                    redis::cluster::ClusterClient::new(nodes.iter().map(String::as_str))
                        .map_err(|e| Error::invalid(format!("invalid redis url {url:?}: {e}")))?;
                Conn::Cluster(client.get_async_connection().await.map_err(|e| {
                    Error::Unavailable(format!("cannot reach redis cluster at {url}: {e}"))
                })?)
            }
            None => {
                let client = redis::Client::open(url)
                    .map_err(|e| Error::invalid(format!("invalid redis url {url:?}: {e}")))?;
                let conn = ConnectionManager::new(client)
                    .await
                    .map_err(|e| Error::Unavailable(format!("cannot reach redis at {url}: {e}")))?;
                check_eviction(&mut conn.clone(), url).await?;
                check_not_cluster(&mut conn.clone(), url).await?;
                Conn::Single(conn)
            }
        };
        Ok(RedisStore {
            conn,
            prefix: hash_tagged(prefix),
            work_root: work_root.trim_end_matches('/').to_string(),
            limits,
            scripts: Scripts {
                submit: script!("submit"),
                lease: script!("lease"),
                window: script!("window"),
                backlog: script!("backlog"),
                claim: script!("claim"),
                heartbeat: script!("heartbeat"),
                complete: script!("complete"),
                fail: script!("fail"),
                hand_back: script!("hand_back"),
                release: script!("release"),
                purge: script!("purge"),
                expire: script!("expire"),
                escalate: script!("escalate"),
                cancel: script!("cancel"),
                finish_commit: script!("finish_commit"),
                pinned: script!("pinned"),
                restart: script!("restart"),
                reject: script!("reject"),
                strike: script!("strike"),
            },
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// Runs a read-only pipeline, once more if the connection broke (the
    /// connection manager reconnects in the background). Scripts are not
    /// retried: a broken connection cannot say whether one ran.
    async fn read<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T> {
        let mut c = self.conn.clone();
        match pipe.query_async(&mut c).await {
            Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                pipe.query_async(&mut c).await.map_err(redis_error)
            }
            r => r.map_err(redis_error),
        }
    }

    async fn task_record(&self, id: &str) -> Result<TaskRecord> {
        let (h, history, interruptions): (
            HashMap<String, String>,
            Vec<String>,
            std::collections::BTreeMap<String, u32>,
        ) = self
            .read(
                redis::pipe()
                    .hgetall(self.key(&format!("task:{id}")))
                    .lrange(self.key(&format!("task:{id}:history")), 0, -1)
                    .hgetall(self.key(&format!("task:{id}:intr"))),
            )
            .await?;
        if h.is_empty() {
            return Err(Error::NotFound(format!("task {id}")));
        }
        task_from_fields(id, &h, history, interruptions)
    }

    async fn job_record(&self, id: &str) -> Result<JobRecord> {
        let (h, task_ids): (HashMap<String, String>, Vec<String>) = self
            .read(
                redis::pipe()
                    .hgetall(self.key(&format!("job:{id}")))
                    .lrange(self.key(&format!("job:{id}:tasks")), 0, -1),
            )
            .await?;
        if h.is_empty() {
            return Err(Error::NotFound(format!("job {id}")));
        }
        job_from_fields(id, &h, task_ids)
    }

    async fn transition(&self, job_id: String) -> Result<Transition> {
        let state = self.job_record(&job_id).await?.state;
        Ok(Transition {
            job_id: job_id.into(),
            state,
        })
    }
}

#[async_trait::async_trait]
impl StateStore for RedisStore {
    async fn submit_as(
        &self,
        spec: JobSpec,
        key: &str,
        client: &str,
        max_live: u32,
        now_ms: i64,
    ) -> Result<JobRecord> {
        let job_id = uuid::Uuid::new_v4().simple().to_string();
        let probe_id = format!("{job_id}/probe");
        let work = Work::Probe(ProbeTask {
            input: spec.input.clone(),
        });
        let id: String = self
            .scripts
            .submit
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(&job_id)
            .arg(key)
            .arg(now_ms)
            .arg(format!("{}/{job_id}", self.work_root))
            .arg(to_json(&spec))
            .arg(spec.max_attempts)
            .arg(&probe_id)
            .arg(to_json(&work))
            .arg(enum_name(&spec.partition()))
            .arg(spec.escalate_after_attempts)
            .arg(u64::from(spec.escalate_after_wait_seconds) * 1000)
            .arg(&spec.input)
            .arg(client)
            .arg(max_live)
            .arg(JOB_ORDER_SPAN)
            .arg(
                spec.outputs()
                    .into_iter()
                    .map(|(o, _, _)| o)
                    .collect::<Vec<_>>(),
            )
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        self.job_record(&id).await
    }

    async fn register_worker(&self, worker: WorkerRecord) -> Result<()> {
        let mut c = self.conn.clone();
        let _: () = c
            .hset_multiple(
                self.key(&format!("worker:{}", worker.id)),
                &[
                    ("record", to_json(&worker)),
                    ("capacity", enum_name(&worker.info.capacity)),
                    ("pool", worker.info.pool.clone()),
                ],
            )
            .await
            .map_err(redis_error)?;
        let _: () = c
            .zadd(self.key("workers"), &worker.id, worker.registered_unix_ms)
            .await
            .map_err(redis_error)?;
        let _: () = c
            .zadd(self.key("seen"), &worker.id, worker.registered_unix_ms)
            .await
            .map_err(redis_error)?;
        Ok(())
    }

    async fn lease(
        &self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<Option<LeasedTask>> {
        self.lease_task(worker_id, lease, now_ms).await
    }

    async fn worker(&self, worker_id: &str) -> Result<WorkerRecord> {
        let key = self.key(&format!("worker:{worker_id}"));
        let (record, strikes): (Option<String>, Vec<String>) = self
            .read(
                redis::pipe()
                    .hget(&key, "record")
                    .hvals(format!("{key}:strikes")),
            )
            .await?;
        let record = record.ok_or_else(|| Error::NotFound(format!("worker {worker_id}")))?;
        let mut record: WorkerRecord = json(&record, "worker record")?;
        record.strikes = strikes;
        record.strikes.sort();
        Ok(record)
    }

    async fn live_workers(&self, since_ms: i64) -> Result<Vec<WorkerRecord>> {
        let (ids,): (Vec<String>,) = self
            .read(redis::pipe().zrangebyscore(self.key("seen"), since_ms, "+inf"))
            .await?;
        if ids.is_empty() {
            // An empty pipeline is an error to the client, not an answer.
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(self.key(&format!("worker:{id}")), "record");
        }
        let records: Vec<Option<String>> = self.read(&pipe).await?;
        records
            .into_iter()
            .flatten()
            .map(|r| json(&r, "worker record"))
            .collect()
    }

    async fn model(&self) -> Result<Model> {
        let (h,): (HashMap<String, String>,) =
            self.read(redis::pipe().hgetall(self.key("model"))).await?;
        let mut model = Model::default();
        for (field, v) in &h {
            let Some((key, part)) = field.rsplit_once('#') else {
                continue;
            };
            let s = model.samples.entry(key.to_string()).or_default();
            match part {
                "n" => s.n = v.parse().unwrap_or_default(),
                "sum" => s.sum = v.parse().unwrap_or_default(),
                "m" => s.measured = v.parse().unwrap_or_default(),
                "bpp" => s.bits_per_pixel_sum = v.parse().unwrap_or_default(),
                "psnr" => s.psnr_sum = v.parse().unwrap_or_default(),
                _ => {}
            }
        }
        Ok(model)
    }

    async fn learn(&self, observations: &[Observation]) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for o in observations {
            let key = o.key.encode();
            pipe.hincr(self.key("model"), format!("{key}#n"), 1)
                .ignore()
                .cmd("HINCRBYFLOAT")
                .arg(self.key("model"))
                .arg(format!("{key}#sum"))
                .arg(o.pixels_per_second)
                .ignore();
            if let Some(d) = o.delivered {
                pipe.hincr(self.key("model"), format!("{key}#m"), 1)
                    .ignore()
                    .cmd("HINCRBYFLOAT")
                    .arg(self.key("model"))
                    .arg(format!("{key}#bpp"))
                    .arg(d.bits_per_pixel)
                    .ignore()
                    .cmd("HINCRBYFLOAT")
                    .arg(self.key("model"))
                    .arg(format!("{key}#psnr"))
                    .arg(d.psnr)
                    .ignore();
            }
        }
        let mut c = self.conn.clone();
        pipe.query_async::<()>(&mut c).await.map_err(redis_error)
    }

    async fn pool_stats(&self) -> Result<BTreeMap<String, PoolStat>> {
        let (h,): (HashMap<String, String>,) = self
            .read(redis::pipe().hgetall(self.key("poolstats")))
            .await?;
        let mut out: BTreeMap<String, PoolStat> = BTreeMap::new();
        for (field, v) in &h {
            let Some((pool, part)) = field.rsplit_once('#') else {
                continue;
            };
            let s = out.entry(pool.to_string()).or_default();
            match part {
                "intr" => s.interruptions = v.parse().unwrap_or_default(),
                "secs" => s.attempt_seconds = v.parse().unwrap_or_default(),
                _ => {}
            }
        }
        Ok(out)
    }

    async fn capacity_inputs(&self) -> Result<(Vec<BacklogItem>, BTreeMap<String, u32>)> {
        let mut inv = self.scripts.backlog.prepare_invoke();
        inv.key(&self.prefix).arg(&self.prefix);
        for class in Demand::classes() {
            inv.arg(class);
        }
        let (_n, flat, workers): (usize, Vec<String>, Vec<String>) = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        let mut tasks = Vec::with_capacity(flat.len() / 6);
        for c in flat.chunks_exact(6) {
            let since: i64 = c[3].parse::<f64>().unwrap_or_default() as i64;
            tasks.push((
                demand(&c[2])?,
                c[1] == "1",
                c[0] == "OnDemand",
                since,
                (c[4] == "1").then(|| c[5].clone()),
            ));
        }
        let backlog = aggregate(
            tasks
                .iter()
                .map(|(d, l, o, s, r)| (d, *l, *o, *s, r.as_deref())),
        );
        let mut leases: BTreeMap<String, u32> = BTreeMap::new();
        for w in workers.into_iter().filter(|w| !w.is_empty()) {
            *leases.entry(w).or_default() += 1;
        }
        Ok((backlog, leases))
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        task_id: &str,
        attempt: u32,
        frames: u64,
        now_ms: i64,
    ) -> Result<bool> {
        let held: i64 = self
            .scripts
            .heartbeat
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(task_id)
            .arg(attempt)
            .arg(frames)
            .arg(now_ms)
            .arg(self.limits.lease_ttl_ms)
            .arg(worker_id)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        Ok(held == 1)
    }

    async fn complete(
        &self,
        task_id: &str,
        attempt: u32,
        outcome: TaskOutcome,
        follow_ups: Vec<NewTask>,
        now_ms: i64,
    ) -> Result<Transition> {
        let (kind, frames, probe) = match &outcome {
            TaskOutcome::Probe(p) => (TaskKind::Probe, -1i64, to_json(p)),
            TaskOutcome::Encode(o) => (TaskKind::Encode, o.frames as i64, String::new()),
            TaskOutcome::Audio(_) => (TaskKind::Audio, -1, String::new()),
            TaskOutcome::Stitch(o) => (TaskKind::Stitch, o.frames as i64, String::new()),
        };
        let mut inv = self.scripts.complete.prepare_invoke();
        inv.key(&self.prefix)
            .arg(&self.prefix)
            .arg(task_id)
            .arg(attempt)
            .arg(enum_name(&kind))
            .arg(to_json(&outcome))
            .arg(frames)
            .arg(now_ms)
            .arg(probe)
            .arg(JOB_ORDER_SPAN)
            .arg(follow_ups.len());
        for t in &follow_ups {
            inv.arg(&t.id)
                .arg(enum_name(&t.kind))
                .arg(t.chunk)
                .arg(to_json(&t.work))
                .arg(to_json(&t.deps))
                .arg(t.frames_total)
                .arg(t.demand.class())
                .arg(to_json(&t.demand))
                .arg(t.demand.sessions());
        }
        let state: String = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        transition_of(spotenc_core::state::job_of(task_id).to_string(), &state)
    }

    async fn fail(
        &self,
        task_id: &str,
        attempt: u32,
        failure: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        let (job_id, state): (String, String) = self
            .scripts
            .fail
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(task_id)
            .arg(attempt)
            .arg(&failure.message)
            .arg(if failure.retryable { 1 } else { 0 })
            .arg(now_ms)
            .arg(TaskLog::clamp(&failure.log))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        transition_of(job_id, &state)
    }

    async fn hand_back(
        &self,
        task_id: &str,
        attempt: u32,
        notice: &Ending,
        now_ms: i64,
    ) -> Result<Transition> {
        let (job_id, state): (String, String) = self
            .scripts
            .hand_back
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(task_id)
            .arg(attempt)
            .arg(&notice.message)
            .arg(now_ms)
            .arg(TaskLog::clamp(&notice.log))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        transition_of(job_id, &state)
    }

    async fn purge(&self, cutoff_ms: i64, limit: usize) -> Result<super::Purged> {
        let (jobs, workers): (usize, usize) = self
            .scripts
            .purge
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(cutoff_ms)
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        Ok(super::Purged { jobs, workers })
    }

    async fn release(
        &self,
        task_id: &str,
        attempt: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<Transition> {
        let (job_id, state): (String, String) = self
            .scripts
            .release
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(task_id)
            .arg(attempt)
            .arg(reason)
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        transition_of(job_id, &state)
    }

    async fn expire_leases(&self, now_ms: i64) -> Result<Vec<Transition>> {
        let flat: Vec<String> = self
            .scripts
            .expire
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(now_ms)
            .arg(self.limits.max_expiries)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        flat.chunks(2)
            .map(|p| transition_of(p[0].clone(), &p[1]))
            .collect()
    }

    async fn escalate_waiting(&self, now_ms: i64) -> Result<Vec<String>> {
        self.scripts
            .escalate
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)
    }

    async fn pinned_waiting(&self) -> Result<Vec<PinnedJob>> {
        let flat: Vec<String> = self
            .scripts
            .pinned
            .key(&self.prefix)
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        let mut out = Vec::with_capacity(flat.len() / 4);
        for c in flat.chunks_exact(4) {
            out.push(PinnedJob {
                job_id: c[0].clone(),
                identities: json(&c[1], "job identities")?,
                demand: demand(&c[2])?,
                partition: fields::enum_field(&c[3])?,
            });
        }
        out.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        Ok(out)
    }

    async fn restart_identity(
        &self,
        job_id: &str,
        expected: &[String],
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<Transition>> {
        let state: Option<String> = self
            .scripts
            .restart
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(job_id)
            .arg(to_json(&expected))
            .arg(reason)
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        state
            .map(|s| transition_of(job_id.to_string(), &s))
            .transpose()
    }

    async fn reject_chunks(
        &self,
        stitch_id: &str,
        attempt: u32,
        outliers: &[Outlier],
        now_ms: i64,
    ) -> Result<Option<Transition>> {
        let mut inv = self.scripts.reject.prepare_invoke();
        inv.key(&self.prefix)
            .arg(&self.prefix)
            .arg(stitch_id)
            .arg(attempt)
            .arg(now_ms);
        for o in outliers {
            inv.arg(&o.task_id)
                .arg(&o.worker_id)
                .arg(&o.reason)
                .arg(to_json(&o.psnr));
        }
        let leased: Option<(String, String)> = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        leased
            .map(|(job, state)| transition_of(job, &state))
            .transpose()
    }

    async fn strike_worker(&self, worker_id: &str, key: &str, reason: &str) -> Result<Vec<String>> {
        let worker = self.key(&format!("worker:{worker_id}"));
        // A hash by key: the same strike counts once. Not retried, like a
        // script: a broken connection cannot say whether it was counted.
        let strikes: Option<Vec<String>> = self
            .scripts
            .strike
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(&worker)
            .arg(key)
            .arg(reason)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        let mut strikes = strikes.unwrap_or_default();
        strikes.sort();
        Ok(strikes)
    }

    async fn cancel(&self, job_id: &str, now_ms: i64) -> Result<Transition> {
        let state: String = self
            .scripts
            .cancel
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(job_id)
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        transition_of(job_id.to_string(), &state)
    }

    async fn finish_commit(
        &self,
        job_id: &str,
        outcome: std::result::Result<(), String>,
        now_ms: i64,
    ) -> Result<Transition> {
        let (ok, err) = match outcome {
            Ok(()) => (1, String::new()),
            Err(e) => (0, e),
        };
        let _: String = self
            .scripts
            .finish_commit
            .key(&self.prefix)
            .arg(&self.prefix)
            .arg(job_id)
            .arg(ok)
            .arg(err)
            .arg(now_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_error)?;
        self.transition(job_id.to_string()).await
    }

    async fn job(&self, job_id: &str) -> Result<(JobRecord, Vec<TaskRecord>)> {
        let job = self.job_record(job_id).await?;
        let mut tasks = Vec::with_capacity(job.task_ids.len());
        for t in &job.task_ids {
            tasks.push(self.task_record(t).await?);
        }
        Ok((job, tasks))
    }

    async fn task(&self, task_id: &str) -> Result<TaskRecord> {
        self.task_record(task_id).await
    }

    async fn queue_depth(&self) -> Result<(u64, u64)> {
        self.read(
            redis::pipe()
                .zcard(self.key("pending:Spot"))
                .zcard(self.key("pending:OnDemand")),
        )
        .await
    }

    async fn task_logs(&self, job_id: &str, task_id: &str) -> Result<Vec<TaskLog>> {
        let job = self.job_record(job_id).await?;
        if !task_id.is_empty() && !job.task_ids.iter().any(|t| t == task_id) {
            return Err(Error::NotFound(format!("task {task_id}")));
        }
        let mut out = Vec::new();
        for id in job
            .task_ids
            .iter()
            .filter(|t| task_id.is_empty() || *t == task_id)
        {
            let task = self.task_record(id).await?;
            for a in task.history.iter().filter(|a| a.log_bytes > 0) {
                let log: Option<String> = self
                    .read(redis::pipe().get(self.key(&format!("task:{id}:log:{}", a.attempt))))
                    .await
                    .map(|(l,): (Option<String>,)| l)?;
                if let Some(log) = log {
                    out.push(task_log(id, a, log));
                }
            }
        }
        Ok(out)
    }

    async fn list_jobs(&self, states: &[JobState], limit: usize) -> Result<Vec<JobRecord>> {
        let mut c = self.conn.clone();
        // The reaper asks for committing jobs twice a second; keep that
        // off the full job index.
        let ids: Vec<String> = if states == [JobState::Committing] {
            c.smembers(self.key("committing")).await
        } else {
            c.zrevrange(self.key("jobs"), 0, -1).await
        }
        .map_err(redis_error)?;
        let mut out = Vec::new();
        for id in ids {
            if out.len() >= limit {
                break;
            }
            let job = self.job_record(&id).await?;
            if states.is_empty() || states.contains(&job.state) {
                out.push(job);
            }
        }
        Ok(out)
    }
}
