//! The simulator's charts as SVG, drawn with plotters: cost and waste
//! against chunk length over a sweep, and a run's fleet by pool, hour by
//! hour (`spotenc simulate --plot DIR`).

use std::path::Path;

use plotters::prelude::*;

use crate::Report;

fn plot_err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

/// Dollars per thousand output minutes, total and wasted, against chunk
/// length.
pub fn sweep(reports: &[Report], path: &Path) -> Result<(), String> {
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
pub fn fleet(r: &Report, path: &Path) -> Result<(), String> {
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
