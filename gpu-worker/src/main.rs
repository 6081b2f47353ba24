//! gpu-worker: for now a CPU worker under another name. NVML discovery,
//! NVENC/QSV sessions and the GPU pipeline are not built yet, so it registers
//! its host as CPU capacity and encodes with libx264/libx265.

use std::time::Duration;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "spotenc GPU worker (no GPU support yet: runs as CPU capacity)"
)]
struct Args {
    /// Coordinator address, e.g. http://127.0.0.1:50051
    #[arg(long, env = "SPOTENC_COORDINATOR")]
    coordinator: String,
    /// Pool this worker belongs to
    #[arg(long, env = "SPOTENC_POOL", default_value = "local-gpu")]
    pool: String,
    /// Concurrent tasks (default: sized from cores and memory)
    #[arg(long, env = "SPOTENC_SLOTS")]
    slots: Option<u32>,
    /// spot: cost work only; on-demand: latency and escalated work first,
    /// then cost work
    #[arg(long, env = "SPOTENC_CAPACITY", default_value = "on-demand")]
    capacity: String,
    /// Instance type, recorded with the worker (e.g. c6i.4xlarge)
    #[arg(long, env = "SPOTENC_INSTANCE_TYPE", default_value = "")]
    instance_type: String,
    /// Availability zone, recorded with the worker
    #[arg(long, env = "SPOTENC_ZONE", default_value = "")]
    zone: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    tracing::warn!("GPU encoding is not implemented yet; registering as CPU capacity");
    let (cores, memory) = spotenc_worker::host_resources();
    let config = spotenc_worker::WorkerConfig {
        coordinator: args.coordinator,
        name: "gpu-worker".into(),
        pool: args.pool,
        hardware: "cpu".into(),
        slots: args
            .slots
            .unwrap_or_else(|| spotenc_worker::slots_for(cores, memory)),
        cores,
        memory_bytes: memory,
        capacity: args.capacity.parse()?,
        instance_type: args.instance_type,
        zone: args.zone,
        connect_timeout: Duration::from_secs(30),
    };
    spotenc_worker::run(config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
