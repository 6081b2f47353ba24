//! cpu-worker: encodes with libx264/libx265 through the FFmpeg libraries.
//! Glue only: parse flags, set up logging, load the config, run the shared
//! runtime until an interruption notice (cloud, SIGTERM or Ctrl-C).

#![forbid(unsafe_code)]

use clap::Parser;

#[derive(Parser, Debug)]
#[command(version, about = "spotenc CPU worker (x264/x265)")]
struct Args {
    #[command(flatten)]
    worker: spotenc_worker::cli::WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    spotenc_worker::cli::init_logging();
    let args = Args::parse();
    if args.worker.health {
        return spotenc_worker::cli::health(args.worker).await;
    }
    let config = args.worker.load("cpu", "local-cpu")?;
    let notices = spotenc_worker::notice::Notices::watch(&config.notices);
    spotenc_worker::run(config, notices).await?;
    Ok(())
}
