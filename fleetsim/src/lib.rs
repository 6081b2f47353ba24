//! spotenc-fleetsim: the fleet simulator behind `spotenc simulate`: the
//! real pure state machine, [`spotenc_core::cost::place`] and [`spotenc_core::cost::capacity`] driven in
//! virtual time by simulated workers, spot notices, pool reclaims, spot
//! exhaustion, launch delays, autoscaling every 30 s and per-second
//! billing.
//!
//! - [`workload`]: the workload TOML, validated with file, line and field
//!   (pools load through `spotenc_core::cost::pools`).
//! - [`arrivals`]: the arrival process, planned ahead on its own thread.
//! - [`engine`]: the event loop.
//! - `prices`: the placement memo each pool's lease keeps (a
//!   `spotenc_core::cost::place::Pricer`).
//! - [`report`]: what a run measured, as a table or JSON.
//! - [`bound`]: the run's cost lower bound (every task on its cheapest
//!   capable pool, its seconds only), for the report's efficiency.
//! - [`plots`]: its charts as SVG (plotters).
//! - [`replay`]: the placement replay (placement against FIFO on a fixed
//!   fleet, busy time billed): `bench/placement.sh` and its tests.

#![forbid(unsafe_code)]

mod arrivals;
pub mod bound;
pub mod engine;
pub mod plots;
mod prices;
pub mod replay;
pub mod report;
pub mod workload;

#[cfg(test)]
mod tests;

pub use engine::{simulate, Options};
pub use report::Report;
pub use spotenc_core::cost::pools::{load_pools, parse_pools};
pub use workload::Workload;

/// Fuzz entry point (`fuzz/`'s `config_toml` target and the corpus
/// replay): any text as a workload file must parse or be refused, never
/// panic.
pub fn fuzz_workload(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Workload::parse(text, "fuzz.toml");
    }
}
