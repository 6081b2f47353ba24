//! gpu-worker: for now a CPU worker under another name. NVML discovery,
//! NVENC/QSV sessions and the GPU pipeline are not built yet, so it registers
//! its host as CPU capacity and encodes with libx264/libx265.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "spotenc GPU worker (no GPU support yet: runs as CPU capacity)"
)]
struct Args {
    #[command(flatten)]
    worker: spotenc_worker::cli::WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    tracing::warn!("GPU encoding is not implemented yet; registering as CPU capacity");
    let config = Args::parse().worker.load("cpu", "local-gpu")?;
    let notices = spotenc_worker::notice::Notices::watch(&config.notices);
    spotenc_worker::run(config, notices).await?;
    Ok(())
}
