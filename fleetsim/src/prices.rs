//! The simulator's placement memo: a [`Pricer`] that keeps each demand's
//! ratio for one pool's lease from one choice to the next, so the event
//! loop prices a demand once instead of once per choice. The server prices
//! afresh (`Lease::pricer` is `None` there).

use std::sync::Mutex;

use rustc_hash::FxHashMap;
use spotenc_core::cost::model::{Model, Output};
use spotenc_core::cost::place::{ratio, Candidate, Fleet, Pricer, Worker};
use spotenc_proto::domain::Capacity;

/// [`ratio`]s already worked out for one worker against one fleet and
/// model: a lease kept for many choices (the simulator keeps one per pool)
/// prices each demand once instead of once per choice. By frames, then
/// partition, outputs and pin (a pinned job compares with the pools that
/// keep its pin only). It remembers the fleet and model it priced for
/// and starts again when either differs (a comparison of the pools' and
/// the samples' counts, and in debug builds of the whole fleet and model:
/// [`Lease::set_fleet`](spotenc_core::cost::Lease::set_fleet) is the way
/// to change them). (A mutex, uncontended, so a lease stays `Sync`.)
#[derive(Debug, Default)]
pub struct Prices(Mutex<PriceMemo>);

type PriceRow = (Capacity, Vec<Output>, Vec<String>, (f64, f64));

#[derive(Debug, Default)]
struct PriceMemo {
    fleet: Fleet,
    model: Model,
    by_frames: FxHashMap<u64, Vec<PriceRow>>,
}

impl Prices {
    fn memo(&self) -> std::sync::MutexGuard<'_, PriceMemo> {
        // A memo is only ever left whole: a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pricer for Prices {
    /// Forgets every ratio (the fleet or model changed).
    fn forget(&self) {
        *self.memo() = PriceMemo::default();
    }

    /// `c`'s ratio on `worker`, worked out once per demand.
    fn ratio(&self, worker: &Worker, c: &Candidate, model: &Model, fleet: &Fleet) -> (f64, f64) {
        let mut memo = self.memo();
        let stale = memo.fleet.pools.len() != fleet.pools.len()
            || memo.model.samples.len() != model.samples.len();
        debug_assert!(
            stale || (memo.fleet == *fleet && memo.model == *model),
            "a lease's fleet or model changed without Lease::set_fleet"
        );
        if stale {
            *memo = PriceMemo {
                fleet: fleet.clone(),
                model: model.clone(),
                by_frames: FxHashMap::default(),
            };
        }
        let rows = memo.by_frames.entry(c.demand.frames).or_default();
        if let Some((_, _, _, x)) = rows.iter().find(|(p, outputs, pinned, _)| {
            *p == c.partition && *outputs == c.demand.outputs && **pinned == *c.pinned
        }) {
            return *x;
        }
        let x = ratio(worker, c, model, fleet);
        rows.push((c.partition, c.demand.outputs.clone(), c.pinned.to_vec(), x));
        x
    }
}

#[cfg(test)]
mod tests;
