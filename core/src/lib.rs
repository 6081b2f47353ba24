//! spotenc-core: the pure part of spotenc. No tokio, no Redis, no AWS, no
//! I/O and no clock: every function here takes what it needs and returns
//! what it decided, so the stores, the server and the simulator all run the
//! same rules.
//!
//! Layout:
//! - [`plan`]: chunk boundaries from keyframes, the streams a job keeps and
//!   what it leaves out.
//! - [`graph`]: the task graph of a job, a stitch per rendition.
//! - [`paths`]: per-attempt object names and the output's hidden temporary.
//! - [`cost`]: the pool catalogue and its loader, the codec cost model,
//!   placement and the capacity planner.
//! - [`quality`]: what a job's measured chunks add up to per output,
//!   flagged seams, and the outlier guard's verdict before the stitch.
//! - [`state`]: the job, task and worker records, the pure state
//!   [`state::machine`] every transition runs through, and its index.

#![forbid(unsafe_code)]

pub mod cost;
pub mod graph;
pub mod paths;
pub mod plan;
pub mod quality;
pub mod state;
