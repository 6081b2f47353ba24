//! The fleet simulator behind `spotenc simulate`: the real pure state
//! machine, [`crate::cost::place`] and [`crate::cost::capacity`] driven in
//! virtual time by simulated workers, spot notices, pool reclaims, spot
//! exhaustion, launch delays, autoscaling every 30 s and per-second
//! billing.
//!
//! - [`workload`]: the workload and pools TOML, validated with file, line
//!   and field.
//! - [`arrivals`]: the arrival process, planned ahead on its own thread.
//! - [`engine`]: the event loop.
//! - [`report`]: what a run measured, as a table or JSON.

mod arrivals;
pub mod engine;
pub mod report;
pub mod workload;

#[cfg(test)]
mod tests;

pub use engine::{simulate, Options};
pub use report::Report;
pub use workload::{load_pools, parse_pools, Workload};
