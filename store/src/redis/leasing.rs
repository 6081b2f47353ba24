//! Leasing on Redis: lease.lua's first-in first-out lease, or the
//! candidate window (window.lua) ranked by placement in Rust and claimed
//! with claim.lua.

use spotenc_proto::domain::{Capacity, LeasedTask, Work};
use spotenc_proto::Result;

use super::fields::{demand, enum_field, json, redis_error, to_json};
use super::{Leased, RedisStore};
use spotenc_core::cost::catalogue::Hardware;
use spotenc_core::cost::model::Demand;
use spotenc_core::cost::place::{job_of, Candidate};
use spotenc_core::cost::{Lease, WINDOW_PER_CLASS};
use spotenc_core::state::machine::{fill_stitch, with_attempt_paths};

/// How many of its ranked choices a lease offers claim.lua.
const CLAIM_LIST: usize = 16;

impl RedisStore {
    /// Leases a task for `worker_id`: placement ranks the window and
    /// claim.lua takes the first choice still pending; without placement
    /// (or a known worker) lease.lua takes the oldest task the worker can
    /// run. A stitch gets its dependencies' objects.
    pub(super) async fn lease_task(
        &self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<Option<LeasedTask>> {
        // A known worker goes through placement's ranking (first in, first
        // out among what it can run when placement is off), so capability
        // and affinity hold on both stores.
        let leased = match &lease.worker {
            Some(_) => self.place_and_claim(worker_id, lease, now_ms).await?,
            w => {
                let (price, slots, nvenc, on_demand) =
                    w.as_ref().map_or((0.0, 1, false, false), |w| {
                        (
                            w.pool.price_per_hour,
                            w.pool.slots,
                            w.pool.hardware == Hardware::Nvenc,
                            w.pool.capacity == Capacity::OnDemand,
                        )
                    });
                self.scripts
                    .lease
                    .key(&self.prefix)
                    .arg(&self.prefix)
                    .arg(worker_id)
                    .arg(now_ms)
                    .arg(self.limits.lease_ttl_ms)
                    .arg(price)
                    .arg(slots)
                    .arg(u8::from(nvenc))
                    .arg(u8::from(on_demand))
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(redis_error)?
            }
        };
        let Some((task_id, job_id, attempt, work, deps)) = leased else {
            return Ok(None);
        };
        let mut work: Work = json(&work, "task work")?;
        if let Work::Stitch(stitch) = &work {
            // Dependencies are done, so their results no longer change.
            let deps: Vec<String> = json(&deps, "task deps")?;
            let mut results = Vec::with_capacity(deps.len());
            for d in deps {
                let r = self.task_record(&d).await?.result;
                results.push((d, r));
            }
            work = fill_stitch(stitch, results)?;
        }
        Ok(Some(LeasedTask {
            task_id,
            job_id,
            attempt,
            lease_ttl_ms: self.limits.lease_ttl_ms,
            work: with_attempt_paths(work, attempt),
        }))
    }

    /// Reads the candidate window (window.lua), ranks it in Rust, and
    /// claims the first choice still pending (claim.lua); when every choice
    /// is gone, reads the window again, a few times at most.
    async fn place_and_claim(
        &self,
        worker_id: &str,
        lease: &Lease,
        now_ms: i64,
    ) -> Result<Option<Leased>> {
        for _ in 0..3 {
            let mut inv = self.scripts.window.prepare_invoke();
            inv.key(&self.prefix)
                .arg(&self.prefix)
                .arg(worker_id)
                .arg(now_ms)
                .arg(WINDOW_PER_CLASS);
            for class in Demand::classes() {
                inv.arg(class);
            }
            let (held, _n, flat): (u32, usize, Vec<String>) = inv
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(redis_error)?;
            let mut candidates = Vec::with_capacity(flat.len() / 9);
            // (c[1], the job's id, is not needed: the order holds its job.)
            for c in flat.chunks_exact(9) {
                let order = c[3].parse::<f64>().unwrap_or_default() as u64;
                let pending_since_ms = c[4].parse().unwrap_or_default();
                // A chunk the outlier guard sent back waits for another
                // worker a while (as the machine's claim decides).
                if c[8] == worker_id && now_ms - pending_since_ms < lease.policy.avoid_rejected_ms {
                    continue;
                }
                let d = demand(&c[6])?;
                // The job's pin binds its encode chunks only.
                let pin = if c[7].is_empty() || d.outputs.is_empty() {
                    Vec::new()
                } else {
                    json(&c[7], "job identities")?
                };
                candidates.push(Candidate {
                    task_id: c[0].clone().into(),
                    job: job_of(order),
                    partition: enum_field(&c[2])?,
                    order,
                    pending_since_ms,
                    latency: c[5] == "1",
                    pinned: std::borrow::Cow::Owned(pin),
                    demand: std::borrow::Cow::Owned(d),
                    interned: None,
                });
            }
            // Workers reading the same window rank it alike: claim.lua
            // takes the first of the ranking still pending, in one call.
            // An empty ranking still goes to claim.lua, which records that
            // the worker asked (window.lua writes nothing).
            let ranked = lease.rank(&candidates, held, now_ms);
            let mut inv = self.scripts.claim.prepare_invoke();
            inv.key(&self.prefix)
                .arg(&self.prefix)
                .arg(worker_id)
                .arg(now_ms)
                .arg(self.limits.lease_ttl_ms);
            for id in ranked.iter().take(CLAIM_LIST) {
                let demand = candidates
                    .iter()
                    .find(|c| &c.task_id == id)
                    .map(|c| c.demand.clone())
                    .unwrap_or_default();
                let (rate, on_demand, sessions) = lease.pricing(&demand);
                let names = lease.identity_names(&demand);
                let names = if names.is_empty() {
                    String::new()
                } else {
                    to_json(&names)
                };
                inv.arg(id)
                    .arg(rate)
                    .arg(u8::from(on_demand))
                    .arg(sessions)
                    .arg(names);
            }
            let claimed: Option<Leased> = inv
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(redis_error)?;
            if let Some(leased) = claimed {
                return Ok(Some(with_identities(leased, lease, &candidates)?));
            }
            if ranked.is_empty() {
                return Ok(None);
            }
        }
        Ok(None)
    }
}

/// The claimed encode chunk's work with the leasing worker's encoder
/// identities (what claim.lua pinned its job to).
fn with_identities(mut leased: Leased, lease: &Lease, candidates: &[Candidate]) -> Result<Leased> {
    let Some(c) = candidates.iter().find(|c| c.task_id == leased.0) else {
        return Ok(leased);
    };
    if c.demand.outputs.is_empty() {
        return Ok(leased);
    }
    let mut work: Work = json(&leased.3, "task work")?;
    if let Work::Encode(e) = &mut work {
        e.identities = lease.identities(&c.demand);
        leased.3 = to_json(&work);
    }
    Ok(leased)
}
