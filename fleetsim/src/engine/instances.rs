//! The fleet in the event loop: launching instances, their registration,
//! spot notices and deadlines, pool-wide reclaims, and the autoscaler's
//! tick, which sets each pool's size from the real planner.

use std::collections::BTreeMap;

use spotenc_proto::domain::Capacity;

use super::{Ev, Instance, Running, Sim, NOTICE_MARGIN_SECONDS};
use crate::replay::worker_info;
use crate::report::SeriesPoint;
use spotenc_core::cost::capacity::{plan_capacity, InFlight};
use spotenc_core::cost::place::Fleet;
use spotenc_core::state::{Ending, WorkerRecord};

impl Sim<'_> {
    fn launch(&mut self, p: usize) {
        let pool = self.pools[p].pool.clone();
        let spot = pool.capacity == Capacity::Spot;
        let never = spot
            && self
                .exhaustion
                .is_some_and(|(a, b)| self.now >= a && self.now < b);
        let id = format!("{}-{}", pool.name, self.next_instance);
        self.next_instance += 1;
        let i = self.insts.len();
        self.active[p].insert(i);
        self.insts.push(Instance {
            pool: p,
            id,
            launched_ms: self.now,
            live: false,
            never,
            draining: false,
            ended: false,
            free: 0,
            running: vec![],
        });
        if never {
            return;
        }
        self.pools[p].report.launched += 1;
        let ready = self.now + i64::from(pool.launch_seconds) * 1000;
        self.push(ready, Ev::Registered(i));
        let rate = pool.interruption_rate_per_hour;
        if spot && rate > 0.0 {
            let at = self.now + (self.chaos.exp(3600.0 / rate) * 1000.0) as i64;
            self.push(at, Ev::Notice(i));
        }
    }

    pub(super) fn registered(&mut self, i: usize) {
        let inst = &mut self.insts[i];
        if inst.ended || inst.draining {
            return;
        }
        let p = inst.pool;
        inst.live = true;
        self.live_in[p] += 1;
        inst.free = self.pools[p].pool.slots;
        let mut info = worker_info(&self.pools[p].pool, 0);
        info.name = inst.id.clone();
        self.state.register_worker(WorkerRecord {
            id: inst.id.clone(),
            info,
            registered_unix_ms: self.now,
            strikes: Vec::new(),
        });
        self.set_free(i, true);
        self.dirty = true;
        let live = self.live(p);
        let r = &mut self.pools[p].report;
        r.peak_live = r.peak_live.max(live);
        if live == 1 {
            self.refresh_fleet();
        }
    }

    fn live(&self, p: usize) -> u32 {
        #[cfg(test)]
        assert_eq!(
            self.live_in[p],
            self.active[p]
                .iter()
                .filter(|&&i| self.insts[i].live && !self.insts[i].draining)
                .count() as u32,
            "live instances of pool {p}"
        );
        self.live_in[p]
    }

    /// Gives every pool's lease the pools that have live workers.
    fn refresh_fleet(&mut self) {
        let live: Vec<bool> = (0..self.pools.len()).map(|p| self.live(p) > 0).collect();
        // The fleet is the pools with live workers: unchanged unless they
        // are.
        if self.fleet_of.as_ref() == Some(&live) {
            return;
        }
        self.fleet_of = Some(live.clone());
        let fleet = Fleet {
            pools: self
                .pools
                .iter()
                .zip(&live)
                .filter(|(_, l)| **l)
                .map(|(p, _)| p.rep.clone())
                .collect(),
        };
        for p in &mut self.pools {
            p.lease.set_fleet(fleet.clone());
        }
    }

    /// A spot notice: finish what fits, hand back the rest, stop leasing,
    /// and go by the deadline.
    pub(super) fn notice(&mut self, i: usize) {
        if self.insts[i].ended || self.insts[i].draining {
            return;
        }
        let p = self.insts[i].pool;
        self.pools[p].report.interruptions += 1;
        self.report.interruptions += 1;
        if !self.insts[i].live {
            self.end_instance(i);
            return;
        }
        self.insts[i].draining = true;
        self.live_in[p] -= 1;
        self.set_free(i, false);
        let keep_until = self.now
            + ((self.w.interruptions.notice_seconds - NOTICE_MARGIN_SECONDS) * 1000.0) as i64;
        let running = std::mem::take(&mut self.insts[i].running);
        let mut kept = vec![];
        for r in running {
            if r.end_ms <= keep_until {
                kept.push(r);
                continue;
            }
            self.hand_back(p, &r);
        }
        self.insts[i].running = kept;
        self.dirty = true;
        if self.insts[i].running.is_empty() {
            self.end_instance(i);
        } else {
            let deadline = self.now + (self.w.interruptions.notice_seconds * 1000.0) as i64;
            self.push(deadline, Ev::Deadline(i));
        }
        self.refresh_fleet();
    }

    fn hand_back(&mut self, p: usize, r: &Running) {
        let ending = Ending::new("spot interruption notice", true);
        if self
            .state
            .hand_back(&r.task, r.attempt, &ending, self.now)
            .is_ok()
        {
            self.pools[p].report.hand_backs += 1;
            self.report.hand_backs += 1;
            let name = self.pools[p].pool.name.clone();
            self.tracker.interrupted(&name, self.now, &self.policy);
        }
    }

    /// Ends an instance: bills it, hands back anything still running.
    pub(super) fn end_instance(&mut self, i: usize) {
        if self.insts[i].ended {
            return;
        }
        let p = self.insts[i].pool;
        let running = std::mem::take(&mut self.insts[i].running);
        for r in &running {
            self.hand_back(p, r);
        }
        self.set_free(i, false);
        let inst = &mut self.insts[i];
        if inst.live && !inst.draining {
            self.live_in[p] -= 1;
        }
        inst.ended = true;
        self.active[p].remove(&i);
        self.state.workers.remove(&inst.id);
        self.state.seen.remove(inst.id.as_str());
        if !inst.never {
            let pool = &self.pools[p].pool;
            let seconds =
                ((self.now - inst.launched_ms) as f64 / 1000.0).max(self.w.billing_minimum_seconds);
            let dollars = seconds * pool.price_per_hour / 3600.0;
            let r = &mut self.pools[p].report;
            r.instance_hours += seconds / 3600.0;
            r.dollars += dollars;
        }
        if inst.live {
            self.refresh_fleet();
        }
    }

    /// A pool-wide reclaim: every worker of one spot pool with workers
    /// gets its notice now.
    pub(super) fn reclaim(&mut self) {
        let pools: Vec<usize> = (0..self.pools.len())
            .filter(|&p| self.pools[p].pool.capacity == Capacity::Spot && self.live(p) > 0)
            .collect();
        if !pools.is_empty() {
            let p = pools[(self.chaos.next_u64() % pools.len() as u64) as usize];
            self.report.reclaims += 1;
            let victims: Vec<usize> = self.active[p].iter().copied().collect();
            for i in victims {
                self.notice(i);
            }
        }
        if self.now < self.arrivals_end_ms {
            let next = self.reclaim_gap();
            self.push(next, Ev::Reclaim);
        }
    }

    /// The autoscaler: the planner's desired workers per pool, as KEDA
    /// would apply them. Returns `false` once everything is done.
    /// Restarts jobs pinned to encoder identities that no live pool has
    /// served for the affinity wait, as the coordinator's reaper does.
    fn restart_unserved(&mut self) {
        let pinned = self.state.pinned_waiting();
        if pinned.is_empty() && self.unserved.is_empty() {
            return;
        }
        let live: Vec<_> = (0..self.pools.len())
            .filter(|&p| self.live_in[p] > 0)
            .map(|p| self.pools[p].rep.clone())
            .collect();
        let wait = (self.w.affinity_wait_seconds * 1000.0) as i64;
        for (job, reason) in self.unserved.due(&pinned, &live, wait, self.now) {
            if let Ok(Some(_)) =
                self.state
                    .restart_identity(&job.job_id, &job.identities, &reason, self.now)
            {
                self.report.identity_restarts += 1;
                self.dirty = true;
            }
        }
    }

    pub(super) fn tick(&mut self) -> bool {
        let arrivals_over = self.now >= self.arrivals_end_ms;
        if arrivals_over && self.jobs_live == 0 {
            return false;
        }
        #[cfg(test)]
        self.state.check_index(self.now);
        self.state.escalate_waiting(self.now);
        self.restart_unserved();
        // Escalated or overdue work may now go to pools that held back.
        self.dirty = true;
        let backlog = self.state.backlog();
        // Counted by pool index, then named (a name per pool, not per
        // instance).
        let mut counted = vec![InFlight::default(); self.pools.len()];
        for x in self
            .active
            .iter()
            .flatten()
            .map(|&i| &self.insts[i])
            .filter(|x| x.live && !x.draining)
        {
            let f = &mut counted[x.pool];
            f.live += 1;
            if !x.running.is_empty() {
                f.busy += 1;
            }
        }
        let flight: BTreeMap<String, InFlight> = counted
            .into_iter()
            .enumerate()
            .filter(|(_, f)| f.live > 0)
            .map(|(p, f)| (self.pools[p].pool.name.clone(), f))
            .collect();
        let health = self.tracker.health(&self.catalogue);
        let targets = plan_capacity(
            &self.catalogue,
            &backlog,
            &flight,
            &self.truth,
            &health,
            &self.policy,
        );
        let window = (self.w.scale_in_window_seconds * 1000.0) as i64;
        for t in targets {
            let Some(p) = self.pools.iter().position(|x| x.pool.name == t.pool) else {
                continue;
            };
            let now = self.now;
            let ps = &mut self.pools[p];
            // The deployment holds each pool for its launch time at most
            // (`deploy render`: past it, a relaunch costs less than idle).
            let window = window.min(i64::from(ps.pool.launch_seconds) * 1000);
            ps.history.push((now, t.desired_workers));
            ps.history.retain(|(at, _)| now - at <= window);
            let held = ps.history.iter().map(|(_, d)| *d).max().unwrap_or(0);
            // Up at once, down only to the window's highest.
            let desired = t
                .desired_workers
                .max(held.min(ps.desired.max(t.desired_workers)));
            ps.desired = desired;
            let live = flight.get(&t.pool).map_or(0, |f| f.live);
            // An on-demand pool above its own plan takes no spot work.
            ps.lease.policy.spot_closed = t.spot_closed;
            let pool = ps.pool.clone();
            self.tracker
                .observe(&pool, live, desired, now, &self.policy);
            self.scale(p, desired);
        }
        // Hourly fleet sizes for the plot.
        for p in 0..self.pools.len() {
            let live = f64::from(self.live(p));
            self.pools[p].hour_live += live;
        }
        self.hour_ticks += 1;
        let per_hour = (3600.0 / self.w.autoscale_seconds).round().max(1.0) as u32;
        if self.hour_ticks >= per_hour {
            if let Some(series) = &mut self.series {
                for ps in &self.pools {
                    series.push(SeriesPoint {
                        hour: (self.now / 3_600_000) as u32,
                        pool: ps.pool.name.clone(),
                        workers: ps.hour_live / f64::from(self.hour_ticks),
                    });
                }
            }
            for ps in &mut self.pools {
                ps.hour_live = 0.0;
            }
            self.hour_ticks = 0;
        }
        let next = self.now + (self.w.autoscale_seconds * 1000.0) as i64;
        self.push(next, Ev::Tick);
        true
    }

    /// Launches or removes instances until the pool has `desired` (live or
    /// launching); removes launching ones first, then idle ones, newest
    /// first; never a busy one.
    fn scale(&mut self, p: usize, desired: u32) {
        let mine: Vec<usize> = self.active[p]
            .iter()
            .copied()
            .filter(|&i| !self.insts[i].draining)
            .collect();
        let have = mine.len() as u32;
        if desired > have {
            for _ in have..desired {
                self.launch(p);
            }
            return;
        }
        let mut surplus = have - desired;
        for &i in mine.iter().rev() {
            if surplus == 0 {
                break;
            }
            if !self.insts[i].live {
                self.end_instance(i);
                surplus -= 1;
            }
        }
        for &i in mine.iter().rev() {
            if surplus == 0 {
                break;
            }
            let x = &self.insts[i];
            if x.live && !x.ended && x.running.is_empty() {
                self.end_instance(i);
                surplus -= 1;
            }
        }
    }
}
