//! What runs beside the RPCs: retention, the reaper and capacity
//! planning; and the effects of transitions: committing a stitched job,
//! cleaning up an ended one, counting its costs.

use std::time::Duration;

use spotenc_proto::domain::{JobState, OutputObject, TaskOutcome, Work};
use spotenc_proto::Result;
use tracing::{info, warn};

use super::{now_ms, Coordinator, LIVE_MS, PLAN_INTERVAL};
use spotenc_core::cost::capacity::{
    plan_capacity, queue_oldest_seconds, HealthState, InFlight, PoolTarget,
};
use spotenc_core::state::{JobRecord, Transition};

impl Coordinator {
    /// Retention: forgets jobs that ended more than `keep` ago (tasks,
    /// attempts, logs, idempotency keys) and workers silent that long, in
    /// batches.
    pub async fn purge(&self, keep: Duration) {
        const BATCH: usize = 1000;
        let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        loop {
            match self.store.purge(cutoff, BATCH).await {
                Ok(p) => {
                    metrics::counter!("spotenc_purged_jobs_total").increment(p.jobs as u64);
                    metrics::counter!("spotenc_purged_workers_total").increment(p.workers as u64);
                    if p.jobs + p.workers > 0 {
                        info!(
                            jobs = p.jobs,
                            workers = p.workers,
                            "retention: forgot ended jobs and silent workers"
                        );
                    }
                    if p.jobs < BATCH && p.workers < BATCH {
                        break;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "retention pass failed");
                    break;
                }
            }
        }
        // This replica's own view of the workers, too.
        self.workers
            .lock()
            .expect("workers lock")
            .retain(|_, w| w.last_seen_unix_ms >= cutoff);
    }

    /// Requeues tasks whose leases expired and finishes commits a crash
    /// interrupted. Runs periodically.
    pub async fn reap(&self) -> Result<()> {
        for t in self.store.expire_leases(now_ms()).await? {
            metrics::counter!("spotenc_lease_expiries_total").increment(1);
            warn!(job = %t.job_id, "lease expired, task requeued");
            self.after(t).await;
        }
        self.restart_unserved().await?;
        let escalated = self.store.escalate_waiting(now_ms()).await?;
        for task in &escalated {
            info!(task = %task, "waited too long on spot, escalated to on-demand");
        }
        metrics::counter!("spotenc_tasks_escalated_total").increment(escalated.len() as u64);
        if !escalated.is_empty() {
            self.work_ready.notify_waiters();
        }
        for job in self
            .store
            .list_jobs(&[JobState::Committing], usize::MAX)
            .await?
        {
            self.commit(&job.id).await;
        }
        // The planner runs every PLAN_INTERVAL (KEDA polls every 30 s), so
        // pool health keeps time without reading the backlog on every reap.
        let due = self
            .last_plan
            .lock()
            .expect("plan lock")
            .is_none_or(|at| at.elapsed() >= PLAN_INTERVAL);
        if due {
            self.capacity().await?;
        }
        if self.config.metrics_listen.is_some() {
            self.record_gauges().await?;
        }
        Ok(())
    }

    /// Restarts jobs pinned to encoder identities that no live worker has
    /// served for the affinity wait, under whichever identity leases next.
    async fn restart_unserved(&self) -> Result<()> {
        let pinned = self.store.pinned_waiting().await?;
        if pinned.is_empty() && self.unserved.lock().expect("unserved lock").is_empty() {
            return Ok(());
        }
        let workers = self.live_placement_workers().await?;
        let now = now_ms();
        let wait = self.config.placement.affinity_wait_ms;
        let due = self
            .unserved
            .lock()
            .expect("unserved lock")
            .due(&pinned, &workers, wait, now);
        for (job, reason) in due {
            if let Some(t) = self
                .store
                .restart_identity(&job.job_id, &job.identities, &reason, now)
                .await?
            {
                warn!(job = %job.job_id, identities = ?job.identities, %reason, "restarted under another encoder identity");
                metrics::counter!("spotenc_identity_restarts_total").increment(1);
                self.work_ready.notify_waiters();
                self.after(t).await;
            }
        }
        Ok(())
    }

    /// Desired workers per catalogue pool now, with reasons, and the
    /// planner's gauges: what KEDA scales each pool by.
    pub async fn capacity(&self) -> Result<Vec<PoolTarget>> {
        let now = now_ms();
        let (backlog, leases) = self.store.capacity_inputs().await?;
        let live = self.store.live_workers(now - LIVE_MS).await?;
        let mut flight: std::collections::BTreeMap<String, InFlight> = Default::default();
        for w in &live {
            let f = flight.entry(w.info.pool.clone()).or_default();
            f.live += 1;
            if leases.get(&w.id).is_some_and(|n| *n > 0) {
                f.busy += 1;
            }
        }
        let (model, _) = self.view().await?;
        let policy = &self.config.capacity;
        let catalogue = &self.config.pools;
        let targets = {
            let mut tracker = self.health.lock().expect("health lock");
            let health = tracker.health(catalogue);
            let targets = plan_capacity(catalogue, &backlog, &flight, &model, &health, policy);
            for t in &targets {
                if let Some(pool) = catalogue.get(&t.pool) {
                    tracker.observe(pool, t.live, t.desired_workers, now, policy);
                }
            }
            targets
        };
        *self.last_plan.lock().expect("plan lock") = Some(std::time::Instant::now());
        *self.over_plan.lock().expect("plan lock") = targets
            .iter()
            .filter(|t| t.spot_closed)
            .map(|t| t.pool.clone())
            .collect();
        for t in &targets {
            let capacity = if t.on_demand { "on-demand" } else { "spot" };
            metrics::gauge!("spotenc_pool_desired_workers", "pool" => t.pool.clone(), "capacity" => capacity)
                .set(f64::from(t.desired_workers));
            metrics::gauge!("spotenc_pool_backlog_seconds", "pool" => t.pool.clone())
                .set(t.backlog_seconds);
            metrics::gauge!("spotenc_pool_interruption_rate", "pool" => t.pool.clone())
                .set(t.health.interruption_rate_per_hour);
            for state in HealthState::ALL {
                metrics::gauge!("spotenc_pool_health", "pool" => t.pool.clone(), "state" => state.name())
                    .set(if t.health.state == state { 1.0 } else { 0.0 });
            }
        }
        for (priority, latency, target) in [
            ("latency", true, policy.latency_target_seconds),
            ("cost", false, policy.cost_target_seconds),
        ] {
            let oldest = queue_oldest_seconds(&backlog, latency, now);
            metrics::gauge!("spotenc_queue_oldest_seconds", "priority" => priority).set(oldest);
            metrics::gauge!("spotenc_queue_target_seconds", "priority" => priority).set(target);
        }
        Ok(targets)
    }

    /// Acts on where a transition left a job.
    pub(super) async fn after(&self, t: Transition) {
        match t.state {
            JobState::Committing => self.commit(&t.job_id).await,
            JobState::Failed | JobState::Cancelled => self.cleanup(&t.job_id).await,
            _ => {}
        }
        self.work_ready.notify_waiters();
    }

    async fn cleanup(&self, job_id: &str) {
        if let Ok((job, tasks)) = self.store.job(job_id).await {
            let outputs: Vec<&str> = job.spec.outputs().into_iter().map(|(o, _, _)| o).collect();
            self.broker
                .cleanup(&self.work_dir(&job), &outputs, &job.id)
                .await;
            let state = format!("{:?}", job.state).to_lowercase();
            metrics::counter!("spotenc_jobs_ended_total", "state" => state).increment(1);
            self.count_costs(&job, &tasks);
            info!(job = %job_id, state = ?job.state, error = %job.error, "job ended");
        }
    }

    /// Adds an ended job's attempt costs, output seconds and flagged seams
    /// to the Prometheus counters (per replica: each job ends on one
    /// replica).
    fn count_costs(&self, job: &JobRecord, tasks: &[spotenc_core::state::TaskRecord]) {
        for a in tasks.iter().flat_map(|t| t.history.iter()) {
            let pool = self.config.pools.label(&a.pool).to_string();
            // A gauge only goes up here: the metrics crate's counters are
            // integers, and dollars are not.
            metrics::gauge!("spotenc_cost_dollars_total", "pool" => pool, "outcome" => a.outcome.as_str())
                .increment(a.cost_dollars);
        }
        if job.state == JobState::Succeeded {
            let seams: usize = spotenc_core::quality::report(&job.spec, tasks)
                .iter()
                .map(|q| q.seams.len())
                .sum();
            metrics::counter!("spotenc_seams_flagged_total").increment(seams as u64);
            if let Some(p) = &job.probe {
                for (_, video, _) in job.spec.outputs() {
                    let codec = video.codec.name();
                    metrics::counter!("spotenc_output_seconds_total", "codec" => codec)
                        .increment(p.duration_seconds.round() as u64);
                }
            }
        }
    }

    async fn commit(&self, job_id: &str) {
        let _guard = self.commit_lock.lock().await;
        let Ok((job, tasks)) = self.store.job(job_id).await else {
            return;
        };
        if job.state != JobState::Committing {
            return;
        }
        // Every rendition's stitched object onto its output, in order; a
        // repeat after a crash skips what is already there.
        let stitched: Vec<(u32, OutputObject)> = tasks
            .iter()
            .filter_map(|t| match (&t.work, &t.result) {
                (Work::Stitch(s), Some(TaskOutcome::Stitch(obj))) => {
                    Some((s.rendition, obj.clone()))
                }
                _ => None,
            })
            .collect();
        let outputs = job.spec.outputs();
        let mut outcome = if stitched.len() == outputs.len() {
            Ok(())
        } else {
            Err(format!(
                "{} of {} renditions stitched",
                stitched.len(),
                outputs.len()
            ))
        };
        // All or nothing: every target is checked before the first rename;
        // a failed check fails the job with nothing replaced.
        let mut targets = Vec::new();
        for (r, obj) in &stitched {
            if outcome.is_err() {
                break;
            }
            match outputs.get(*r as usize) {
                Some((output, _, _)) => {
                    outcome = self.broker.check_commit(obj, output).await;
                    targets.push((obj, output.to_string()));
                }
                None => outcome = Err(format!("stitch of unknown rendition {r}")),
            }
        }
        if outcome.is_ok() {
            for (obj, output) in &targets {
                if let Err(e) = self.broker.commit(obj, output).await {
                    // Some outputs may be in place already: the job stays
                    // Committing and the reaper retries the commit (each
                    // rename is repeatable), so it never ends Failed with
                    // only some outputs replaced.
                    warn!(job = %job_id, %output, error = %e, "commit failed; retrying");
                    return;
                }
            }
        }
        let ok = outcome.is_ok();
        match self.store.finish_commit(job_id, outcome, now_ms()).await {
            Ok(_) if ok => {
                info!(job = %job_id, output = %job.spec.output, "job committed");
                self.cleanup(job_id).await;
            }
            Ok(_) => self.cleanup(job_id).await,
            Err(e) => warn!(job = %job_id, error = %e, "commit not recorded"),
        }
    }
}
