//! [`plan_capacity`] and its phases: every catalogue pool as a home for
//! work, running work kept where it runs, urgent work on demand, cost work
//! priced and placed on spot, slots into workers, the on-demand baseline,
//! and each pool's target with its reasons.

use std::collections::BTreeMap;

use spotenc_proto::domain::Capacity;

use super::{
    pool_worker, BacklogItem, CapacityPolicy, HealthState, InFlight, PoolHealth, PoolTarget,
};
use crate::cost::catalogue::{Catalogue, Pool};
use crate::cost::model::{waste, Demand, Model};
use crate::cost::place::Worker;

/// One pool as a candidate home for work.
struct Home {
    worker: Worker,
    health: PoolHealth,
    flight: InFlight,
    /// Slots planned (running tasks, and pending slot-seconds over their
    /// target).
    slots: f64,
    /// Pending slot-seconds planned here.
    backlog: f64,
    /// Spot work planned, in cheapest-pool seconds per second, for the
    /// share cap.
    work: f64,
    /// The on-demand floor's slots here (latency, escalated and spot work
    /// planned here fill them first).
    floor: f64,
    reasons: Vec<String>,
}

impl Home {
    fn usable(&self) -> bool {
        self.health.state == HealthState::Healthy && self.worker.pool.max_workers > 0
    }

    fn max_slots(&self) -> f64 {
        f64::from(self.worker.pool.max_workers) * f64::from(self.worker.pool.slots.max(1))
    }

    /// For one task of `item` here: expected dollars, the slots it needs
    /// (its slot while running; its slot-seconds over `target` while
    /// pending) and its pending slot-seconds.
    fn need(&self, item: &BacklogItem, model: &Model, target: f64) -> Need {
        let (dollars, slot_seconds) = self.cost(&item.demand, model);
        let seconds = self.worker.seconds(&item.demand, model);
        if item.running {
            let pool = &self.worker.pool;
            Need {
                dollars,
                seconds,
                slots: pool.share(item.demand.sessions()) * f64::from(pool.slots.max(1)),
                pending: 0.0,
            }
        } else {
            Need {
                dollars,
                seconds,
                slots: slot_seconds / target,
                pending: slot_seconds,
            }
        }
    }

    /// What a pool-wide reclaim of this pool is expected to cost one task
    /// of `need` running here: the chance of a reclaim while it runs or
    /// while its replacement boots, times half the task re-run plus the
    /// replacement's billed boot.
    fn reclaim_risk(&self, need: &Need, reclaims_per_day: f64) -> f64 {
        let pool = &self.worker.pool;
        let launch = f64::from(pool.launch_seconds);
        let chance = reclaims_per_day / 86_400.0 * (need.seconds + launch);
        let boot = launch * pool.slot_price_per_second() * f64::from(pool.slots.max(1));
        chance * (0.5 * need.dollars + boot)
    }

    /// Expected dollars of `d` here, with the observed interruption rate.
    fn cost(&self, d: &Demand, model: &Model) -> (f64, f64) {
        let seconds = self.worker.seconds(d, model);
        let pool = &self.worker.pool;
        let rate = pool
            .interruption_rate_per_hour
            .max(self.health.interruption_rate_per_hour);
        let slot_seconds = seconds * pool.share(d.sessions()) * f64::from(pool.slots.max(1));
        let dollars = pool.slot_price_per_second() * slot_seconds * (1.0 + waste(rate, seconds));
        (dollars, slot_seconds)
    }
}

/// What one task of a backlog item asks of a home.
#[derive(Debug, Clone, Copy)]
struct Need {
    /// Expected dollars there.
    dollars: f64,
    /// Its seconds there.
    seconds: f64,
    /// Slots it needs planned.
    slots: f64,
    /// Its pending slot-seconds.
    pending: f64,
}

/// A spot pool that can take a backlog item, with what each task asks.
#[derive(Debug, Clone, Copy)]
struct PoolOption {
    home: usize,
    need: Need,
}

/// Cost work priced on every pool that can take it: the options cheapest
/// first, and how much the item loses on its second-best pool.
struct Priced<'b> {
    advantage: f64,
    item: &'b BacklogItem,
    options: Vec<PoolOption>,
}

/// Desired workers per pool for `backlog`, one [`PoolTarget`] per
/// catalogue pool, in catalogue order. The phases: running work stays
/// where it runs; latency and escalated work goes on demand; the
/// on-demand floor is reserved where the spot work costs least on demand;
/// cost work fills the on-demand slots already paid for, then goes to the
/// spot pools it saves most on (spread where reclaim risk pays for it),
/// within their room; slots become workers.
pub fn plan_capacity(
    catalogue: &Catalogue,
    backlog: &[BacklogItem],
    in_flight: &BTreeMap<String, InFlight>,
    model: &Model,
    health: &BTreeMap<String, PoolHealth>,
    policy: &CapacityPolicy,
) -> Vec<PoolTarget> {
    let mut plan = Plan::new(catalogue, in_flight, health, model, policy);
    let (staying_work, moving) = plan.keep_running(backlog);
    let cost_work = plan.put_urgent_on_demand(backlog, moving);
    plan.reserve_floor(backlog);
    plan.place_cost_work(&cost_work, staying_work);
    let workers = plan.workers();
    plan.targets(workers)
}

/// Desired and planned workers per home, in home order.
struct Workers {
    desired: Vec<u32>,
    planned: Vec<u32>,
}

/// The planner's working state: every catalogue pool as a home, by
/// capacity.
struct Plan<'a> {
    homes: Vec<Home>,
    spot: Vec<usize>,
    on_demand: Vec<usize>,
    model: &'a Model,
    policy: &'a CapacityPolicy,
}

impl<'a> Plan<'a> {
    fn new(
        catalogue: &Catalogue,
        in_flight: &BTreeMap<String, InFlight>,
        health: &BTreeMap<String, PoolHealth>,
        model: &'a Model,
        policy: &'a CapacityPolicy,
    ) -> Self {
        let homes: Vec<Home> = catalogue
            .pools
            .values()
            .map(|p| Home {
                worker: pool_worker(p),
                health: health.get(&p.name).copied().unwrap_or_default(),
                flight: in_flight.get(&p.name).copied().unwrap_or_default(),
                slots: 0.0,
                backlog: 0.0,
                work: 0.0,
                floor: 0.0,
                reasons: vec![],
            })
            .collect();
        let of = |c: Capacity| -> Vec<usize> {
            (0..homes.len())
                .filter(|&i| homes[i].worker.pool.capacity == c)
                .collect()
        };
        let (spot, on_demand) = (of(Capacity::Spot), of(Capacity::OnDemand));
        Plan {
            homes,
            spot,
            on_demand,
            model,
            policy,
        }
    }

    /// Running work stays where it runs. Spot work that on-demand workers
    /// picked up while a spot pool could take it is in neither plan: it
    /// finishes there, and the on-demand pool is sized by its own work and
    /// the baseline (a pool above its plan takes no more spot work, see
    /// `PoolTarget::planned_workers`). Returns the spot work that stays,
    /// and the running items whose pool is gone from the plan (planned
    /// again).
    fn keep_running<'b>(&mut self, backlog: &'b [BacklogItem]) -> (f64, Vec<&'b BacklogItem>) {
        let homes = &mut self.homes;
        let mut staying_work = 0.0;
        let mut moving = Vec::new();
        for item in backlog.iter().filter(|b| b.running) {
            let spot_work = !(item.latency || item.on_demand);
            let home = homes.iter().position(|h| h.worker.pool.name == item.pool);
            let spot_can = self
                .spot
                .iter()
                .any(|&i| homes[i].usable() && homes[i].worker.can_run(&item.demand));
            match home {
                Some(i)
                    if spot_work
                        && spot_can
                        && homes[i].usable()
                        && homes[i].worker.pool.capacity == Capacity::OnDemand => {}
                Some(i)
                    if homes[i].usable()
                        && (homes[i].worker.pool.capacity == Capacity::Spot || !spot_work) =>
                {
                    let slots = homes[i]
                        .need(item, self.model, self.policy.cost_target_seconds)
                        .slots;
                    let h = &mut homes[i];
                    h.slots += slots * f64::from(item.count);
                    if h.worker.pool.capacity == Capacity::Spot {
                        h.work += slots * f64::from(item.count);
                        staying_work += slots * f64::from(item.count);
                    }
                }
                _ => moving.push(item),
            }
        }
        (staying_work, moving)
    }

    /// Latency and escalated work (pending, or moving) goes to the
    /// cheapest capable on-demand pool; returns the cost work left.
    fn put_urgent_on_demand<'b>(
        &mut self,
        backlog: &'b [BacklogItem],
        moving: Vec<&'b BacklogItem>,
    ) -> Vec<&'b BacklogItem> {
        let mut cost_work = Vec::new();
        for item in backlog.iter().filter(|b| !b.running).chain(moving) {
            if item.latency || item.on_demand {
                let target = if item.latency {
                    self.policy.latency_target_seconds
                } else {
                    self.policy.cost_target_seconds
                };
                self.put_on_demand(item, target, "latency work");
            } else {
                cost_work.push(item);
            }
        }
        cost_work
    }

    /// Each cost item priced on every capable healthy spot pool, the items
    /// with most to lose from the wrong pool first.
    fn price<'b>(&self, cost_work: &[&'b BacklogItem]) -> Vec<Priced<'b>> {
        let homes = &self.homes;
        let mut priced: Vec<Priced> = cost_work
            .iter()
            .map(|item| {
                let mut options: Vec<PoolOption> = self
                    .spot
                    .iter()
                    .filter(|&&i| homes[i].usable() && homes[i].worker.can_run(&item.demand))
                    .map(|&i| PoolOption {
                        home: i,
                        need: homes[i].need(item, self.model, self.policy.cost_target_seconds),
                    })
                    .collect();
                options.sort_by(|a, b| {
                    a.need
                        .dollars
                        .total_cmp(&b.need.dollars)
                        .then(a.home.cmp(&b.home))
                });
                let advantage = match options.as_slice() {
                    [a, b, ..] => b.need.dollars / a.need.dollars.max(1e-12),
                    _ => f64::INFINITY,
                };
                Priced {
                    advantage,
                    item,
                    options,
                }
            })
            .collect();
        priced.sort_by(|a, b| b.advantage.total_cmp(&a.advantage));
        priced
    }

    /// Cost work onto spot pools. It is spread evenly only where
    /// spreading pays: onto a dearer pool when what a task costs more there
    /// is below what a pool-wide reclaim of the cheapest pool is expected
    /// to cost it (interchangeable pools: zones, instance types of about
    /// one price); with the hard cap `max_pool_share` below 1, over every
    /// capable pool within it. Then the group cheapest first, then the
    /// pools within `max_cost_ratio` of the cheapest take what the ceilings
    /// left (dearer spot workers would not take it: it waits); what no
    /// spot pool can take at all goes on demand.
    fn place_cost_work(&mut self, cost_work: &[&BacklogItem], staying_work: f64) {
        let priced = self.price(cost_work);
        let total_work: f64 = staying_work
            + priced
                .iter()
                .filter_map(|p| {
                    p.options
                        .first()
                        .map(|c| c.need.slots * f64::from(p.item.count))
                })
                .sum::<f64>();
        let reclaims = self.policy.pool_reclaims_per_day;
        let mut spare = self.spare_on_demand();
        for Priced { item, options, .. } in &priced {
            let item = &self.fill_spare(item, &mut spare);
            if item.count == 0 {
                continue;
            }
            let Some(cheapest) = options.first() else {
                let why = "no healthy spot pool can take it";
                self.put_on_demand(item, self.policy.cost_target_seconds, why);
                continue;
            };
            // With its cheap spot pools unhealthy, work may cost less on
            // demand (a g4dn on-demand encodes 4K HEVC for a fraction of
            // a c6i spot's price).
            if self
                .on_demand_cost(item)
                .is_some_and(|od| od < cheapest.need.dollars)
            {
                let why = "cheaper on demand than on any healthy spot pool";
                self.put_on_demand(item, self.policy.cost_target_seconds, why);
                continue;
            }
            let risk = self.homes[cheapest.home].reclaim_risk(&cheapest.need, reclaims);
            // The pools spreading onto pays for (the cheapest among them);
            // with a hard cap, every capable pool, as the operator asked.
            let hard_cap = self.policy.max_pool_share < 1.0;
            let group: Vec<&PoolOption> = options
                .iter()
                .filter(|o| hard_cap || o.need.dollars - cheapest.need.dollars <= risk)
                .collect();
            let mut left = f64::from(item.count); // tasks still to place
            let even = left / group.len() as f64;
            let per_task_work = cheapest.need.slots;
            // Evenly over the group, then the group cheapest first, then
            // every capable pool (what the ceilings left).
            let within_ratio: Vec<&PoolOption> = options
                .iter()
                .filter(|o| o.need.dollars <= cheapest.need.dollars * self.policy.max_cost_ratio)
                .collect();
            let passes: [(&[&PoolOption], bool); 3] =
                [(&group, true), (&group, false), (&within_ratio, false)];
            for (pass, (pools, evenly)) in passes.iter().enumerate() {
                for o in pools.iter() {
                    if left <= 0.0 {
                        break;
                    }
                    let h = &mut self.homes[o.home];
                    let room_slots = (h.max_slots() - h.slots).max(0.0) / o.need.slots.max(1e-12);
                    let capped = pass < 2 && hard_cap && group.len() > 1;
                    let room_share = if capped {
                        ((self.policy.max_pool_share * total_work - h.work)
                            / per_task_work.max(1e-12))
                        .max(0.0)
                    } else {
                        f64::INFINITY
                    };
                    let want = if *evenly { even } else { left };
                    let take = want.min(left).min(room_slots).min(room_share);
                    if take <= 0.0 {
                        continue;
                    }
                    h.slots += take * o.need.slots;
                    h.backlog += take * o.need.pending;
                    h.work += take * per_task_work;
                    left -= take;
                }
            }
            if left > 0.0 {
                let rest = BacklogItem {
                    count: left.ceil() as u32,
                    ..(*item).clone()
                };
                self.put_on_demand(&rest, self.policy.cost_target_seconds, "spot pools full");
            }
        }
    }

    /// Idle is priced: the slots on-demand workers planned for latency and
    /// escalated work leave free (a worker has several, and is paid for
    /// all), per on-demand home. (Not the floor's: planned into it, pending
    /// spot work would wait out the whole cost target there.) Spot work planned into them costs nothing
    /// more, where another spot worker would cost a launch and its hold.
    fn spare_on_demand(&self) -> Vec<(usize, f64)> {
        self.on_demand
            .iter()
            .filter(|&&i| self.homes[i].usable() && self.homes[i].slots > 0.0)
            .map(|&i| {
                let h = &self.homes[i];
                let workers = slot_workers(&h.worker.pool, h.slots).min(h.worker.pool.max_workers);
                let free = f64::from(workers) * f64::from(h.worker.pool.slots.max(1)) - h.slots;
                // A pool above its plan takes no spot work (it shrinks).
                let closed = h.flight.live > workers;
                (i, if closed { 0.0 } else { free.max(0.0) })
            })
            .collect()
    }

    /// Plans what fits of `item` into the spare on-demand slots; returns
    /// the rest.
    fn fill_spare(&mut self, item: &BacklogItem, spare: &mut [(usize, f64)]) -> BacklogItem {
        let mut left = f64::from(item.count);
        for (i, free) in spare.iter_mut() {
            if left <= 0.0 || *free <= 0.0 || !self.homes[*i].worker.can_run(&item.demand) {
                continue;
            }
            let need = self.homes[*i].need(item, self.model, self.policy.cost_target_seconds);
            let take = left.min((*free / need.slots.max(1e-12)).floor());
            if take <= 0.0 {
                continue;
            }
            let h = &mut self.homes[*i];
            h.slots += take * need.slots;
            h.backlog += take * need.pending;
            *free -= take * need.slots;
            left -= take;
        }
        BacklogItem {
            count: left as u32,
            ..item.clone()
        }
    }

    /// Workers from slots, floored by busy workers and min_workers.
    /// Rounding leaves a trickle of work to the workers already there;
    /// with spot work planned but no spot worker wanted or live, the spot
    /// pool with most of it gets one (else on-demand would do it all), and
    /// with no worker at all the pool with most work gets one.
    fn workers(&self) -> Workers {
        let homes = &self.homes;
        let mut desired: Vec<u32> = homes.iter().map(workers_for).collect();
        let mut planned: Vec<u32> = homes
            .iter()
            .map(|h| {
                if h.usable() {
                    slot_workers(&h.worker.pool, h.slots.max(h.floor))
                        .min(h.worker.pool.max_workers)
                } else {
                    0
                }
            })
            .collect();
        let most_work =
            |a: &usize, b: &usize| homes[*a].slots.total_cmp(&homes[*b].slots).then(b.cmp(a));
        let no_spot = self
            .spot
            .iter()
            .all(|&i| desired[i] == 0 && homes[i].flight.live == 0);
        if no_spot {
            if let Some(&i) = self
                .spot
                .iter()
                .filter(|&&i| homes[i].usable() && homes[i].slots > 0.0)
                .max_by(|a, b| most_work(a, b))
            {
                desired[i] = 1;
                planned[i] = 1;
            }
        }
        if homes.iter().all(|h| h.flight.live == 0) && desired.iter().all(|&d| d == 0) {
            if let Some(i) = (0..homes.len())
                .filter(|&i| homes[i].usable() && homes[i].slots > 0.0)
                .max_by(most_work)
            {
                desired[i] = 1;
            }
        }
        Workers { desired, planned }
    }

    /// The on-demand floor, sized and placed by work: `on_demand_baseline`
    /// of the spot work (pending and running) as slots on the healthy
    /// on-demand pool where that work costs least; the latency and
    /// escalated work planned there counts towards it. Its workers take
    /// spot work when they have none (placement).
    fn reserve_floor(&mut self, backlog: &[BacklogItem]) {
        let b = self.policy.on_demand_baseline;
        if b <= 0.0 {
            return;
        }
        let spot_work: Vec<&BacklogItem> = backlog
            .iter()
            .filter(|item| !(item.latency || item.on_demand))
            .collect();
        let homes = &mut self.homes;
        let target = self.policy.cost_target_seconds;
        let best = self
            .on_demand
            .iter()
            .filter(|&&i| homes[i].usable())
            .map(|&i| {
                let (mut dollars, mut slots) = (0.0, 0.0);
                for item in spot_work
                    .iter()
                    .filter(|x| homes[i].worker.can_run(&x.demand))
                {
                    let need = homes[i].need(item, self.model, target);
                    dollars += need.dollars * f64::from(item.count);
                    slots += need.slots * f64::from(item.count);
                }
                (dollars, slots, i)
            })
            .filter(|&(_, slots, _)| slots > 0.0)
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        let Some((_, slots, i)) = best else {
            return;
        };
        let h = &mut homes[i];
        h.floor = b * slots;
        h.reasons.push(format!(
            "on-demand floor {:.0}% of the spot work ({:.1} slots here)",
            b * 100.0,
            h.floor
        ));
    }

    /// One target per home, with the reasons an operator reads.
    fn targets(self, w: Workers) -> Vec<PoolTarget> {
        let spot_work: f64 = self.homes.iter().map(|h| h.work).sum();
        let spot_open = self.spot.iter().any(|&i| self.homes[i].usable());
        self.homes
            .into_iter()
            .zip(w.desired)
            .zip(w.planned)
            .map(|((h, desired), planned_workers)| {
                let reason = reasons(&h, desired);
                let pool = &h.worker.pool;
                PoolTarget {
                    pool: pool.name.clone(),
                    on_demand: pool.capacity == Capacity::OnDemand,
                    desired_workers: desired,
                    live: h.flight.live,
                    busy: h.flight.busy,
                    backlog_seconds: h.backlog,
                    planned_slots: h.slots,
                    planned_workers,
                    spot_closed: spot_open
                        && pool.capacity == Capacity::OnDemand
                        && h.flight.live > planned_workers,
                    work_share: if spot_work > 0.0 {
                        h.work / spot_work
                    } else {
                        0.0
                    },
                    price_per_hour: pool.price_per_hour,
                    health: h.health,
                    reason,
                }
            })
            .collect()
    }

    /// Expected dollars of one task of `item` on the cheapest capable
    /// healthy on-demand pool.
    fn on_demand_cost(&self, item: &BacklogItem) -> Option<f64> {
        self.on_demand
            .iter()
            .filter(|&&i| self.homes[i].usable() && self.homes[i].worker.can_run(&item.demand))
            .map(|&i| self.homes[i].cost(&item.demand, self.model).0)
            .min_by(f64::total_cmp)
    }

    /// Plans `item` onto the cheapest capable healthy on-demand pool.
    fn put_on_demand(&mut self, item: &BacklogItem, target_seconds: f64, why: &str) {
        let homes = &mut self.homes;
        let best = self
            .on_demand
            .iter()
            .filter(|&&i| homes[i].usable() && homes[i].worker.can_run(&item.demand))
            .map(|&i| (i, homes[i].cost(&item.demand, self.model)))
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0).then(a.0.cmp(&b.0)));
        if let Some((i, _)) = best {
            let need = homes[i].need(item, self.model, target_seconds);
            let h = &mut homes[i];
            h.slots += need.slots * f64::from(item.count);
            h.backlog += need.pending * f64::from(item.count);
            let reason = why.to_string();
            if !h.reasons.contains(&reason) {
                h.reasons.push(reason);
            }
        }
    }
}

/// Why a home gets its workers: its planned work, its health, busy
/// workers kept, or its minimum.
fn reasons(h: &Home, desired: u32) -> String {
    let pool = &h.worker.pool;
    let mut reasons = h.reasons.clone();
    if h.health.state != HealthState::Healthy {
        reasons.insert(0, format!("{}: no new work", h.health.state.name()));
    }
    if h.slots > 0.0 {
        reasons.insert(
            0,
            format!("{:.1} slots of work ({:.0} s pending)", h.slots, h.backlog),
        );
    }
    if desired == h.flight.busy && h.flight.busy > slot_workers(pool, h.slots) {
        reasons.push(format!("{} busy workers kept", h.flight.busy));
    }
    if reasons.is_empty() {
        reasons.push(if desired > 0 {
            format!("min_workers {}", pool.min_workers)
        } else {
            "no work for it".into()
        });
    }
    reasons.join("; ")
}

/// The fraction of a spot worker's work not worth a launch.
const SPOT_ROUNDING: f64 = 0.2;

/// Workers that `slots` planned slots fill on `pool`: rounded up on
/// on-demand pools (latency and escalated work never waits on rounding);
/// on spot, less than [`SPOT_ROUNDING`] of a worker's work is left to the
/// workers there.
fn slot_workers(pool: &Pool, slots: f64) -> u32 {
    let workers = slots / f64::from(pool.slots.max(1));
    let workers = if pool.capacity == Capacity::OnDemand {
        (workers - 1e-9).ceil()
    } else {
        (workers - SPOT_ROUNDING).ceil()
    };
    workers.max(0.0) as u32
}

/// Workers for a home's planned slots, within its bounds.
fn workers_for(h: &Home) -> u32 {
    let pool = &h.worker.pool;
    let planned = if h.usable() {
        slot_workers(pool, h.slots.max(h.floor))
    } else {
        0
    };
    planned
        .min(pool.max_workers)
        .max(pool.min_workers)
        .max(h.flight.busy)
}
