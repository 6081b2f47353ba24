//! `spotenc simulate`: runs the fleet simulator over one or more chunk
//! lengths (in parallel, one thread each, up to the cores) and prints the
//! reports as tables or JSON; with `--plot DIR`, the SVG charts of
//! `spotenc_fleetsim::plots` (cost and waste against chunk length, and
//! fleet size by pool over time).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use spotenc_fleetsim::{self as fleetsim, Options, Report, Workload};

pub struct Args {
    pub pools: PathBuf,
    pub workload: PathBuf,
    pub chunk_seconds: Vec<f64>,
    pub placement: Option<String>,
    pub seed: u64,
    pub json: bool,
    pub plot: Option<PathBuf>,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let catalogue = fleetsim::load_pools(&a.pools).map_err(anyhow::Error::msg)?;
    let workload = Workload::load(&a.workload).map_err(anyhow::Error::msg)?;
    let placement = match a.placement.as_deref() {
        None => None,
        Some("cost") => Some(true),
        Some("fifo") => Some(false),
        Some(other) => anyhow::bail!("--placement {other:?}: expected cost or fifo"),
    };
    let chunks: Vec<Option<f64>> = if a.chunk_seconds.is_empty() {
        vec![None]
    } else {
        for c in &a.chunk_seconds {
            anyhow::ensure!(
                c.is_finite() && *c >= 1.0,
                "--chunk-seconds {c}: must be at least 1"
            );
        }
        a.chunk_seconds.iter().copied().map(Some).collect()
    };
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut reports: Vec<Report> = Vec::with_capacity(chunks.len());
    for batch in chunks.chunks(threads) {
        let done: Vec<Report> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&chunk_seconds| {
                    let (catalogue, workload) = (&catalogue, &workload);
                    let opts = Options {
                        seed: a.seed,
                        chunk_seconds,
                        placement,
                        series: a.plot.is_some(),
                        ask_all: false,
                    };
                    s.spawn(move || fleetsim::simulate(catalogue, workload, &opts))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("simulation thread"))
                .collect()
        });
        reports.extend(done);
    }
    let wall = started.elapsed().as_secs_f64();
    let events: u64 = reports.iter().map(|r| r.events).sum();
    eprintln!(
        "simulated {} run(s), {events} events in {wall:.2} s wall ({:.0} events/s)",
        reports.len(),
        events as f64 / wall.max(1e-9)
    );
    if a.json {
        let runs: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).expect("report serialises");
                if let Some(o) = v.as_object_mut() {
                    o.remove("series");
                }
                v
            })
            .collect();
        let out = serde_json::json!({
            "workload": a.workload.display().to_string(),
            "pools": a.pools.display().to_string(),
            "assumptions": workload.assumptions,
            "runs": runs,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &reports {
            println!("{}", r.table());
        }
        if reports.len() > 1 {
            print!("{}", sweep_table(&reports));
        }
    }
    if let Some(dir) = &a.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut written = vec![];
        if reports.len() > 1 {
            let f = dir.join("cost-vs-chunk.svg");
            fleetsim::plots::sweep(&reports, &f).map_err(anyhow::Error::msg)?;
            written.push(f);
        }
        for r in &reports {
            let f = dir.join(format!("fleet-{}s.svg", r.chunk_seconds));
            fleetsim::plots::fleet(r, &f).map_err(anyhow::Error::msg)?;
            written.push(f);
        }
        for f in written {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

/// One line per chunk length: where waste and per-chunk overhead cross.
pub fn sweep_table(reports: &[Report]) -> String {
    let mut s = format!(
        "{:>9} {:>12} {:>12} {:>12} {:>10} {:>12}\n",
        "chunk s", "$/out-min", "waste $", "idle $", "hand-backs", "p95 cost s"
    );
    for r in reports {
        s.push_str(&format!(
            "{:>9} {:>12.6} {:>12.2} {:>12.2} {:>10} {:>12.0}\n",
            r.chunk_seconds,
            r.dollars_per_output_minute,
            r.waste_dollars,
            r.idle_dollars,
            r.hand_backs,
            r.turnaround.get("cost").map_or(0.0, |p| p.p95_s),
        ));
    }
    s
}
