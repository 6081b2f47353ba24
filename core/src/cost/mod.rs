//! What makes spotenc cost-aware. Everything here is pure: no I/O, no
//! clock.
//!
//! - [`affinity`]: when a job pinned to encoder identities no live worker
//!   serves restarts under another.
//! - [`capacity`]: the capacity planner (desired workers per pool, with
//!   reasons) and pool health from hand-backs and registrations.
//! - [`catalogue`]: the pool catalogue (built-in `pools.toml` plus the
//!   operator's `[[pools]]`), validation, and derived entries for workers
//!   whose pool is not in it.
//! - [`model`]: the codec cost model (priors with sources, the learning
//!   estimator), task demand, expected re-run waste and expected cost.
//! - [`place`]: the placement function both stores call, its FIFO
//!   baseline, and the bounded candidate window.
//! - [`pools`]: the one pools loader (a `[[pools]]` TOML into a validated
//!   catalogue, errors located by file, line, pool and field).
//! - [`Lease`]: what a store needs to lease for one worker.

pub mod affinity;
pub mod capacity;
pub mod catalogue;
pub mod model;
pub mod place;
pub mod pools;

#[cfg(test)]
mod capacity_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use spotenc_proto::domain::{AttemptOutcome, AttemptRecord, Capacity, JobCost};

use self::catalogue::Hardware;
use self::model::{Demand, Model};
use self::place::{Fleet, Policy, Worker};

/// How many pending tasks of each partition × queue class placement sees.
pub const WINDOW_PER_CLASS: usize = 8;

/// What a store needs to lease a task to one worker.
#[derive(Debug, Clone)]
pub struct Lease {
    /// `None`: plain first-in first-out over the worker's partitions, with
    /// no capability check and no pricing (tests and tools).
    pub worker: Option<Worker>,
    pub fleet: Fleet,
    pub model: Model,
    pub policy: Policy,
    /// Cost-aware placement; `false` is FIFO among capable tasks.
    pub placement: bool,
    /// Where ratios come from: `None` works each out afresh; a lease that
    /// makes many choices may keep them (the simulator's, one per pool).
    /// Change the fleet of a lease that keeps them with
    /// [`Lease::set_fleet`]. Clones share the pricer: a lease for another
    /// worker needs its own.
    pub pricer: Option<std::sync::Arc<dyn place::Pricer>>,
}

impl Lease {
    pub fn fifo() -> Lease {
        Lease {
            worker: None,
            fleet: Fleet::default(),
            model: Model::default(),
            policy: Policy::default(),
            placement: false,
            pricer: None,
        }
    }

    /// Sets the live fleet, forgetting the ratios worked out for the last.
    pub fn set_fleet(&mut self, fleet: Fleet) {
        self.fleet = fleet;
        if let Some(p) = &self.pricer {
            p.forget();
        }
    }

    fn placement_for<'a>(&'a self, worker: &'a Worker, now_ms: i64) -> place::Placement<'a> {
        place::Placement {
            worker,
            model: &self.model,
            fleet: &self.fleet,
            policy: &self.policy,
            now_ms,
            pricer: self.pricer.as_deref(),
        }
    }

    /// Chooses among `candidates` (already windowed) for a worker whose
    /// leases hold `sessions_held` NVENC sessions (the store knows): the
    /// first of [`Lease::rank`], without ranking the rest.
    pub fn choose<'c>(
        &self,
        candidates: &'c [place::Candidate],
        sessions_held: u32,
        now_ms: i64,
    ) -> Option<&'c str> {
        let Some(w) = self.worker_holding(sessions_held) else {
            return candidates
                .iter()
                .min_by_key(|c| c.order)
                .map(|c| c.task_id.as_ref());
        };
        if self.placement {
            self.placement_for(&w, now_ms).best(candidates)
        } else {
            place::fifo_best(&w, candidates)
        }
    }

    /// Every candidate the worker may take, best first.
    pub fn rank<'c>(
        &self,
        candidates: &'c [place::Candidate],
        sessions_held: u32,
        now_ms: i64,
    ) -> Vec<&'c str> {
        let Some(w) = self.worker_holding(sessions_held) else {
            let mut all: Vec<&place::Candidate> = candidates.iter().collect();
            all.sort_by_key(|c| c.order);
            return all.iter().map(|c| c.task_id.as_ref()).collect();
        };
        if self.placement {
            self.placement_for(&w, now_ms).rank(candidates)
        } else {
            place::fifo_rank(&w, candidates)
        }
    }

    /// The worker holding `sessions_held` NVENC sessions; a copy only when
    /// they differ from its own (NVENC workers holding some).
    fn worker_holding(&self, sessions_held: u32) -> Option<std::borrow::Cow<'_, Worker>> {
        let w = self.worker.as_ref()?;
        Some(if w.sessions_held == sessions_held {
            std::borrow::Cow::Borrowed(w)
        } else {
            std::borrow::Cow::Owned(Worker {
                sessions_held,
                ..w.clone()
            })
        })
    }

    /// The encoder identity of each output of `demand` on the leasing
    /// worker (none without a worker: tools and tests).
    pub fn identities(&self, demand: &Demand) -> Vec<spotenc_proto::domain::EncoderIdentity> {
        self.worker
            .as_ref()
            .map_or_else(Vec::new, |w| w.identities(demand))
    }

    /// [`Lease::identities`] by name.
    pub fn identity_names(&self, demand: &Demand) -> Vec<String> {
        self.worker
            .as_ref()
            .map_or_else(Vec::new, |w| w.identity_names(demand))
    }

    /// The pricing of an attempt at a task of `demand`: ($/h for the slots
    /// it holds, on-demand, NVENC sessions).
    pub fn pricing(&self, demand: &Demand) -> (f64, bool, u32) {
        let Some(w) = &self.worker else {
            return (0.0, false, 0);
        };
        let sessions = if w.uses_nvenc(demand) {
            demand.sessions()
        } else {
            0
        };
        (
            w.pool.price_per_hour * w.pool.share(demand.sessions()),
            w.pool.capacity == Capacity::OnDemand,
            sessions,
        )
    }
}

/// A job's cost from its attempts, and the output seconds it makes.
pub fn job_cost<'a>(
    attempts: impl Iterator<Item = &'a AttemptRecord>,
    output_seconds: f64,
    now_ms: i64,
) -> JobCost {
    let mut c = JobCost {
        output_seconds,
        ..Default::default()
    };
    for a in attempts {
        let dollars = a.cost_at(now_ms);
        if a.on_demand {
            c.on_demand_dollars += dollars;
        } else {
            c.spot_dollars += dollars;
        }
        if !matches!(a.outcome, AttemptOutcome::Done | AttemptOutcome::Running) {
            c.wasted_dollars += dollars;
        }
    }
    if output_seconds > 0.0 {
        c.dollars_per_output_minute =
            (c.spot_dollars + c.on_demand_dollars) / (output_seconds / 60.0);
    }
    c
}

/// The rows of `spotenc costs`: every key with samples, plus H.264 and
/// HEVC at medium and 1080p for every catalogue pool's instance type, each
/// with what the pools of its class charge per output minute of 1080p30.
pub fn costs_table(
    catalogue: &catalogue::Catalogue,
    model: &Model,
) -> Vec<spotenc_proto::domain::CostEntry> {
    use spotenc_proto::domain::Codec;
    let mut keys: std::collections::BTreeSet<model::Key> = model
        .samples
        .keys()
        .filter_map(|k| model::Key::decode(k))
        .collect();
    for p in catalogue.pools.values() {
        for codec in [Codec::H264, Codec::Hevc] {
            let nvenc = [Codec::H264, Codec::Hevc];
            keys.insert(model::Key {
                class: p.instance_type.clone(),
                family: model::family(p.hardware, &nvenc, codec, false).into(),
                codec,
                preset: "medium".into(),
                band: "hd1080".into(),
            });
        }
    }
    let minute_1080p30 = model::PIXELS_1080P * 30.0 * 60.0;
    keys.into_iter()
        .map(|key| {
            let pools: Vec<&catalogue::Pool> = catalogue
                .pools
                .values()
                .filter(|p| p.instance_type == key.class || p.hardware.name() == key.class)
                .collect();
            let shape = pools.first().map_or(
                model::Shape {
                    hardware: match key.family.strip_suffix("-10").unwrap_or(&key.family) {
                        "nvenc" => Hardware::Nvenc,
                        "qsv" => Hardware::Qsv,
                        _ => Hardware::Cpu,
                    },
                    gpu: String::new(),
                    vcpus: 8,
                    slots: 1,
                },
                |p| model::Shape::from(*p),
            );
            let samples = model
                .samples
                .get(&key.encode())
                .copied()
                .unwrap_or_default();
            let learned = model.throughput(&key, &shape);
            spotenc_proto::domain::CostEntry {
                prior_pixels_per_second: model::prior(&key, &shape),
                learned_pixels_per_second: learned,
                samples: samples.n,
                measured: samples.measured,
                bits_per_pixel: samples.bits_per_pixel(),
                psnr: samples.psnr(),
                pools: pools
                    .iter()
                    .map(|p| {
                        let pps = model.throughput(&key, &model::Shape::from(*p));
                        (
                            p.name.clone(),
                            p.slot_price_per_second() * minute_1080p30 / pps.max(1.0),
                        )
                    })
                    .collect(),
                class: key.class,
                family: key.family,
                codec: key.codec,
                preset: key.preset,
                band: key.band,
            }
        })
        .collect()
}
