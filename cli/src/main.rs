//! The `spotenc` command. Glue: parse arguments, set up logging, call into
//! the coordinator, the worker runtime or the client.
//!
//! Layout:
//! - `args`: job options and their mapping to a `JobSpec`.
//! - `client`: submit, status, watch, cancel against a coordinator.
//! - `transcode`: the all-in-one run (coordinator and workers in-process).

mod args;
mod client;
mod transcode;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "spotenc", version, about = "Cost-aware chunked video encoding")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Transcode one file with an in-process coordinator and workers
    Transcode {
        input: String,
        output: String,
        #[command(flatten)]
        job: args::JobArgs,
        /// Local workers (one task each)
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Where chunks are kept while the job runs (default: beside OUTPUT)
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Run a coordinator with the embedded file-backed store
    Coordinator {
        #[arg(long, env = "SPOTENC_LISTEN", default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Intermediate chunks, and the state file of the embedded store
        #[arg(long, env = "SPOTENC_DATA_DIR", default_value = "./spotenc-data")]
        data_dir: PathBuf,
        /// Keep state in Redis (redis://host:port/db) instead of the data
        /// directory, so several coordinator replicas can share it
        #[arg(long, env = "SPOTENC_REDIS")]
        redis: Option<String>,
        /// Key prefix in Redis
        #[arg(long, env = "SPOTENC_REDIS_PREFIX", default_value = "spotenc")]
        redis_prefix: String,
        /// Lease time-to-live; a worker silent this long loses its task
        #[arg(long, default_value_t = 15_000)]
        lease_ttl_ms: u32,
        /// How often workers heartbeat (at most half the TTL)
        #[arg(long, default_value_t = 2_000)]
        heartbeat_interval_ms: u32,
        /// Lease expiries a task survives before its job fails
        #[arg(long, default_value_t = 5)]
        max_expiries: u32,
    },
    /// Submit a job to a running coordinator and print its id
    Submit {
        input: String,
        output: String,
        #[command(flatten)]
        job: args::JobArgs,
        #[arg(
            long,
            env = "SPOTENC_COORDINATOR",
            default_value = "http://127.0.0.1:50051"
        )]
        coordinator: String,
        /// Submitting again with the same key returns the first job
        #[arg(long, default_value = "")]
        idempotency_key: String,
        /// Wait for the job and exit non-zero unless it succeeds
        #[arg(long)]
        wait: bool,
    },
    /// Show one job, or the latest jobs
    Status {
        job: Option<String>,
        #[arg(
            long,
            env = "SPOTENC_COORDINATOR",
            default_value = "http://127.0.0.1:50051"
        )]
        coordinator: String,
    },
    /// Follow a job until it ends; exit non-zero unless it succeeds
    Watch {
        job: String,
        #[arg(
            long,
            env = "SPOTENC_COORDINATOR",
            default_value = "http://127.0.0.1:50051"
        )]
        coordinator: String,
    },
    /// Cancel a job
    Cancel {
        job: String,
        #[arg(
            long,
            env = "SPOTENC_COORDINATOR",
            default_value = "http://127.0.0.1:50051"
        )]
        coordinator: String,
    },
}

fn init_tracing(default: &str) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("spotenc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn succeeded(job: &spotenc_proto::pb::Job) -> bool {
    client::state_name(job) == "succeeded"
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Transcode {
            input,
            output,
            job,
            workers,
            work_dir,
        } => {
            init_tracing("error");
            let spec = job.to_spec(args::absolute(&input), args::absolute(&output))?;
            transcode::run(spec, transcode::Local { workers, work_dir }).await
        }
        Command::Coordinator {
            listen,
            data_dir,
            redis,
            redis_prefix,
            lease_ttl_ms,
            heartbeat_interval_ms,
            max_expiries,
        } => {
            init_tracing("info");
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let config = spotenc_coordinator::Config {
                state: match redis {
                    Some(url) => spotenc_coordinator::StateBackend::Redis {
                        url,
                        prefix: redis_prefix,
                    },
                    None => spotenc_coordinator::StateBackend::Embedded,
                },
                data_dir,
                lease_ttl_ms,
                heartbeat_interval_ms,
                max_expiries,
                reap_interval_ms: 500,
            };
            spotenc_coordinator::run(listener, config, shutdown_signal()).await?;
            Ok(true)
        }
        Command::Submit {
            input,
            output,
            job,
            coordinator,
            idempotency_key,
            wait,
        } => {
            init_tracing("warn");
            let spec = job.to_spec(args::absolute(&input), args::absolute(&output))?;
            let mut c = client::connect(&coordinator).await?;
            let submitted = client::submit(&mut c, spec, idempotency_key).await?;
            println!("{}", submitted.id);
            if !wait {
                return Ok(true);
            }
            let done = client::watch(&mut c, &submitted.id).await?;
            if !succeeded(&done) {
                eprintln!("spotenc: {}", client::summary(&done));
            }
            Ok(succeeded(&done))
        }
        Command::Status { job, coordinator } => {
            init_tracing("warn");
            let mut c = client::connect(&coordinator).await?;
            match job {
                Some(id) => println!("{}", client::summary(&client::get(&mut c, &id).await?)),
                None => {
                    for j in client::list(&mut c).await? {
                        println!("{}", client::summary(&j));
                    }
                }
            }
            Ok(true)
        }
        Command::Watch { job, coordinator } => {
            init_tracing("warn");
            let mut c = client::connect(&coordinator).await?;
            let done = client::watch(&mut c, &job).await?;
            println!("{}", client::summary(&done));
            Ok(succeeded(&done))
        }
        Command::Cancel { job, coordinator } => {
            init_tracing("warn");
            let mut c = client::connect(&coordinator).await?;
            println!("{}", client::summary(&client::cancel(&mut c, &job).await?));
            Ok(true)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
