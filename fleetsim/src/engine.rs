//! The event loop: arrivals, leases through the real state machine and
//! placement, encodes whose time comes from the cost model with noise,
//! spot notices and pool-wide reclaims, autoscaling by the real planner,
//! and per-second billing. Virtual time only; nothing sleeps.
//!
//! Layout: this file holds the loop, leasing and completing; `instances`
//! the fleet: launches, notices, reclaims and the autoscaler's tick;
//! `idset` the set of free instances (a two-level bitset).

mod idset;
mod instances;

use idset::IdSet;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use rustc_hash::FxHashMap;

use spotenc_proto::domain::{
    AttemptOutcome, Capacity, JobState, Priority, ProbeTask, TaskOutcome, Work,
};

use super::arrivals::{self, Ahead, Arrivals, Planned};
use super::report::{PoolReport, Report, SeriesPoint};
use super::workload::Workload;
use crate::replay::{probe, Rng};
use spotenc_core::cost::capacity::{pool_worker, CapacityPolicy, HealthTracker};
use spotenc_core::cost::catalogue::{Catalogue, Hardware, Pool};
use spotenc_core::cost::model::{Model, SMALL_TASK_SECONDS};
use spotenc_core::cost::place::{open_partitions, Fleet, Policy, Worker};
use spotenc_core::cost::Lease;
use spotenc_core::state::machine::State;
use spotenc_core::state::{Key, Limits};

/// What to run beyond the workload file.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Overrides the workload's chunk length.
    pub chunk_seconds: Option<f64>,
    /// Overrides the workload's placement (`true`: cost, `false`: FIFO).
    pub placement: Option<bool>,
    /// Keep hourly fleet sizes per pool for plots.
    pub series: bool,
    /// Ask every free instance for a lease, as a worker would, even where
    /// the answer is known to be none (its pool serves no partition with
    /// work waiting, or its pool found nothing this instant): slower, and
    /// the same report, which a test checks.
    pub ask_all: bool,
}

/// Seconds a worker keeps a task after a notice only if it will finish
/// this long before the deadline.
const NOTICE_MARGIN_SECONDS: f64 = 30.0;

#[derive(Debug)]
enum Ev {
    Arrival,
    /// Lease number `lease` (of [`Running::lease`]) on instance `inst`
    /// ends, unless it was handed back.
    Done {
        inst: usize,
        lease: u64,
    },
    Registered(usize),
    Notice(usize),
    Deadline(usize),
    Tick,
    Reclaim,
}

struct Running {
    /// The lease's number: its `Done` event names it, not the task.
    lease: u64,
    task: Key,
    attempt: u32,
    end_ms: i64,
    held: u32,
}

struct Instance {
    pool: usize,
    id: String,
    launched_ms: i64,
    live: bool,
    /// Requested during a spot exhaustion window: never arrives.
    never: bool,
    draining: bool,
    ended: bool,
    free: u32,
    running: Vec<Running>,
}

struct PoolSim {
    pool: Pool,
    lease: Lease,
    rep: Worker,
    /// Recent desired counts, for the scale-in window: (ms, desired).
    history: Vec<(i64, u32)>,
    desired: u32,
    report: PoolReport,
    /// Live workers summed over this hour's ticks, and the tick count.
    hour_live: f64,
}

struct Sim<'a> {
    w: &'a Workload,
    state: State,
    pools: Vec<PoolSim>,
    insts: Vec<Instance>,
    /// Instances not yet ended, per pool.
    active: Vec<BTreeSet<usize>>,
    /// Each live job's shape, and its probe's result and plan until the
    /// probe completes (boxed on the arrivals thread: the table holds a
    /// pointer, and an arrival moves one).
    jobs: FxHashMap<Key, Box<Ahead>>,
    /// Instances that are live, not draining and have free slots.
    free: IdSet,
    /// Instances in `free`, per pool.
    free_in: Vec<u32>,
    /// Instances live and not draining, per pool (counted as they change,
    /// not by a pass over the pool's instances each time it is asked).
    live_in: Vec<u32>,
    /// Which pools had live workers when the leases' fleet was last set.
    fleet_of: Option<Vec<bool>>,
    /// A dispatch pass's (pool, free slots) found to lease nothing, and
    /// its pools still open: kept between passes, so a pass allocates
    /// nothing.
    declined: Vec<(usize, u32)>,
    open: Vec<bool>,
    ask_all: bool,
    events: BinaryHeap<Reverse<(i64, u64, usize)>>,
    payloads: Vec<Option<Ev>>,
    free_payloads: Vec<usize>,
    seq: u64,
    now: i64,
    truth: Model,
    arrivals: Arrivals,
    next_arrival: Option<Planned>,
    noise: Rng,
    chaos: Rng,
    jobs_submitted: u64,
    jobs_live: u64,
    arrivals_end_ms: i64,
    limits: Limits,
    tracker: HealthTracker,
    policy: CapacityPolicy,
    catalogue: Catalogue,
    dirty: bool,
    report: Report,
    turnaround: BTreeMap<&'static str, Vec<f32>>,
    hour_ticks: u32,
    series: Option<Vec<SeriesPoint>>,
    next_instance: u64,
    exhaustion: Option<(i64, i64)>,
    /// Every finished job's tasks, for the cost lower bound.
    work: crate::bound::Work,
    /// Since when each pinned job has had no live pool of its identities.
    unserved: spotenc_core::cost::affinity::Unserved,
}

/// Runs `workload` on the pools of `catalogue`.
pub fn simulate(catalogue: &Catalogue, w: &Workload, opts: &Options) -> Report {
    let mut catalogue = catalogue.clone();
    if let Some(rate) = w.interruptions.spot_rate_per_hour {
        for p in catalogue.pools.values_mut() {
            if p.capacity == Capacity::Spot {
                p.interruption_rate_per_hour = rate;
            }
        }
    }
    let placement = opts.placement.unwrap_or(w.placement == "cost");
    let model = Model::default();
    let pools: Vec<PoolSim> = catalogue
        .pools
        .values()
        .map(|p| {
            let rep = pool_worker(p);
            PoolSim {
                pool: p.clone(),
                lease: Lease {
                    worker: Some(rep.clone()),
                    fleet: Fleet::default(),
                    model: model.clone(),
                    policy: Policy::default(),
                    placement,
                    pricer: Some(std::sync::Arc::new(crate::prices::Prices::default())),
                },
                rep,
                history: vec![],
                desired: 0,
                report: PoolReport {
                    pool: p.name.clone(),
                    on_demand: p.capacity == Capacity::OnDemand,
                    price_per_hour: p.price_per_hour,
                    ..Default::default()
                },
                hour_live: 0.0,
            }
        })
        .collect();
    let chunk_seconds = opts.chunk_seconds.unwrap_or(w.chunk_seconds);
    let end_ms = (w.days * 86_400_000.0) as i64;
    // Arrivals are planned on a thread of their own, for the time the
    // event loop runs.
    std::thread::scope(|scope| {
        let arrivals = arrivals::start(scope, w, opts.seed, chunk_seconds, end_ms);
        let mut sim = Sim {
            w,
            state: State::default(),
            pools,
            insts: vec![],
            active: vec![BTreeSet::new(); catalogue.pools.len()],
            jobs: FxHashMap::default(),
            free: IdSet::default(),
            free_in: vec![0; catalogue.pools.len()],
            live_in: vec![0; catalogue.pools.len()],
            fleet_of: None,
            declined: vec![],
            open: vec![],
            ask_all: opts.ask_all,
            events: BinaryHeap::new(),
            payloads: vec![],
            free_payloads: vec![],
            seq: 0,
            now: 0,
            truth: model,
            arrivals,
            next_arrival: None,
            noise: Rng::new(opts.seed ^ 0x5E1),
            chaos: Rng::new(opts.seed ^ 0xC4A05),
            jobs_submitted: 0,
            jobs_live: 0,
            arrivals_end_ms: end_ms,
            limits: Limits {
                lease_ttl_ms: u32::MAX / 2,
                max_expiries: 5,
            },
            tracker: HealthTracker::default(),
            policy: w.capacity_policy(),
            catalogue,
            dirty: false,
            report: Report {
                seed: opts.seed,
                placement: if placement { "cost" } else { "fifo" }.into(),
                chunk_seconds,
                days: w.days,
                ..Default::default()
            },
            turnaround: BTreeMap::new(),
            hour_ticks: 0,
            series: opts.series.then(Vec::new),
            next_instance: 0,
            exhaustion: w.exhaustion.as_ref().map(|x| {
                let start = (x.start_hour * 3_600_000.0) as i64;
                (start, start + (x.hours * 3_600_000.0) as i64)
            }),
            work: Default::default(),
            unserved: Default::default(),
        };
        sim.run();
        sim.arrivals.close();
        sim.finish()
    })
}

impl Sim<'_> {
    fn push(&mut self, at_ms: i64, ev: Ev) {
        self.seq += 1;
        let slot = match self.free_payloads.pop() {
            Some(i) => {
                self.payloads[i] = Some(ev);
                i
            }
            None => {
                self.payloads.push(Some(ev));
                self.payloads.len() - 1
            }
        };
        self.events
            .push(Reverse((at_ms.max(self.now), self.seq, slot)));
    }

    fn run(&mut self) {
        self.next_arrival();
        self.push(0, Ev::Tick);
        if self.w.interruptions.reclaim_events_per_day > 0.0 {
            let gap = self.reclaim_gap();
            self.push(gap, Ev::Reclaim);
        }
        while let Some(Reverse((at, _, slot))) = self.events.pop() {
            let ev = self.payloads[slot].take().expect("event payload");
            self.free_payloads.push(slot);
            self.now = at;
            self.report.events += 1;
            match ev {
                Ev::Arrival => self.arrive(),
                Ev::Done { inst, lease } => self.done(inst, lease),
                Ev::Registered(i) => self.registered(i),
                Ev::Notice(i) => self.notice(i),
                Ev::Deadline(i) => self.end_instance(i),
                Ev::Tick => {
                    if !self.tick() {
                        break;
                    }
                }
                Ev::Reclaim => self.reclaim(),
            }
            // Dispatch once all events of this instant are in.
            let same_instant = self
                .events
                .peek()
                .is_some_and(|Reverse((t, _, _))| *t == self.now);
            if self.dirty && !same_instant {
                self.dispatch();
            }
        }
        let left: Vec<usize> = self.active.iter().flatten().copied().collect();
        for i in left {
            self.end_instance(i);
        }
    }

    fn reclaim_gap(&mut self) -> i64 {
        let mean = 86_400.0 / self.w.interruptions.reclaim_events_per_day;
        self.now + (self.chaos.exp(mean) * 1000.0) as i64
    }

    fn arrive(&mut self) {
        let Some(p) = self.next_arrival.take() else {
            return;
        };
        if self.now >= self.arrivals_end_ms {
            return;
        }
        self.state
            .submit_as(p.spec, "", "", 0, p.job_id, "/w", self.now)
            .expect("simulated jobs have their own paths");
        // The probe's result and plan wait on the side.
        self.jobs.insert(p.id, p.ahead);
        self.jobs_submitted += 1;
        self.jobs_live += 1;
        self.dirty = true;
        self.next_arrival();
    }

    /// Takes the next planned arrival and puts its event in.
    fn next_arrival(&mut self) {
        if let Some(p) = self.arrivals.next() {
            self.push(p.at_ms, Ev::Arrival);
            self.next_arrival = Some(p);
        }
    }

    /// Puts instance `i` in the free set or takes it out.
    fn set_free(&mut self, i: usize, free: bool) {
        let p = self.insts[i].pool;
        if free {
            if self.free.insert(i) {
                self.free_in[p] += 1;
            }
        } else if self.free.remove(i) {
            self.free_in[p] -= 1;
        }
    }

    fn dispatch(&mut self) {
        self.dirty = false;
        // Workers of one pool with the same free slots see the same window
        // and rank it alike: once one finds nothing, the rest would too.
        let mut declined = std::mem::take(&mut self.declined);
        declined.clear();
        // Pools that may still lease in this pass: with free instances, not
        // yet found to have nothing to take. Once none is left, the free
        // instances left are not visited.
        let mut open = std::mem::take(&mut self.open);
        open.clear();
        open.extend(self.free_in.iter().map(|&n| n > 0));
        self.dispatch_with(&mut declined, &mut open);
        self.declined = declined;
        self.open = open;
    }

    /// [`Sim::dispatch`] with its scratch: `declined` is a handful of
    /// pairs at most, searched in place.
    fn dispatch_with(&mut self, declined: &mut Vec<(usize, u32)>, open: &mut [bool]) {
        // Free instances in order, read as we go (leasing only ever takes
        // instances out of the set).
        let mut from = 0;
        while let Some(i) = self.free.next_from(from) {
            from = i + 1;
            let (spot, on_demand) = self.state.queue_depth();
            if (spot, on_demand) == (0, 0) || (!self.ask_all && !open.contains(&true)) {
                return;
            }
            let p = self.insts[i].pool;
            // A lease looks only at the partitions the pool serves now:
            // with none of them waiting, it would find nothing, so it is
            // not asked. Waiting work only shrinks here.
            let lease = &self.pools[p].lease;
            let serves_waiting =
                open_partitions(self.pools[p].pool.capacity, &lease.policy, lease.placement).any(
                    |c| match c {
                        Capacity::Spot => spot > 0,
                        Capacity::OnDemand => on_demand > 0,
                    },
                );
            if !serves_waiting && !self.ask_all {
                open[p] = false;
                continue;
            }
            while self.insts[i].free > 0 {
                if declined.contains(&(p, self.insts[i].free)) && !self.ask_all {
                    break;
                }
                let Ok(Some((task_id, attempt))) = self.state.lease_id(
                    &self.insts[i].id,
                    &self.pools[p].lease,
                    self.now,
                    self.limits,
                ) else {
                    declined.push((p, self.insts[i].free));
                    let slots = self.pools[p].pool.slots;
                    if (1..=slots).all(|f| declined.contains(&(p, f))) {
                        open[p] = false;
                    }
                    break;
                };
                self.report.leases += 1;
                let record = &self.state.tasks[task_id.as_str()];
                let pool = &self.pools[p];
                let held = if pool.pool.hardware == Hardware::Nvenc {
                    record.demand.sessions().max(1)
                } else {
                    1
                };
                let seconds = if record.demand.outputs.is_empty() {
                    SMALL_TASK_SECONDS
                } else {
                    let sigma = self.w.throughput_noise;
                    let factor = (sigma * self.noise.normal() - sigma * sigma / 2.0).exp();
                    pool.rep.seconds(&record.demand, &self.truth) * factor
                        + self.w.task_overhead_seconds
                };
                let end = self.now + (seconds * 1000.0).ceil() as i64;
                let inst = &mut self.insts[i];
                inst.free -= held.min(inst.free);
                let lease = self.report.leases;
                inst.running.push(Running {
                    lease,
                    task: task_id,
                    attempt,
                    end_ms: end,
                    held,
                });
                if inst.free == 0 {
                    self.set_free(i, false);
                }
                self.push(end, Ev::Done { inst: i, lease });
            }
        }
    }

    fn done(&mut self, i: usize, lease: u64) {
        let Some(pos) = self.insts[i].running.iter().position(|r| r.lease == lease) else {
            return; // handed back earlier
        };
        let r = self.insts[i].running.swap_remove(pos);
        self.release(i, r.held);
        let (task_id, attempt) = (r.task.as_str(), r.attempt);
        let Some(task) = self.state.tasks.get(task_id) else {
            return;
        };
        // Nothing reads a simulated object's path: none (an empty string
        // allocates nothing, here or where a stitch copies its chunks').
        let object = |frames: u64| spotenc_proto::domain::OutputObject {
            path: String::new(),
            size_bytes: 1,
            frames,
            ..Default::default()
        };
        let (outcome, follow) = match &task.work {
            Work::Probe(ProbeTask { .. }) => {
                let ahead = self.jobs.get_mut(task.job_id.as_str()).expect("a live job");
                // Planned ahead; planned again only for a probe that
                // completes twice (its first completion was refused).
                let (p, follow) = ahead.planned.take().unwrap_or_else(|| {
                    let p = probe(&ahead.job);
                    let job = &self.state.jobs[task.job_id.as_str()];
                    let tasks =
                        spotenc_core::graph::expand(job, &p, "/w").expect("simulated jobs plan");
                    (p, tasks)
                });
                (TaskOutcome::Probe(p), Some(follow))
            }
            Work::Encode(_) => {
                self.pools[self.insts[i].pool].report.encode_tasks += 1;
                (TaskOutcome::Encode(object(task.frames_total)), None)
            }
            Work::Audio(_) => (TaskOutcome::Audio(object(0)), None),
            Work::Stitch(_) => (TaskOutcome::Stitch(object(task.frames_total)), None),
        };
        self.dirty = true;
        let completed = self.state.complete(
            task_id,
            attempt,
            outcome,
            follow.unwrap_or_default(),
            self.now,
        );
        if let Ok(t) = completed {
            if t.state == JobState::Committing {
                let _ = self.state.finish_commit(&t.job_id, Ok(()), self.now);
                self.job_ended(&t.job_id);
            } else if t.state.is_terminal() {
                self.job_ended(&t.job_id);
            }
        }
        if self.insts[i].draining && self.insts[i].running.is_empty() {
            self.end_instance(i);
        }
    }

    fn release(&mut self, i: usize, held: u32) {
        let slots = self.pools[self.insts[i].pool].pool.slots;
        let inst = &mut self.insts[i];
        inst.free = (inst.free + held).min(slots);
        if inst.live && !inst.draining && !inst.ended && inst.free > 0 {
            self.set_free(i, true);
        }
    }

    /// Summarises a finished job and forgets it.
    fn job_ended(&mut self, job_id: &str) {
        let (job, tasks) = self.state.take_job(job_id).expect("a live job");
        let latency = job.spec.priority == Priority::Latency;
        if job.state == JobState::Succeeded {
            self.report.jobs_done += 1;
            let minutes = job
                .probe
                .as_ref()
                .map_or(0.0, |p| p.duration_seconds / 60.0);
            self.report.output_minutes += minutes;
            let turnaround = (job.finished_unix_ms - job.created_unix_ms) as f32 / 1000.0;
            self.turnaround
                .entry(if latency { "latency" } else { "cost" })
                .or_default()
                .push(turnaround);
        } else {
            self.report.jobs_failed += 1;
        }
        let partition = job.spec.partition();
        for t in &tasks {
            self.work.add(&t.demand, partition);
        }
        for a in tasks.iter().flat_map(|t| &t.history) {
            self.report.work_dollars += a.cost_dollars;
            if let Some(ps) = self.pools.iter_mut().find(|p| p.pool.name == a.pool) {
                ps.report.work_dollars += a.cost_dollars;
            }
            if matches!(
                a.outcome,
                AttemptOutcome::Interrupted | AttemptOutcome::Discarded
            ) {
                let secs = (a.ended_unix_ms - a.started_unix_ms) as f64 / 1000.0;
                self.report.waste_seconds += secs;
                self.report.waste_dollars += a.cost_dollars;
            }
        }
        let ahead = self.jobs.remove(job_id);
        self.jobs_live -= 1;
        // Freed on the planning thread, which allocated much of it.
        self.arrivals.discard((job, tasks, ahead));
    }

    fn finish(mut self) -> Report {
        let mut r = std::mem::take(&mut self.report);
        r.jobs_submitted = self.jobs_submitted;
        for ps in &self.pools {
            r.dollars += ps.report.dollars;
            if ps.report.on_demand {
                r.on_demand_dollars += ps.report.dollars;
            }
        }
        let reps: Vec<_> = self.pools.iter().map(|p| p.rep.clone()).collect();
        let bound = self.work.bound(
            &reps,
            &self.truth,
            self.w.task_overhead_seconds,
            self.now as f64 / 1000.0,
        );
        r.bound_dollars = bound.dollars;
        r.ceilings_bind = bound.ceilings_bind;
        for mut ps in self.pools {
            ps.report.idle_dollars = (ps.report.dollars - ps.report.work_dollars).max(0.0);
            r.pools.push(ps.report);
        }
        r.finish(self.turnaround, self.series);
        r
    }
}
