//! The worker's Prometheus endpoint: `GET /metrics` on `metrics_listen`,
//! rendered from the `metrics` recorder, with task outcomes, slot use,
//! notices and (on GPU hosts) the NVML telemetry of every GPU.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use spotenc_proto::domain::GpuTelemetry;
use tracing::{info, warn};

/// Task durations, in seconds: chunks take seconds to minutes.
const TASK_SECONDS: &[f64] = &[
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Installs the recorder (once per process) and serves it on `addr`.
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("spotenc_worker_task_seconds".into()),
            TASK_SECONDS,
        )
        .map_err(std::io::Error::other)?
        .install_recorder()
        .map_err(std::io::Error::other)?;
    describe();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || render(handle.clone())),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "metrics endpoint stopped");
        }
    });
    info!(%bound, "serving Prometheus metrics on /metrics");
    Ok(bound)
}

async fn render(handle: PrometheusHandle) -> String {
    handle.render()
}

fn describe() {
    metrics::describe_counter!(
        "spotenc_worker_tasks_total",
        "Tasks this worker ended, by outcome (completed, failed, interrupted, lost)"
    );
    metrics::describe_histogram!(
        "spotenc_worker_task_seconds",
        "Wall time of tasks this worker ran, staging included"
    );
    metrics::describe_gauge!("spotenc_worker_slots", "Concurrent task slots");
    metrics::describe_gauge!("spotenc_worker_slots_busy", "Slots running a task now");
    metrics::describe_counter!(
        "spotenc_worker_notices_total",
        "Interruption notices and rebalance recommendations seen"
    );
    metrics::describe_gauge!("spotenc_gpu_utilization_percent", "NVML GPU utilisation");
    metrics::describe_gauge!(
        "spotenc_gpu_encoder_utilization_percent",
        "NVML encoder (NVENC) utilisation"
    );
    metrics::describe_gauge!(
        "spotenc_gpu_decoder_utilization_percent",
        "NVML decoder (NVDEC) utilisation"
    );
    metrics::describe_gauge!("spotenc_gpu_encoder_sessions", "Active NVENC sessions");
    metrics::describe_gauge!(
        "spotenc_gpu_encoder_fps",
        "Average fps of the NVENC sessions"
    );
    metrics::describe_gauge!("spotenc_gpu_memory_used_bytes", "GPU memory in use");
    metrics::describe_gauge!("spotenc_gpu_temperature_celsius", "GPU temperature");
    metrics::describe_gauge!("spotenc_gpu_power_watts", "GPU power draw");
    metrics::describe_gauge!("spotenc_gpu_clock_mhz", "GPU clocks by domain");
}

/// Sets the GPU gauges from one reading; a value NVML could not read is
/// left out rather than reported as 0.
pub fn record_gpus(gpus: &[GpuTelemetry]) {
    for g in gpus {
        let gpu = g.index.to_string();
        let set = |name: &'static str, v: Option<f64>| {
            if let Some(v) = v {
                metrics::gauge!(name, "gpu" => gpu.clone()).set(v);
            }
        };
        let f = |v: Option<u32>| v.map(f64::from);
        set("spotenc_gpu_utilization_percent", f(g.gpu_util_pct));
        set(
            "spotenc_gpu_encoder_utilization_percent",
            f(g.encoder_util_pct),
        );
        set(
            "spotenc_gpu_decoder_utilization_percent",
            f(g.decoder_util_pct),
        );
        set("spotenc_gpu_encoder_sessions", f(g.encoder_sessions));
        set("spotenc_gpu_encoder_fps", f(g.encoder_fps));
        set(
            "spotenc_gpu_memory_used_bytes",
            g.memory_used_bytes.map(|b| b as f64),
        );
        set("spotenc_gpu_temperature_celsius", f(g.temperature_c));
        set(
            "spotenc_gpu_power_watts",
            g.power_mw.map(|mw| f64::from(mw) / 1000.0),
        );
        for (domain, v) in [
            ("graphics", g.graphics_clock_mhz),
            ("memory", g.memory_clock_mhz),
            ("video", g.video_clock_mhz),
        ] {
            if let Some(v) = v {
                metrics::gauge!("spotenc_gpu_clock_mhz", "gpu" => gpu.clone(), "domain" => domain)
                    .set(f64::from(v));
            }
        }
    }
}
