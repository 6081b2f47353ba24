//! gpu-worker: glue only. `gpu-worker probe` prints what the host has as
//! JSON; otherwise probe, plan the slots, and run the shared runtime until
//! an interruption notice.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use gpu_worker::probe::{self, EncoderChoice, Settings};

#[derive(Parser, Debug)]
#[command(version, about = "spotenc GPU worker (NVENC, QSV, CPU fallback)")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    worker: spotenc_worker::cli::WorkerArgs,
    /// auto (NVENC, else QSV, else software), nvenc, qsv or software
    #[arg(long, env = "SPOTENC_GPU_ENCODER", default_value = "auto")]
    encoder: String,
    /// Concurrent NVENC sessions per GPU
    #[arg(long, env = "SPOTENC_SESSIONS_PER_GPU", default_value_t = 3)]
    sessions_per_gpu: u32,
    /// Concurrent QSV sessions
    #[arg(long, env = "SPOTENC_QSV_SESSIONS", default_value_t = 2)]
    qsv_sessions: u32,
    /// Hold back sessions beyond a GPU's first while NVML reports its
    /// encoder at or above this utilisation (percent)
    #[arg(long, env = "SPOTENC_MAX_ENCODER_UTIL", default_value_t = 90)]
    max_encoder_util: u32,
    /// On GPUs without NVENC (H100, H200), decode and scale on the GPU
    /// (NVDEC, scale_cuda) for the CPU encoders. NVENC slots always do.
    #[arg(long, env = "SPOTENC_GPU_DECODE")]
    gpu_decode: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the GPUs, their telemetry, NVENC/QSV availability (and why
    /// not) and the slots this worker would register, as JSON
    Probe,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    spotenc_worker::cli::init_logging();
    let args = Args::parse();
    if args.worker.health {
        // Before the GPU probe: a health check must not open NVML or NVENC.
        return spotenc_worker::cli::health(args.worker).await;
    }
    let settings = Settings {
        encoder: args
            .encoder
            .parse::<EncoderChoice>()
            .map_err(anyhow::Error::msg)?,
        sessions_per_gpu: args.sessions_per_gpu,
        qsv_sessions: args.qsv_sessions,
        max_encoder_util_pct: args.max_encoder_util,
        cpu_slots: args.worker.slots(),
        gpu_decode: args.gpu_decode,
    };
    let (report, gpus) = tokio::task::spawn_blocking(move || probe::probe(&settings)).await?;
    if matches!(args.command, Some(Command::Probe)) {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut config = args.worker.load(&report.plan.hardware, "local-gpu")?;
    config.hardware = report.plan.hardware.clone();
    config.encoder = report.plan.encoder.clone();
    config.slots = report.plan.slots;
    config.gpus = report.gpus.clone();
    tracing::info!(
        hardware = %report.plan.hardware,
        encoder = %report.plan.encoder,
        slots = report.plan.slots,
        why = %report.plan.why,
        "slots planned"
    );
    let hooks = gpu_worker::hooks(
        &report.plan,
        gpus,
        args.max_encoder_util,
        args.sessions_per_gpu,
    );
    let notices = spotenc_worker::notice::Notices::watch(&config.notices);
    spotenc_worker::run_with(config, notices, hooks).await?;
    Ok(())
}
