//! [`HealthTracker`]: pool health from hand-backs, registrations and the
//! planner's own desired counts, which [`super::plan_capacity`] reads.

use std::collections::{BTreeMap, VecDeque};

use super::{CapacityPolicy, HealthState, PoolHealth};
use crate::cost::catalogue::{Catalogue, Pool};

/// Pool health from what the coordinator sees: hand-backs, workers
/// registering, and the planner's own desired counts. Kept in memory by
/// each coordinator replica.
#[derive(Debug, Clone, Default)]
pub struct HealthTracker {
    pools: BTreeMap<String, Tracked>,
}

#[derive(Debug, Clone, Default)]
struct Tracked {
    /// Recent interruptions (ms), within the reclaim window.
    recent: VecDeque<i64>,
    /// Interruptions and live worker-seconds, decayed with a one-hour
    /// time constant.
    interruptions: f64,
    live_seconds: f64,
    last_ms: Option<i64>,
    /// Since when live workers have been below desired.
    short_since: Option<i64>,
    /// Live workers at the last observation.
    last_live: u32,
    state: HealthState,
    until_ms: i64,
}

/// Worker-hours of the catalogue rate the observed rate is blended with.
const PRIOR_WORKER_HOURS: f64 = 10.0;
const DECAY_SECONDS: f64 = 3600.0;

impl Tracked {
    /// Hand-backs within the reclaim window that mark the pool reclaimed:
    /// `reclaim_burst`, or more where the pool's own hazard makes that many
    /// likely (300 workers interrupted at 5% an hour hand back 1.25 every
    /// 5 minutes): the least count its observed rate gives less than a
    /// 1-in-10,000 chance in one window.
    fn burst(&self, policy: &CapacityPolicy) -> u32 {
        let hours = self.live_seconds / 3600.0;
        if hours < 1.0 {
            return policy.reclaim_burst;
        }
        let rate = self.interruptions / hours;
        let expected = rate * f64::from(self.last_live) * policy.reclaim_window_seconds / 3600.0;
        // Poisson tail: P(X >= k) < 1e-4.
        let (mut k, mut term, mut below) = (0u32, (-expected).exp(), 0.0);
        while 1.0 - below - term >= 1e-4 && k < 10_000 {
            below += term;
            k += 1;
            term *= expected / f64::from(k);
        }
        policy.reclaim_burst.max(k + 1)
    }
}

impl HealthTracker {
    /// Counts an interruption (a hand-back) against `pool`.
    pub fn interrupted(&mut self, pool: &str, now_ms: i64, policy: &CapacityPolicy) {
        let t = self.pools.entry(pool.to_string()).or_default();
        t.interruptions += 1.0;
        t.recent.push_back(now_ms);
        let window = (policy.reclaim_window_seconds * 1000.0) as i64;
        while t.recent.front().is_some_and(|&s| s < now_ms - window) {
            t.recent.pop_front();
        }
        if t.recent.len() as u32 >= t.burst(policy) && t.state != HealthState::Reclaimed {
            t.state = HealthState::Reclaimed;
            t.until_ms = now_ms + (policy.cooldown_seconds * 1000.0) as i64;
            t.recent.clear();
        }
    }

    /// Notes the pool's live workers against what was last desired, at
    /// each planner tick.
    pub fn observe(
        &mut self,
        pool: &Pool,
        live: u32,
        desired: u32,
        now_ms: i64,
        policy: &CapacityPolicy,
    ) {
        let t = self.pools.entry(pool.name.clone()).or_default();
        if let Some(last) = t.last_ms {
            let dt = (now_ms - last).max(0) as f64 / 1000.0;
            let keep = (-dt / DECAY_SECONDS).exp();
            t.interruptions *= keep;
            t.live_seconds = t.live_seconds * keep + f64::from(live) * dt;
        }
        t.last_ms = Some(now_ms);
        if t.state != HealthState::Healthy && now_ms >= t.until_ms {
            t.state = HealthState::Healthy;
            t.until_ms = 0;
            t.short_since = None;
        }
        // Workers still arriving are progress: only a pool short of its
        // desired workers with none registering for three launch times is
        // exhausted.
        if live > t.last_live {
            t.short_since = None;
        }
        t.last_live = live;
        if live < desired && t.state == HealthState::Healthy {
            let since = *t.short_since.get_or_insert(now_ms);
            if now_ms - since > i64::from(pool.launch_seconds) * 3 * 1000 {
                t.state = HealthState::Unavailable;
                t.until_ms = now_ms + (policy.cooldown_seconds * 1000.0) as i64;
                t.short_since = None;
            }
        } else {
            t.short_since = None;
        }
    }

    /// Every tracked pool's health; `catalogue` gives the prior rates.
    pub fn health(&self, catalogue: &Catalogue) -> BTreeMap<String, PoolHealth> {
        catalogue
            .pools
            .values()
            .map(|p| {
                let t = self.pools.get(&p.name);
                let (intr, hours) =
                    t.map_or((0.0, 0.0), |t| (t.interruptions, t.live_seconds / 3600.0));
                let rate = (p.interruption_rate_per_hour * PRIOR_WORKER_HOURS + intr)
                    / (PRIOR_WORKER_HOURS + hours);
                (
                    p.name.clone(),
                    PoolHealth {
                        state: t.map_or(HealthState::Healthy, |t| t.state),
                        interruption_rate_per_hour: rate,
                        until_ms: t.map_or(0, |t| t.until_ms),
                    },
                )
            })
            .collect()
    }
}
