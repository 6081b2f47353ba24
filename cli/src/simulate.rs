//! `spotenc simulate`: runs the fleet simulator over one or more chunk
//! lengths (in parallel, one thread each, up to the cores) and prints the
//! reports as tables or JSON; with `--plot DIR`, SVG charts drawn with
//! plotters (cost and waste against chunk length, and fleet size by pool
//! over time).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use plotters::prelude::*;
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
            plot_sweep(&reports, &f)?;
            written.push(f);
        }
        for r in &reports {
            let f = dir.join(format!("fleet-{}s.svg", r.chunk_seconds));
            plot_fleet(r, &f)?;
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

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Dollars per thousand output minutes, total and wasted, against chunk
/// length.
fn plot_sweep(reports: &[Report], path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let per_k = |r: &Report, d: f64| {
        if r.output_minutes > 0.0 {
            d / r.output_minutes * 1000.0
        } else {
            0.0
        }
    };
    let total: Vec<(f64, f64)> = reports
        .iter()
        .map(|r| (r.chunk_seconds, per_k(r, r.dollars)))
        .collect();
    let waste: Vec<(f64, f64)> = reports
        .iter()
        .map(|r| (r.chunk_seconds, per_k(r, r.waste_dollars)))
        .collect();
    let idle: Vec<(f64, f64)> = reports
        .iter()
        .map(|r| (r.chunk_seconds, per_k(r, r.idle_dollars)))
        .collect();
    let x_max = total.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = total.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15 + 1e-6;
    let mut chart = ChartBuilder::on(&root)
        .caption("Cost against chunk length", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("chunk length (s)")
        .y_desc("$ per 1,000 output minutes")
        .draw()
        .map_err(plot_err)?;
    for (name, series, color) in [
        ("total", &total, BLUE),
        ("re-run waste", &waste, RED),
        ("idle (boot, scale-in lag, minimums)", &idle, GREEN),
    ] {
        chart
            .draw_series(LineSeries::new(
                series.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(series.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Mean live workers per pool, hour by hour.
fn plot_fleet(r: &Report, path: &Path) -> anyhow::Result<()> {
    let series = r.series.as_deref().unwrap_or(&[]);
    let mut pools: Vec<&str> = series
        .iter()
        .filter(|p| p.workers > 0.0)
        .map(|p| p.pool.as_str())
        .collect();
    pools.sort_unstable();
    pools.dedup();
    let hours = series.iter().map(|p| p.hour).max().unwrap_or(1).max(1);
    let y_max = series.iter().map(|p| p.workers).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Fleet by pool ({} s chunks, {} placement)",
                r.chunk_seconds, r.placement
            ),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0u32..hours, 0.0..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("hour")
        .y_desc("live workers (hourly mean)")
        .draw()
        .map_err(plot_err)?;
    for (i, pool) in pools.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(u32, f64)> = series
            .iter()
            .filter(|p| p.pool == *pool)
            .map(|p| (p.hour, p.workers))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_err)?
            .label(*pool)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}
