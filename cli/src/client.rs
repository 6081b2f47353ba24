//! Talking to a running coordinator: submit, status, watch, cancel, and the
//! progress display they share with `transcode`.

use std::io::IsTerminal;

use anyhow::Context;
use spotenc_proto::client::{Connection, JobClient};
use spotenc_proto::pb;

/// How a client reaches the coordinator.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnArgs {
    #[arg(
        long,
        env = "SPOTENC_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    pub coordinator: String,
    /// Bearer token with the client (or admin) role
    #[arg(long, env = "SPOTENC_TOKEN", hide_env_values = true)]
    pub token: Option<spotenc_proto::secret::Secret>,
    /// CA certificate (PEM) when the coordinator serves TLS
    #[arg(long, env = "SPOTENC_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,
}

pub async fn connect(c: &ConnArgs) -> anyhow::Result<JobClient> {
    Connection {
        url: c.coordinator.clone(),
        token: c.token.clone(),
        tls_ca: c.tls_ca.clone(),
    }
    .jobs()
    .await
    .with_context(|| format!("cannot reach coordinator {}", c.coordinator))
}

/// `spotenc health`: grpc.health.v1 Check, as `grpc_health_probe` would.
pub async fn health(c: &ConnArgs, service: &str) -> anyhow::Result<bool> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = Connection {
        url: c.coordinator.clone(),
        token: None,
        tls_ca: c.tls_ca.clone(),
    }
    .channel()
    .await
    .with_context(|| format!("cannot reach coordinator {}", c.coordinator))?;
    let request = tonic_health::pb::HealthCheckRequest {
        service: service.to_string(),
    };
    let status = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(request)
        .await
        .map_err(status_error)?
        .into_inner()
        .status();
    let name = if service.is_empty() {
        "server"
    } else {
        service
    };
    println!("{name}: {}", status.as_str_name());
    Ok(status == ServingStatus::Serving)
}

pub fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", spotenc_proto::Error::from_status(&s))
}

pub async fn submit(
    client: &mut JobClient,
    spec: spotenc_proto::domain::JobSpec,
    idempotency_key: String,
) -> anyhow::Result<pb::Job> {
    let resp = client
        .submit_job(pb::SubmitJobRequest {
            spec: Some(spec.into()),
            idempotency_key,
        })
        .await
        .map_err(status_error)?;
    resp.into_inner().job.context("coordinator returned no job")
}

pub async fn get(client: &mut JobClient, id: &str) -> anyhow::Result<pb::Job> {
    Ok(client
        .get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .map_err(status_error)?
        .into_inner())
}

pub async fn list(client: &mut JobClient) -> anyhow::Result<Vec<pb::Job>> {
    Ok(client
        .list_jobs(pb::ListJobsRequest {
            states: vec![],
            limit: 50,
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .jobs)
}

pub async fn cancel(client: &mut JobClient, id: &str) -> anyhow::Result<pb::Job> {
    Ok(client
        .cancel_job(pb::CancelJobRequest { job_id: id.into() })
        .await
        .map_err(status_error)?
        .into_inner())
}

pub async fn logs(
    client: &mut JobClient,
    job: &str,
    task: &str,
) -> anyhow::Result<Vec<pb::TaskLog>> {
    Ok(client
        .get_task_logs(pb::GetTaskLogsRequest {
            job_id: job.into(),
            task_id: task.into(),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .logs)
}

pub async fn workers(client: &mut JobClient) -> anyhow::Result<Vec<pb::WorkerStatus>> {
    Ok(client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .workers)
}

/// One line per worker for `workers`, or its JSON.
pub fn worker_line(w: &pb::WorkerStatus, json: bool) -> anyhow::Result<String> {
    let info = w.info.clone().unwrap_or_default();
    if json {
        let gpus: Vec<serde_json::Value> = w
            .gpus
            .iter()
            .map(|g| {
                serde_json::json!({
                    "index": g.index,
                    "gpu_util_pct": g.gpu_util_pct,
                    "encoder_util_pct": g.encoder_util_pct,
                    "decoder_util_pct": g.decoder_util_pct,
                    "encoder_sessions": g.encoder_sessions,
                    "encoder_fps": g.encoder_fps,
                    "memory_used_bytes": g.memory_used_bytes,
                    "temperature_c": g.temperature_c,
                    "power_mw": g.power_mw,
                })
            })
            .collect();
        let devices: Vec<serde_json::Value> = info
            .gpus
            .iter()
            .map(|d| {
                serde_json::json!({
                    "index": d.index,
                    "name": d.name,
                    "pci_bus_id": d.pci_bus_id,
                    "memory_total_bytes": d.memory_total_bytes,
                    "driver_version": d.driver_version,
                    "nvenc_codecs": d.nvenc.len(),
                    "nvenc_unavailable": d.nvenc_unavailable,
                })
            })
            .collect();
        return Ok(serde_json::json!({
            "worker_id": w.worker_id,
            "pool": info.pool,
            "instance_type": info.instance_type,
            "zone": info.zone,
            "hardware": info.hardware,
            "encoder": info.encoder,
            "slots": info.slots,
            "cores": info.cores,
            "gpus": devices,
            "registered_unix_ms": w.registered_unix_ms,
            "last_seen_unix_ms": w.last_seen_unix_ms,
            "telemetry": gpus,
        })
        .to_string());
    }
    let mut line = format!(
        "{}  {} {}  slots {}  pool {}",
        w.worker_id, info.hardware, info.encoder, info.slots, info.pool
    );
    for g in &w.gpus {
        line.push_str(&format!(
            "  gpu{}: enc {}% dec {}% sessions {}",
            g.index,
            g.encoder_util_pct.map_or("-".into(), |v| v.to_string()),
            g.decoder_util_pct.map_or("-".into(), |v| v.to_string()),
            g.encoder_sessions.map_or("-".into(), |v| v.to_string()),
        ));
    }
    Ok(line)
}

pub fn state_name(job: &pb::Job) -> &'static str {
    match pb::JobState::try_from(job.state).unwrap_or(pb::JobState::Unspecified) {
        pb::JobState::Queued => "queued",
        pb::JobState::Running => "running",
        pb::JobState::Committing => "committing",
        pb::JobState::Succeeded => "succeeded",
        pb::JobState::Failed => "failed",
        pb::JobState::Cancelled => "cancelled",
        pb::JobState::Unspecified => "unknown",
    }
}

pub fn is_terminal(job: &pb::Job) -> bool {
    matches!(state_name(job), "succeeded" | "failed" | "cancelled")
}

/// One line per job for `status`.
pub fn summary(job: &pb::Job) -> String {
    let spec = job.spec.clone().unwrap_or_default();
    let mut line = format!(
        "{}  {:<10} chunks {}/{}  frames {}/{}  {} -> {}",
        job.id,
        state_name(job),
        job.chunks_done,
        job.chunks_total,
        job.frames_done,
        job.frames_total,
        spec.input,
        spec.output
    );
    if !job.interruptions.is_empty() {
        let by_pool: Vec<String> = job
            .interruptions
            .iter()
            .map(|p| format!("{} {}", p.pool, p.count))
            .collect();
        line.push_str(&format!("  interrupted: {}", by_pool.join(", ")));
    }
    if let Some(c) = &job.cost {
        let total = c.spot_dollars + c.on_demand_dollars;
        if total > 0.0 {
            line.push_str(&format!(
                "  cost ${total:.6} (spot ${:.6}, on-demand ${:.6}, wasted ${:.6}), ${:.6}/output-min",
                c.spot_dollars, c.on_demand_dollars, c.wasted_dollars, c.dollars_per_output_minute
            ));
        }
        if let Some(gb) = crate::report::gb_per_output_hour(c) {
            line.push_str(&format!("  {gb:.3} GB/output-hour"));
        }
    }
    if !job.error.is_empty() {
        line.push_str(&format!("  error: {}", job.error));
    }
    if !job.identities.is_empty() {
        line.push_str(&format!("\n  encoded by: {}", job.identities.join(", ")));
    }
    for r in &job.restarts {
        line.push_str(&format!("\n  restarted: {r}"));
    }
    for l in &job.left_out {
        line.push_str(&format!("\n  left out: {l}"));
    }
    for q in crate::report::quality_lines(job) {
        line.push_str(&format!("\n  {q}"));
    }
    line
}

/// Follows a job until it ends, with a progress bar on a terminal and a line
/// per change otherwise. Returns the final record.
pub async fn watch(client: &mut JobClient, id: &str) -> anyhow::Result<pb::Job> {
    let mut stream = client
        .watch_job(pb::WatchJobRequest { job_id: id.into() })
        .await
        .map_err(status_error)?
        .into_inner();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames  {msg}  eta {eta}",
            )
            .expect("template"),
        );
        bar
    });
    let mut last: Option<pb::Job> = None;
    let mut last_line = String::new();
    while let Some(job) = stream.message().await.map_err(status_error)? {
        let msg = format!(
            "{} chunks {}/{}",
            state_name(&job),
            job.chunks_done,
            job.chunks_total
        );
        match &bar {
            Some(bar) => {
                bar.set_length(job.frames_total);
                bar.set_position(job.frames_done);
                bar.set_message(msg);
            }
            None => {
                let line = format!("{msg} frames {}/{}", job.frames_done, job.frames_total);
                if line != last_line {
                    eprintln!("{id}: {line}");
                    last_line = line;
                }
            }
        }
        let done = is_terminal(&job);
        last = Some(job);
        if done {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match last {
        Some(job) if is_terminal(&job) => Ok(job),
        _ => get(client, id).await,
    }
}
