//! Benchmark (not a test): replays one workload through the pure state
//! machine in virtual time, once with FIFO leasing and once with
//! cost-aware placement, and prints cost per output minute, makespan and
//! their ratios. Workload: 60% H.264 1080p, 30% HEVC 1080p, 10% HEVC
//! 2160p, 10-minute sources in 60 s chunks. Fleet: g4dn.xlarge spot,
//! c6i.4xlarge spot and m5.4xlarge on-demand, priced from the built-in
//! catalogue, encode speeds from the cost model's priors.
//!
//!     cargo run --release -p spotenc-coordinator --example placement_bench -- \
//!         [jobs] [span_seconds] [g4dn] [c6i] [m5] [max_cost_ratio...]

#![forbid(unsafe_code)]

use spotenc_core::cost::catalogue::Catalogue;
use spotenc_core::cost::model::Model;
use spotenc_core::cost::place::Policy;
use spotenc_fleetsim::replay::{bench_fleet, mixed_workload, replay, Report};

fn line(name: &str, r: &Report) {
    println!(
        "{name:<22} ${:>9.4}  {:>8.0} out-min  ${:.6}/out-min  makespan {:>7.0} s  max wait {:>6.0} s  jobs {}/{}",
        r.dollars,
        r.output_minutes,
        r.dollars_per_output_minute(),
        r.makespan_s,
        r.max_wait_s,
        r.jobs_done,
        r.jobs_total
    );
    for ((pool, codec), n) in &r.encodes {
        println!("    {pool:<22} {codec:?} chunks {n}");
    }
}

fn main() {
    let args: Vec<f64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let arg = |i: usize, d: f64| args.get(i).copied().unwrap_or(d);
    let jobs = arg(0, 200.0) as usize;
    let span = arg(1, 3.0 * 3600.0);
    let fleet = bench_fleet(
        &Catalogue::builtin(),
        arg(2, 2.0) as u32,
        arg(3, 8.0) as u32,
        arg(4, 1.0) as u32,
    );
    let ratios: Vec<f64> = if args.len() > 5 {
        args[5..].to_vec()
    } else {
        vec![Policy::default().max_cost_ratio]
    };
    let workload = mixed_workload(jobs, 600, span, 42);
    let m = Model::default();
    println!(
        "workload: {jobs} jobs of 10 min over {span:.0} s; fleet: {}",
        fleet
            .iter()
            .map(|p| format!("{} × {}", p.workers, p.pool.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The replay bills busy time only (a fixed fleet, idle is free), so
    // on-demand workers decline dear spot work here, as before the capacity
    // planner made idle on-demand workers take it.
    let base = Policy {
        on_demand_declines_spot: true,
        ..Policy::default()
    };
    let fifo = replay(&fleet, &workload, false, base, &m, &m);
    line("fifo", &fifo);
    for r in ratios {
        let policy = Policy {
            max_cost_ratio: r,
            ..base
        };
        let p = replay(&fleet, &workload, true, policy, &m, &m);
        line(&format!("placement (ratio {r})"), &p);
        println!(
            "    cost/out-min ratio placement/fifo {:.3}   makespan ratio {:.3}",
            p.dollars_per_output_minute() / fifo.dollars_per_output_minute(),
            p.makespan_s / fifo.makespan_s
        );
    }
}
