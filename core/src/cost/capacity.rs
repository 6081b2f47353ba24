//! Capacity planning: how many workers each pool should run now, and why.
//! [`plan_capacity`] is pure; the coordinator runs it on a tick and
//! publishes `spotenc_pool_desired_workers{pool}` for KEDA, and the
//! simulator runs it every 30 virtual seconds.
//!
//! The rules, in order:
//! 1. **Work in slots.** Each pending task is priced on every healthy pool
//!    that can run it through the cost model and needs its predicted
//!    slot-seconds there over its drain target; each running task needs the
//!    slot it holds, wherever it runs now (so spot work that on-demand
//!    workers picked up is planned back onto spot). Work is never counted
//!    in tasks.
//! 2. **Latency work** sizes the cheapest capable on-demand pool to drain
//!    within `latency_target_seconds`.
//! 3. **Cost work** goes to the cheapest capable healthy spot pools (most
//!    comparative advantage first, as placement does), to drain within
//!    `cost_target_seconds`, capped by `max_workers` and by
//!    `max_pool_share` of the spot work per pool while another capable pool
//!    has room. Work no healthy spot pool can take goes to on-demand.
//! 4. **On-demand baseline.** While there is any work, on-demand workers are
//!    at least `on_demand_baseline` of the planned fleet (counted in
//!    workers).
//! 5. **Health.** A pool's observed interruption rate raises its expected
//!    cost; a `reclaimed` or `unavailable` pool gets no new work.
//! 6. **Busy workers stay.** A pool's desired workers are the workers its
//!    planned slots fill (rounded up on on-demand pools; on spot pools less
//!    than a fifth of a worker's work is left to the workers there, and with
//!    no worker live anywhere the pool with most work gets one), never below
//!    its busy workers (those holding leases) nor `min_workers`, so a
//!    scale-in never asks for a busy encoder to go.
//!
//! [`HealthTracker`] turns hand-backs and registrations into pool health:
//! a burst of `reclaim_burst` interruptions within `reclaim_window_seconds`
//! marks a pool reclaimed for `cooldown_seconds`; a pool short of its
//! desired workers with none registering for `launch_seconds × 3` is
//! unavailable (spot exhaustion) for the same cool-down.
//!
//! Layout: this file holds the planner's inputs and outputs and the policy;
//! `plan` the planner itself ([`plan_capacity`] and its phases); `health`
//! the [`HealthTracker`].

mod health;
mod plan;

pub use plan::plan_capacity;

use serde::Serialize;

use super::catalogue::Pool;
use super::model::{Demand, Output};
use super::place::Worker;

pub use health::HealthTracker;

/// Planner settings (`[capacity]` in the coordinator's TOML).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacityPolicy {
    pub latency_target_seconds: f64,
    pub cost_target_seconds: f64,
    /// The on-demand floor: this share of the spot work, as slots on the
    /// on-demand pool cheapest for it, kept on-demand while there is work
    /// (latency and escalated work planned there counts towards it).
    pub on_demand_baseline: f64,
    /// A hard cap: the most of the spot work one pool may take while
    /// others can (1: none; the planner spreads by reclaim risk).
    pub max_pool_share: f64,
    /// Pool-wide reclaims a day expected of each spot pool: what spreading
    /// work over pools weighs its extra cost against.
    pub pool_reclaims_per_day: f64,
    /// Placement's `max_cost_ratio`: spot work the cheap pools have no room
    /// for is planned only onto pools at most this many times dearer per
    /// task (dearer workers would not take it while it can wait; it waits,
    /// or escalates to on-demand).
    pub max_cost_ratio: f64,
    pub reclaim_burst: u32,
    pub reclaim_window_seconds: f64,
    /// How long a reclaimed or unavailable pool is left alone.
    pub cooldown_seconds: f64,
}

impl Default for CapacityPolicy {
    fn default() -> Self {
        CapacityPolicy {
            latency_target_seconds: 600.0,
            cost_target_seconds: 7200.0,
            on_demand_baseline: 0.15,
            max_pool_share: 1.0,
            pool_reclaims_per_day: 1.0 / 7.0,
            max_cost_ratio: 2.0,
            reclaim_burst: 3,
            reclaim_window_seconds: 300.0,
            cooldown_seconds: 1800.0,
        }
    }
}

impl CapacityPolicy {
    /// Refuses settings outside their accepted ranges, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("latency_target_seconds", self.latency_target_seconds),
            ("cost_target_seconds", self.cost_target_seconds),
            ("reclaim_window_seconds", self.reclaim_window_seconds),
            ("cooldown_seconds", self.cooldown_seconds),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("capacity.{name} must be above 0, not {v}"));
            }
        }
        if !(0.0..=0.20).contains(&self.on_demand_baseline) {
            return Err(format!(
                "capacity.on_demand_baseline must be within 0..=0.20, not {}",
                self.on_demand_baseline
            ));
        }
        if !(self.pool_reclaims_per_day.is_finite() && self.pool_reclaims_per_day >= 0.0) {
            return Err(format!(
                "capacity.pool_reclaims_per_day must be 0 or more, not {}",
                self.pool_reclaims_per_day
            ));
        }
        if !(self.max_pool_share > 0.0 && self.max_pool_share <= 1.0) {
            return Err(format!(
                "capacity.max_pool_share must be within (0, 1], not {}",
                self.max_pool_share
            ));
        }
        if self.reclaim_burst == 0 {
            return Err("capacity.reclaim_burst must be at least 1".into());
        }
        Ok(())
    }
}

/// Work: `count` tasks alike in demand, priority and partition, pending
/// or (`running`) leased.
#[derive(Debug, Clone, PartialEq)]
pub struct BacklogItem {
    pub demand: Demand,
    /// Leased now (needs its slot), rather than pending (needs its
    /// slot-seconds within the target).
    pub running: bool,
    /// The pool it runs on (running work only).
    pub pool: String,
    pub latency: bool,
    /// Waiting in the on-demand partition (latency or escalated).
    pub on_demand: bool,
    pub count: u32,
    /// When the longest-waiting of them became pending (ms); 0 for
    /// running work, which waits no more.
    pub oldest_ms: i64,
}

/// Pending tasks summed into backlog items: alike in outputs, priority
/// and partition, with frames averaged (predicted seconds are linear in
/// frames, so the sum stays exact). Both stores' readings go through it.
pub fn aggregate<'a>(
    tasks: impl IntoIterator<Item = (&'a Demand, bool, bool, i64, Option<&'a str>)>,
) -> Vec<BacklogItem> {
    // Hashed by borrowed outputs (the simulator calls this every 30 s over
    // every pending and running task: no allocation per task), then put in
    // a fixed order by codec name, preset and size.
    type Key<'a> = (Option<&'a str>, bool, bool, &'a [Output]);
    let mut items: rustc_hash::FxHashMap<Key, (BacklogItem, u64)> = Default::default();
    for (demand, latency, on_demand, since, running_on) in tasks {
        let e = items
            .entry((running_on, latency, on_demand, &demand.outputs))
            .or_insert_with(|| {
                (
                    BacklogItem {
                        demand: demand.clone(),
                        running: running_on.is_some(),
                        pool: running_on.unwrap_or_default().to_string(),
                        latency,
                        on_demand,
                        count: 0,
                        oldest_ms: if running_on.is_some() { 0 } else { since },
                    },
                    0,
                )
            });
        if running_on.is_none() {
            e.0.oldest_ms = e.0.oldest_ms.min(since);
        }
        e.0.count += 1;
        e.1 += demand.frames;
    }
    let mut items: Vec<_> = items.into_iter().collect();
    items.sort_by_cached_key(|((running_on, latency, on_demand, outputs), _)| {
        (*running_on, *latency, *on_demand, shape_order(outputs))
    });
    items
        .into_iter()
        .map(|(_, (mut item, frames))| {
            item.demand.frames = frames / u64::from(item.count.max(1));
            item
        })
        .collect()
}

/// Seconds the longest-waiting pending task of `latency` work (or of cost
/// work) has waited at `now_ms`; 0 with none pending. Running work is not
/// waiting, however long ago it was queued: the gauge
/// `spotenc_queue_oldest_seconds` and the queue-age alert read this.
pub fn queue_oldest_seconds(backlog: &[BacklogItem], latency: bool, now_ms: i64) -> f64 {
    backlog
        .iter()
        .filter(|b| b.latency == latency && !b.running && b.count > 0)
        .map(|b| b.oldest_ms)
        .min()
        .map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0)
}

/// Outputs in the order the backlog sorts them: codec name, preset, size.
pub(crate) fn shape_order(outputs: &[Output]) -> Vec<(&'static str, &str, u32, u32)> {
    outputs
        .iter()
        .map(|o| (o.codec.name(), o.preset.as_str(), o.width, o.height))
        .collect()
}

/// Workers of a pool now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct InFlight {
    /// Registered and asking for work.
    pub live: u32,
    /// Holding at least one lease.
    pub busy: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    #[default]
    Healthy,
    Reclaimed,
    Unavailable,
}

impl HealthState {
    pub const ALL: [HealthState; 3] = [
        HealthState::Healthy,
        HealthState::Reclaimed,
        HealthState::Unavailable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Reclaimed => "reclaimed",
            HealthState::Unavailable => "unavailable",
        }
    }
}

/// A pool's health as the planner sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PoolHealth {
    pub state: HealthState,
    /// Observed interruptions per worker-hour, blended with the
    /// catalogue's rate.
    pub interruption_rate_per_hour: f64,
    /// When a reclaimed or unavailable state ends (ms), 0 when healthy.
    pub until_ms: i64,
}

/// What the planner wants of one pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolTarget {
    pub pool: String,
    pub on_demand: bool,
    pub desired_workers: u32,
    pub live: u32,
    pub busy: u32,
    /// Predicted slot-seconds of pending work planned onto this pool.
    pub backlog_seconds: f64,
    /// Slots of work planned onto it: running tasks plus the backlog's
    /// slot-seconds over its drain target.
    pub planned_slots: f64,
    /// Workers its own plan asks for, before the busy floor: an on-demand
    /// pool with more live workers than this takes no further spot work, so
    /// it can shrink back to its latency work and baseline.
    pub planned_workers: u32,
    /// An on-demand pool above its own plan while a healthy spot pool can
    /// take spot work: its workers take no spot work, so it shrinks.
    pub spot_closed: bool,
    /// This pool's share of the spot work planned (in seconds on each
    /// task's cheapest pool), for the `max_pool_share` rule.
    pub work_share: f64,
    pub price_per_hour: f64,
    pub health: PoolHealth,
    pub reason: String,
}

/// The representative worker of a catalogue pool: what it can encode
/// (NVENC pools: H.264 and HEVC to 4096 pixels a side, the T4/A10G limits).
pub fn pool_worker(pool: &Pool) -> Worker {
    use super::catalogue::Hardware;
    use spotenc_proto::domain::{Codec, NvencCodec};
    let codecs = vec![Codec::H264, Codec::Hevc];
    let nvenc = if pool.hardware == Hardware::Nvenc {
        codecs
            .iter()
            .map(|&codec| NvencCodec {
                codec,
                max_width: 4096,
                max_height: 4096,
                ten_bit: false,
                max_b_frames: 4,
            })
            .collect()
    } else {
        vec![]
    };
    Worker {
        pool: pool.clone(),
        class: pool.instance_type.clone(),
        codecs,
        nvenc,
        sessions_held: 0,
        encoder_saturated: false,
        params: Default::default(),
        hardware_down: false,
        delivered_price_per_gb: 0.0,
    }
}
