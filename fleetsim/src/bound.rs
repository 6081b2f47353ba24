//! The cost lower bound of a run: what the work would cost if every task ran
//! on its cheapest capable pool and the fleet paid only for the seconds its
//! tasks take there. Efficiency is the bound over what the run paid.
//!
//! How it is computed (the report's help says the same):
//! - every task the run's jobs planned, in its job's partition (cost work
//!   on any pool, latency work on on-demand pools only);
//! - a task's seconds on a pool are the cost model's prediction (the run's
//!   "truth", without noise) plus the workload's per-task overhead; probe,
//!   audio and stitch tasks take their 5 s; it holds the slots it holds in
//!   the run (an NVENC session per rendition);
//! - dollars are slot-seconds at the pool's slot price: no boot, billing
//!   minimum, idle, interruption or re-run;
//! - affinity: all chunks of a job go to one pool (jobs of one shape are
//!   split between pools only as whole jobs' shares);
//! - ceilings: no pool gets more slot-seconds than `max_workers × slots ×
//!   the run's length`. Shapes are placed in order of what they lose per
//!   slot-second on their second-best pool, each on its cheapest pools with
//!   room left (exact when no ceiling binds, and when one does and the
//!   shapes it turns away have room on their next pool).

use rustc_hash::FxHashMap;

use spotenc_core::cost::catalogue::Hardware;
use spotenc_core::cost::model::{Demand, Model, Output, SMALL_TASK_SECONDS};
use spotenc_core::cost::place::Worker;
use spotenc_proto::domain::Capacity;

/// The work of a run, summed by task shape and partition.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// Encode tasks: their frames and count, by outputs and on-demand.
    encodes: FxHashMap<(Vec<Output>, bool), (u64, u64)>,
    /// Tasks without outputs, spot and on-demand.
    small: [u64; 2],
}

/// The bound, and the pools whose ceilings bound it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bound {
    pub dollars: f64,
    pub ceilings_bind: Vec<String>,
}

/// One shape of work on one pool: its dollars and slot-seconds there.
#[derive(Debug, Clone, Copy)]
struct Option_ {
    pool: usize,
    dollars: f64,
    slot_seconds: f64,
}

impl Work {
    /// Adds one task of `demand` in `partition`.
    pub fn add(&mut self, demand: &Demand, partition: Capacity) {
        let on_demand = partition == Capacity::OnDemand;
        if demand.outputs.is_empty() {
            self.small[usize::from(on_demand)] += 1;
            return;
        }
        let e = self
            .encodes
            .entry((demand.outputs.clone(), on_demand))
            .or_default();
        e.0 += demand.frames;
        e.1 += 1;
    }

    /// The bound on `pools` (each a pool's representative worker) over a
    /// run of `run_seconds`, with `overhead` seconds per encode task.
    pub fn bound(&self, pools: &[Worker], model: &Model, overhead: f64, run_seconds: f64) -> Bound {
        let slot_price =
            |w: &Worker| w.pool.price_per_hour / f64::from(w.pool.slots.max(1)) / 3600.0;
        let serves = |w: &Worker, od: bool| !od || w.pool.capacity == Capacity::OnDemand;
        // Tasks without outputs: their 5 s on the cheapest slot.
        let mut dollars = 0.0;
        for (od, n) in [(false, self.small[0]), (true, self.small[1])] {
            let cheapest = pools
                .iter()
                .filter(|w| serves(w, od))
                .map(slot_price)
                .fold(f64::INFINITY, f64::min);
            if n > 0 && cheapest.is_finite() {
                dollars += n as f64 * SMALL_TASK_SECONDS * cheapest;
            }
        }
        // Encode work: each shape's options, cheapest first.
        let mut shapes: Vec<Vec<Option_>> = self
            .encodes
            .iter()
            .map(|((outputs, od), (frames, tasks))| {
                let d = Demand {
                    outputs: outputs.clone(),
                    frames: *frames,
                    audio: None,
                };
                let mut options: Vec<Option_> = pools
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| serves(w, *od) && w.can_run(&d))
                    .map(|(i, w)| {
                        let held = if w.pool.hardware == Hardware::Nvenc {
                            f64::from(d.sessions().max(1))
                        } else {
                            1.0
                        };
                        let seconds = w.seconds(&d, model) + *tasks as f64 * overhead;
                        let slot_seconds = seconds * held;
                        Option_ {
                            pool: i,
                            dollars: slot_seconds * slot_price(w),
                            slot_seconds,
                        }
                    })
                    .collect();
                options.sort_by(|a, b| a.dollars.total_cmp(&b.dollars).then(a.pool.cmp(&b.pool)));
                options
            })
            .filter(|o| !o.is_empty())
            .collect();
        // Most to lose per slot-second of the best pool first.
        let regret = |o: &[Option_]| match o {
            [a, b, ..] => (b.dollars - a.dollars) / a.slot_seconds.max(1e-9),
            _ => f64::INFINITY,
        };
        shapes.sort_by(|a, b| regret(b).total_cmp(&regret(a)));
        let mut room: Vec<f64> = pools
            .iter()
            .map(|w| f64::from(w.pool.max_workers) * f64::from(w.pool.slots.max(1)) * run_seconds)
            .collect();
        let mut bind = vec![false; pools.len()];
        for options in &shapes {
            let mut left = 1.0; // share of the shape still to place
            for o in options {
                if left <= 0.0 {
                    break;
                }
                let fits = (room[o.pool] / o.slot_seconds.max(1e-9)).min(left);
                if fits < left {
                    bind[o.pool] = true;
                }
                room[o.pool] -= fits * o.slot_seconds;
                dollars += fits * o.dollars;
                left -= fits;
            }
            // No room anywhere: the rest at its dearest capable pool.
            if left > 1e-12 {
                dollars += left * options.last().expect("non-empty").dollars;
            }
        }
        Bound {
            dollars,
            ceilings_bind: pools
                .iter()
                .zip(bind)
                .filter(|(_, b)| *b)
                .map(|(w, _)| w.pool.name.clone())
                .collect(),
        }
    }
}
