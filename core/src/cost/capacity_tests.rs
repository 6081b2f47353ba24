use std::collections::BTreeMap;

use proptest::prelude::*;
use spotenc_proto::domain::{Capacity, Codec};

use super::capacity::{
    plan_capacity, queue_oldest_seconds, BacklogItem, CapacityPolicy, HealthState, HealthTracker,
    InFlight, PoolHealth, PoolTarget,
};
use super::catalogue::Catalogue;
use super::model::{Demand, Model, Output};

fn demand(codec: Codec, width: u32, height: u32, frames: u64) -> Demand {
    Demand {
        outputs: vec![Output {
            codec,
            preset: "medium".into(),
            width,
            height,
            ten_bit: false,
        }],
        frames,
        audio: None,
    }
}

/// `count` five-minute 1080p30 chunks.
fn chunks(codec: Codec, count: u32, latency: bool) -> BacklogItem {
    BacklogItem {
        demand: demand(codec, 1920, 1080, 9000),
        running: false,
        pool: String::new(),
        latency,
        on_demand: latency,
        count,
        oldest_ms: 0,
    }
}

/// `count` chunks like [`chunks`], running on `pool`.
fn running_on(pool: &str, count: u32) -> BacklogItem {
    BacklogItem {
        running: true,
        pool: pool.into(),
        ..chunks(Codec::H264, count, false)
    }
}

/// `live` workers of `pool`, `busy` of them holding leases.
fn flight_of(pool: &str, live: u32, busy: u32) -> BTreeMap<String, InFlight> {
    [(pool.to_string(), InFlight { live, busy })].into()
}

fn plan(
    backlog: &[BacklogItem],
    flight: &BTreeMap<String, InFlight>,
    health: &BTreeMap<String, PoolHealth>,
) -> Vec<PoolTarget> {
    plan_capacity(
        &Catalogue::builtin(),
        backlog,
        flight,
        &Model::default(),
        health,
        &CapacityPolicy::default(),
    )
}

fn desired(t: &[PoolTarget], pool: &str) -> u32 {
    t.iter().find(|t| t.pool == pool).unwrap().desired_workers
}

fn workers(t: &[PoolTarget], on_demand: bool) -> u32 {
    t.iter()
        .filter(|t| t.on_demand == on_demand)
        .map(|t| t.desired_workers)
        .sum()
}

fn unhealthy(pools: &[&str], state: HealthState) -> BTreeMap<String, PoolHealth> {
    pools
        .iter()
        .map(|p| {
            (
                p.to_string(),
                PoolHealth {
                    state,
                    interruption_rate_per_hour: 0.0,
                    until_ms: 1,
                },
            )
        })
        .collect()
}

#[test]
fn no_work_no_workers() {
    let t = plan(&[], &BTreeMap::new(), &BTreeMap::new());
    assert_eq!(t.len(), Catalogue::builtin().pools.len());
    assert!(t.iter().all(|t| t.desired_workers == 0), "{t:#?}");
}

#[test]
fn hevc_goes_to_the_cheapest_gpu_pool_not_spread_onto_dearer_ones() {
    let t = plan(
        &[chunks(Codec::Hevc, 2000, false)],
        &BTreeMap::new(),
        &BTreeMap::new(),
    );
    let cpu_spot: u32 = t
        .iter()
        .filter(|t| !t.on_demand && t.pool.starts_with('c'))
        .map(|t| t.desired_workers)
        .sum();
    assert_eq!(cpu_spot, 0, "{t:#?}");
    // The other GPU pools cost more per task than a reclaim of the cheapest
    // is expected to: it takes all the spot work.
    let g4dn = t.iter().find(|t| t.pool == "g4dn-xlarge-spot").unwrap();
    assert!((g4dn.work_share - 1.0).abs() < 1e-6, "{t:#?}");
    assert!(g4dn.desired_workers > 0);
}

/// Spreading is weighed against reclaim risk: pools of one price share the
/// work evenly; a dearer pool gets some only when reclaims are expected
/// often enough to pay for it; a hard cap spreads over every capable pool.
#[test]
fn diversification_spreads_only_where_the_reclaim_risk_pays_for_it() {
    let base = Catalogue::builtin();
    let c6i = base.get("c6i-4xlarge-spot").unwrap().clone();
    let mut twin = c6i.clone();
    twin.name = "c6i-4xlarge-spot-b".into();
    let mut dear = c6i.clone();
    dear.name = "c6i-4xlarge-spot-dear".into();
    dear.price_per_hour *= 1.5;
    let od = base.get("c6i-4xlarge-ondemand").unwrap().clone();
    let mut cat = base.clone();
    cat.pools = [c6i, twin, dear, od]
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let work = [chunks(Codec::Hevc, 200, false)];
    let run = |policy: &CapacityPolicy| {
        plan_capacity(
            &cat,
            &work,
            &BTreeMap::new(),
            &Model::default(),
            &BTreeMap::new(),
            policy,
        )
    };
    let share =
        |t: &[PoolTarget], pool: &str| t.iter().find(|t| t.pool == pool).unwrap().work_share;
    let t = run(&CapacityPolicy::default());
    assert!((share(&t, "c6i-4xlarge-spot") - 0.5).abs() < 1e-6, "{t:#?}");
    assert!(
        (share(&t, "c6i-4xlarge-spot-b") - 0.5).abs() < 1e-6,
        "{t:#?}"
    );
    assert_eq!(share(&t, "c6i-4xlarge-spot-dear"), 0.0, "{t:#?}");
    // 50% dearer pays only if a pool-wide reclaim is expected about every
    // task: at a thousand a day it does.
    let stormy = CapacityPolicy {
        pool_reclaims_per_day: 1000.0,
        ..CapacityPolicy::default()
    };
    let t = run(&stormy);
    assert!(share(&t, "c6i-4xlarge-spot-dear") > 0.3, "{t:#?}");
    // The operator's hard cap spreads regardless of price.
    let capped = CapacityPolicy {
        max_pool_share: 0.34,
        ..CapacityPolicy::default()
    };
    let t = run(&capped);
    for pool in [
        "c6i-4xlarge-spot",
        "c6i-4xlarge-spot-b",
        "c6i-4xlarge-spot-dear",
    ] {
        assert!(
            share(&t, pool) <= 0.34 + 1e-6 && share(&t, pool) > 0.3,
            "{pool}: {t:#?}"
        );
    }
}

#[test]
fn latency_work_sizes_on_demand_by_itself() {
    let t = plan(
        &[chunks(Codec::H264, 40, true)],
        &BTreeMap::new(),
        &BTreeMap::new(),
    );
    assert_eq!(workers(&t, false), 0, "{t:#?}");
    // The cheapest on-demand pool for H.264 is a g4dn with NVENC: a 9,000
    // frame chunk takes ~73 s on one of its three sessions (370 fps shared),
    // so 40 chunks are ~2,900 slot-seconds, drained within 600 s by
    // ceil(2,900 / 600 / 3) = 2 workers.
    let g4dn = t.iter().find(|t| t.pool == "g4dn-xlarge-ondemand").unwrap();
    let expect = (g4dn.backlog_seconds / 600.0 / 3.0).ceil() as u32;
    assert!((g4dn.backlog_seconds - 2919.0).abs() < 30.0, "{t:#?}");
    assert_eq!(expect, 2);
    assert_eq!(g4dn.desired_workers, expect);
    assert_eq!(workers(&t, true), expect, "{t:#?}");
}

#[test]
fn reclaimed_pool_work_moves() {
    let backlog = [chunks(Codec::H264, 500, false)];
    let before = plan(&backlog, &BTreeMap::new(), &BTreeMap::new());
    let top = before
        .iter()
        .filter(|t| !t.on_demand)
        .max_by_key(|t| t.desired_workers)
        .unwrap()
        .pool
        .clone();
    let after = plan(
        &backlog,
        &BTreeMap::new(),
        &unhealthy(&[&top], HealthState::Reclaimed),
    );
    assert_eq!(desired(&after, &top), 0, "{after:#?}");
    assert!(after
        .iter()
        .find(|t| t.pool == top)
        .unwrap()
        .reason
        .contains("reclaimed"));
    assert!(workers(&after, false) > 0);
}

#[test]
fn spot_exhaustion_falls_back_to_on_demand() {
    let spot: Vec<String> = Catalogue::builtin()
        .pools
        .values()
        .filter(|p| p.capacity == Capacity::Spot)
        .map(|p| p.name.clone())
        .collect();
    let names: Vec<&str> = spot.iter().map(String::as_str).collect();
    let t = plan(
        &[chunks(Codec::H264, 300, false)],
        &BTreeMap::new(),
        &unhealthy(&names, HealthState::Unavailable),
    );
    assert_eq!(workers(&t, false), 0, "{t:#?}");
    assert!(workers(&t, true) > 0, "{t:#?}");
    assert!(t.iter().any(|t| t.reason.contains("no healthy spot pool")));
}

#[test]
fn busy_workers_are_kept() {
    let flight = flight_of("c6i-4xlarge-spot", 9, 7);
    let t = plan(&[], &flight, &BTreeMap::new());
    assert_eq!(desired(&t, "c6i-4xlarge-spot"), 7, "{t:#?}");
    // Their running work is spot work: the on-demand floor holds.
    let t = plan(
        &[running_on("c6i-4xlarge-spot", 14)],
        &flight,
        &BTreeMap::new(),
    );
    assert_eq!(desired(&t, "c6i-4xlarge-spot"), 7, "{t:#?}");
    assert!(workers(&t, true) >= 1, "{t:#?}");
}

#[test]
fn tracker_marks_a_burst_reclaimed_then_recovers() {
    let c = Catalogue::builtin();
    let policy = CapacityPolicy::default();
    let pool = c.get("g4dn-xlarge-spot").unwrap();
    let mut h = HealthTracker::default();
    h.observe(pool, 10, 10, 0, &policy);
    h.interrupted(&pool.name, 1_000, &policy);
    h.interrupted(&pool.name, 400_000, &policy); // outside the 300 s window
    assert_eq!(h.health(&c)[&pool.name].state, HealthState::Healthy);
    h.interrupted(&pool.name, 450_000, &policy);
    h.interrupted(&pool.name, 500_000, &policy);
    let s = h.health(&c)[&pool.name];
    assert_eq!(s.state, HealthState::Reclaimed);
    assert!(s.interruption_rate_per_hour > pool.interruption_rate_per_hour);
    h.observe(pool, 0, 0, 500_000 + 1_800_000, &policy);
    assert_eq!(h.health(&c)[&pool.name].state, HealthState::Healthy);
}

#[test]
fn tracker_marks_workers_that_never_come_unavailable() {
    let c = Catalogue::builtin();
    let policy = CapacityPolicy::default();
    let pool = c.get("c6i-4xlarge-spot").unwrap();
    let mut h = HealthTracker::default();
    let limit = i64::from(pool.launch_seconds) * 3 * 1000;
    h.observe(pool, 0, 5, 0, &policy);
    h.observe(pool, 0, 5, limit, &policy);
    assert_eq!(h.health(&c)[&pool.name].state, HealthState::Healthy);
    h.observe(pool, 0, 5, limit + 30_000, &policy);
    assert_eq!(h.health(&c)[&pool.name].state, HealthState::Unavailable);
    // Workers arriving in time never trip it, nor does a pool that keeps
    // registering workers while its plan keeps growing.
    let mut ok = HealthTracker::default();
    ok.observe(pool, 0, 5, 0, &policy);
    ok.observe(pool, 5, 5, limit / 2, &policy);
    ok.observe(pool, 5, 5, limit * 2, &policy);
    assert_eq!(ok.health(&c)[&pool.name].state, HealthState::Healthy);
    let mut growing = HealthTracker::default();
    for step in 0..20 {
        let t = i64::from(step) * limit / 4;
        growing.observe(pool, step * 10, step * 10 + 30, t, &policy);
    }
    assert_eq!(growing.health(&c)[&pool.name].state, HealthState::Healthy);
}

#[test]
fn policy_ranges_are_enforced() {
    let mut p = CapacityPolicy::default();
    assert!(p.validate().is_ok());
    p.on_demand_baseline = 0.3;
    assert!(p.validate().unwrap_err().contains("on_demand_baseline"));
    p.on_demand_baseline = 0.0;
    assert!(p.validate().is_ok());
    p.pool_reclaims_per_day = -1.0;
    assert!(p.validate().unwrap_err().contains("pool_reclaims_per_day"));
    p.pool_reclaims_per_day = 0.5;
    p.max_pool_share = 0.0;
    assert!(p.validate().unwrap_err().contains("max_pool_share"));
}

fn any_backlog() -> impl Strategy<Value = Vec<BacklogItem>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![Codec::H264, Codec::Hevc]),
            prop::sample::select(vec![(1280u32, 720u32), (1920, 1080), (3840, 2160)]),
            600u64..20_000,
            1u32..400,
            prop::bool::weighted(0.2),
        )
            .prop_map(|(codec, (w, h), frames, count, latency)| BacklogItem {
                demand: demand(codec, w, h, frames),
                running: count % 3 == 0,
                pool: if count % 3 == 0 {
                    "c6i-4xlarge-spot".into()
                } else {
                    String::new()
                },
                latency,
                on_demand: latency,
                count,
                oldest_ms: 0,
            }),
        0..6,
    )
}

fn any_flight() -> impl Strategy<Value = BTreeMap<String, InFlight>> {
    let names: Vec<String> = Catalogue::builtin().pools.keys().cloned().collect();
    prop::collection::btree_map(
        prop::sample::select(names),
        (0u32..30, 0u32..30).prop_map(|(live, busy)| InFlight {
            live: live.max(busy),
            busy,
        }),
        0..5,
    )
}

fn any_health() -> impl Strategy<Value = BTreeMap<String, PoolHealth>> {
    let names: Vec<String> = Catalogue::builtin().pools.keys().cloned().collect();
    prop::collection::btree_map(
        prop::sample::select(names),
        (prop::sample::select(HealthState::ALL.to_vec()), 0.0f64..0.2).prop_map(|(state, rate)| {
            PoolHealth {
                state,
                interruption_rate_per_hour: rate,
                until_ms: 1,
            }
        }),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn planner_invariants(
        backlog in any_backlog(),
        flight in any_flight(),
        health in any_health(),
    ) {
        let c = Catalogue::builtin();
        let policy = CapacityPolicy::default();
        let t = plan_capacity(&c, &backlog, &flight, &Model::default(), &health, &policy);
        for target in &t {
            let pool = c.get(&target.pool).unwrap();
            let f = flight.get(&target.pool).copied().unwrap_or_default();
            // Never below busy workers; never above max_workers unless
            // busy workers already are.
            prop_assert!(target.desired_workers >= f.busy);
            prop_assert!(target.desired_workers <= pool.max_workers.max(f.busy));
            // An unhealthy pool gets no new work.
            if target.health.state != HealthState::Healthy {
                prop_assert_eq!(target.desired_workers, f.busy.max(pool.min_workers));
            }
            prop_assert!(!target.reason.is_empty());
        }
        let spot = workers(&t, false);
        let od = workers(&t, true);
        let od_usable = t.iter().any(|x| x.on_demand && x.health.state == HealthState::Healthy);
        // The on-demand floor holds whenever there is spot work and an
        // on-demand pool can run it: at least one on-demand worker.
        let spot_work = backlog.iter().any(|b| !(b.latency || b.on_demand));
        if spot_work && spot > 0 && od_usable {
            prop_assert!(od >= 1, "no on-demand floor: {t:#?}");
        }
        // Diversification by risk: pending spot work planned on a pool
        // never costs more there than on the cheapest capable pool by more
        // than a reclaim of that pool is expected to cost (with no hard
        // cap and room everywhere, the cheapest pool takes it all).
        if health.is_empty() && backlog.iter().all(|b| !b.running) {
            let full = t.iter().any(|x| !x.on_demand && x.desired_workers >= c.get(&x.pool).unwrap().max_workers);
            let shares: Vec<f64> = t.iter().filter(|x| !x.on_demand).map(|x| x.work_share).collect();
            if !full && backlog.iter().all(|b| b.demand == backlog[0].demand) {
                let spread = shares.iter().filter(|s| **s > 1e-9).count();
                prop_assert!(spread <= 1, "spread over {spread} pools: {t:#?}");
            }
        }
    }
}

/// Spot work that on-demand workers picked up (running, spot partition) is
/// in neither plan: the busy on-demand workers are kept until they finish,
/// but the pool's own plan is zero, so it takes no more spot work (its
/// workers then go idle and are scaled in) and pending spot work sizes spot.
#[test]
fn spot_work_running_on_demand_lets_on_demand_shrink() {
    let running = running_on("g4dn-xlarge-ondemand", 30);
    let flight = flight_of("g4dn-xlarge-ondemand", 10, 10);
    let t = plan(std::slice::from_ref(&running), &flight, &BTreeMap::new());
    let od = t.iter().find(|t| t.pool == "g4dn-xlarge-ondemand").unwrap();
    // Its own plan is the on-demand floor (15% of that spot work), far
    // below the busy workers it keeps.
    assert_eq!(od.desired_workers, 10, "{t:#?}");
    assert!(od.planned_workers <= 2, "{t:#?}");
    assert!(od.spot_closed, "{t:#?}");
    assert!(od.reason.contains("busy"), "{}", od.reason);
    // With spot work pending as well, a spot pool gets at least one worker
    // even though 2 s of NVENC work per chunk over a 2 h target rounds to
    // nothing.
    let t = plan(
        &[running, chunks(Codec::H264, 5, false)],
        &flight,
        &BTreeMap::new(),
    );
    assert!(workers(&t, false) >= 1, "{t:#?}");
}

/// Running spot work stays on the spot pool that runs it: the plan does not
/// reshuffle it across pools (that would buy new workers for work in hand).
#[test]
fn running_spot_work_stays_on_its_spot_pool() {
    let running = running_on("c6a-4xlarge-spot", 40);
    let flight = flight_of("c6a-4xlarge-spot", 20, 20);
    let t = plan(&[running], &flight, &BTreeMap::new());
    assert_eq!(desired(&t, "c6a-4xlarge-spot"), 20, "{t:#?}");
    assert_eq!(workers(&t, false), 20, "{t:#?}");
}

/// With no spot pool that can take it, spot work running on on-demand
/// stays in the on-demand plan (else the pool would close to the only work
/// there is).
#[test]
fn spot_work_on_demand_stays_when_no_spot_pool_can_take_it() {
    let running = running_on("m5-4xlarge-ondemand", 8);
    let flight = flight_of("m5-4xlarge-ondemand", 4, 4);
    let spot: Vec<String> = Catalogue::builtin()
        .pools
        .values()
        .filter(|p| p.capacity == Capacity::Spot)
        .map(|p| p.name.clone())
        .collect();
    let names: Vec<&str> = spot.iter().map(String::as_str).collect();
    let t = plan(
        &[running],
        &flight,
        &unhealthy(&names, HealthState::Unavailable),
    );
    let m5 = t.iter().find(|t| t.pool == "m5-4xlarge-ondemand").unwrap();
    // The busy m5s are kept, no on-demand pool closes, and the running
    // work is planned on on-demand (8 slots' worth).
    assert_eq!(m5.desired_workers, 4, "{t:#?}");
    assert!(t.iter().all(|t| !t.spot_closed), "{t:#?}");
    let od_slots: f64 = t
        .iter()
        .filter(|t| t.on_demand)
        .map(|t| t.planned_slots)
        .sum();
    assert!((od_slots - 8.0).abs() < 1e-9, "{t:#?}");
}

#[test]
fn queue_age_counts_pending_work_only() {
    let at = |mut b: BacklogItem, oldest_ms: i64| {
        b.oldest_ms = oldest_ms;
        b
    };
    // Cost work: one chunk queued since 100 s, one queued at 10 s and
    // running since; latency work: queued since 400 s.
    let backlog = vec![
        at(chunks(Codec::H264, 1, false), 100_000),
        at(running_on("c6i-4xlarge-spot", 1), 10_000),
        at(chunks(Codec::H264, 2, true), 400_000),
    ];
    let now = 1_000_000;
    assert_eq!(queue_oldest_seconds(&backlog, false, now), 900.0);
    assert_eq!(queue_oldest_seconds(&backlog, true, now), 600.0);
    // Only running work: nothing waits.
    assert_eq!(queue_oldest_seconds(&backlog[1..2], false, now), 0.0);
    assert_eq!(queue_oldest_seconds(&[], true, now), 0.0);
    // A clock behind the queue reads 0, never negative.
    assert_eq!(queue_oldest_seconds(&backlog, true, 0), 0.0);
}
