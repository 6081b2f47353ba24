//! The coordinator's Prometheus endpoint: `GET /metrics` on
//! `metrics_listen`. Queue depth by partition is what KEDA scales worker
//! pools on; interruptions by pool say which spot pools are being reclaimed.

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing::{info, warn};

/// Buckets of `spotenc_chunk_psnr_db`: a failing encoder under 20 dB,
/// delivery quality between 30 and 50.
const PSNR_DB: &[f64] = &[
    10.0, 20.0, 25.0, 30.0, 33.0, 36.0, 38.0, 40.0, 42.0, 45.0, 50.0, 60.0,
];

/// Installs the recorder (once per process) and serves it on `addr`.
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("spotenc_chunk_psnr_db".into()), PSNR_DB)
        .map_err(std::io::Error::other)?
        .install_recorder()
        .map_err(std::io::Error::other)?;
    describe();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(error = %e, "metrics endpoint stopped");
        }
    });
    info!(%bound, "serving Prometheus metrics on /metrics");
    Ok(bound)
}

fn describe() {
    metrics::describe_counter!("spotenc_jobs_submitted_total", "Jobs accepted");
    metrics::describe_counter!(
        "spotenc_jobs_ended_total",
        "Jobs that ended, by state (succeeded, failed, cancelled)"
    );
    metrics::describe_gauge!(
        "spotenc_tasks_pending",
        "Tasks waiting for a worker, by partition (spot, on-demand)"
    );
    metrics::describe_counter!(
        "spotenc_task_interruptions_total",
        "Tasks handed back after an interruption notice, by the worker's pool"
    );
    metrics::describe_counter!("spotenc_task_failures_total", "Failed task attempts");
    metrics::describe_counter!("spotenc_lease_expiries_total", "Leases that expired");
    metrics::describe_counter!(
        "spotenc_tasks_escalated_total",
        "Spot tasks moved to on-demand for waiting too long"
    );
    metrics::describe_gauge!(
        "spotenc_workers",
        "Workers heard from in the last minute, by hardware (cpu, gpu, qsv)"
    );
    metrics::describe_gauge!(
        "spotenc_cost_dollars_total",
        "Estimated dollars of ended jobs' attempts, by catalogue pool and outcome (only rises)"
    );
    metrics::describe_counter!(
        "spotenc_output_seconds_total",
        "Output seconds of succeeded jobs, by codec (every rendition)"
    );
    metrics::describe_gauge!(
        "spotenc_pool_desired_workers",
        "Workers the capacity planner wants per catalogue pool (KEDA's target), with its capacity"
    );
    metrics::describe_gauge!(
        "spotenc_pool_backlog_seconds",
        "Predicted slot-seconds of pending work the planner put on each pool"
    );
    metrics::describe_gauge!(
        "spotenc_pool_health",
        "1 for the pool's health state (healthy, reclaimed, unavailable), 0 for the others"
    );
    metrics::describe_gauge!(
        "spotenc_pool_interruption_rate",
        "Interruptions per worker-hour, observed and blended with the catalogue's rate"
    );
    metrics::describe_gauge!(
        "spotenc_queue_oldest_seconds",
        "How long the longest-waiting pending task has waited, by priority (latency, cost)"
    );
    metrics::describe_gauge!(
        "spotenc_queue_target_seconds",
        "The planner's drain target by priority: the queue should never be older"
    );
    metrics::describe_gauge!(
        "spotenc_watch_streams",
        "Open WatchJob streams on this coordinator"
    );
    metrics::describe_gauge!(
        "spotenc_pool_workers",
        "Live workers (asked for work or heartbeated in the last 30 s), by catalogue pool"
    );
    metrics::describe_histogram!(
        "spotenc_chunk_psnr_db",
        "Mean PSNR (dB) of each measured chunk output, by codec and encoder identity"
    );
    metrics::describe_counter!(
        "spotenc_outlier_reencodes_total",
        "Chunks the outlier guard sent back to be encoded again"
    );
    metrics::describe_counter!(
        "spotenc_seams_flagged_total",
        "Seams flagged in jobs that succeeded (a PSNR step at a chunk boundary)"
    );
}
