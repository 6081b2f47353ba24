//! The `spotenc` command. Glue: parse arguments, set up logging, call into
//! the coordinator, the worker runtime or the client.
//!
//! Layout:
//! - `args`: job options and their mapping to a `JobSpec`.
//! - `client`: submit, status, watch, cancel, logs and workers against a
//!   coordinator.
//! - `deploy`: `deploy render`, Kubernetes manifests from a pool catalogue.
//! - `fleet`: the pool catalogue and the cost model (`pools`, `costs`).
//! - `operator` (feature `operator`): the WorkerPool controller
//!   (`operator run`) and its CRD.
//! - `simulate` (feature `sim`): the fleet simulator's runs, tables and SVG
//!   plots.
//! - `transcode` and `probe` (feature `transcode`): the all-in-one run
//!   (coordinator and workers in-process) and `spotenc probe`; the only
//!   parts that link the worker runtime and so FFmpeg.
//!
//! The coordinator image builds with `--no-default-features`: no FFmpeg,
//! kube, plotters or custom allocator (`tests/tests/layers.rs` checks it).

#![forbid(unsafe_code)]

/// mimalloc rather than glibc's malloc where the simulator is built in: it
/// allocates many small strings and records (bench/RESULTS.md has the
/// measurements). FFmpeg keeps its own allocator.
#[cfg(feature = "sim")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod client;
mod deploy;
mod fleet;
#[cfg(feature = "operator")]
mod operator;
#[cfg(feature = "transcode")]
mod probe;
mod report;
#[cfg(feature = "sim")]
mod simulate;
#[cfg(feature = "transcode")]
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
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run; boxing the flattened job flags buys nothing"
)]
enum Command {
    /// Transcode one file with an in-process coordinator and workers
    #[cfg(feature = "transcode")]
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
    /// List every stream of a file (what a job keeps), its chapters and
    /// its colour description
    #[cfg(feature = "transcode")]
    Probe {
        file: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Run a coordinator (embedded store, or Redis for replicas)
    Coordinator(ServeArgs),
    /// Submit a job to a running coordinator and print its id
    Submit {
        #[arg(required_unless_present = "input_flag")]
        input: Option<String>,
        #[arg(required_unless_present = "output_flag")]
        output: Option<String>,
        /// The input, as a flag instead of the first argument
        #[arg(long = "input", id = "input_flag", conflicts_with = "input")]
        input_flag: Option<String>,
        /// The output, as a flag instead of the second argument
        #[arg(long = "output", id = "output_flag", conflicts_with = "output")]
        output_flag: Option<String>,
        #[command(flatten)]
        job: args::JobArgs,
        #[command(flatten)]
        conn: client::ConnArgs,
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
        /// Print JSON (one document per job) instead of the table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Follow a job until it ends; exit non-zero unless it succeeds
    Watch {
        job: String,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// List the workers the coordinator has heard from, with their hardware
    /// and last GPU telemetry
    Workers {
        /// Print JSON instead of one line per worker
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Ask the coordinator's gRPC health service whether it serves (exit 0)
    /// or not (exit 1): the container health check and a probe for scripts
    Health {
        /// The service to ask about ("" is the server as a whole)
        #[arg(long, default_value = "")]
        service: String,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Show the pool catalogue as the coordinator sees it: live workers,
    /// prices, and interruptions measured against those assumed
    Pools {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Show the codec cost model: prior and learned throughput per key,
    /// samples, and dollars per output minute per pool at 1080p30
    Costs {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Deployment: render Kubernetes manifests from the pool catalogue
    Deploy {
        #[command(subcommand)]
        command: deploy::DeployCommand,
    },
    /// The WorkerPool operator: `operator crd` prints the CRD, `operator run`
    /// reconciles pools against the cluster
    #[cfg(feature = "operator")]
    Operator {
        #[command(subcommand)]
        command: operator::OperatorCommand,
    },
    /// Simulate a month of a workload on a fleet in virtual time: the real
    /// placement, capacity planner and state machine, with spot
    /// interruptions, autoscaling and per-second billing.
    ///
    /// Each report gives the run's cost lower bound and its efficiency
    /// (bound / what the run paid). The bound is every task of the run's
    /// jobs on its cheapest capable pool (cost work on any pool, latency
    /// work on on-demand ones), paying only its seconds there: the cost
    /// model's prediction without noise plus the workload's per-task
    /// overhead (5 s for probe, audio and stitch), at the pool's slot
    /// price for the slots it holds; no boot, minimum, idle, interruption
    /// or re-run. All chunks of a job go to one pool (encoder affinity),
    /// and no pool gets more than max_workers × slots × the run's length;
    /// shapes whose second-best pool costs most more per slot-second are
    /// placed first.
    #[cfg(feature = "sim")]
    Simulate {
        /// Pools TOML ([[pools]] entries; a built-in pool's name inherits
        /// its fields)
        #[arg(long)]
        pools: PathBuf,
        /// Workload TOML (volume, codec mix, job lengths, arrivals)
        #[arg(long)]
        workload: PathBuf,
        /// Chunk lengths to compare, comma-separated (default: the
        /// workload's)
        #[arg(long, value_delimiter = ',')]
        chunk_seconds: Vec<f64>,
        /// cost or fifo (default: the workload's)
        #[arg(long)]
        placement: Option<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON instead of tables
        #[arg(long)]
        json: bool,
        /// Write SVG charts into this directory
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Show the capacity planner: live, busy and desired workers per pool
    /// (what KEDA scales to), why, price and health
    Capacity {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Print the audit logs of a job's interrupted and failed attempts
    Logs {
        job: String,
        /// Only this task (e.g. <job>/encode-00003)
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
    /// Cancel a job
    Cancel {
        job: String,
        #[command(flatten)]
        conn: client::ConnArgs,
    },
}

/// `spotenc coordinator`'s flags: each overrides the config file and the
/// environment.
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML config file; flags and SPOTENC_* variables override it
    #[arg(long, env = "SPOTENC_CONFIG")]
    config: Option<PathBuf>,
    /// Address to serve gRPC on (default 127.0.0.1:50051)
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Intermediate chunks, and the embedded store's state file
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep state in Redis (redis://host:port/db) so replicas can share it
    #[arg(long)]
    redis: Option<String>,
    /// A worker silent this long loses its task (default 15000)
    #[arg(long)]
    lease_ttl_ms: Option<u32>,
    /// How often workers heartbeat, at most half the TTL (default 2000)
    #[arg(long)]
    heartbeat_interval_ms: Option<u32>,
    /// Serve Prometheus /metrics on this address (e.g. 0.0.0.0:9464)
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// A TOML file of [[pools]] that override or extend the built-in
    /// catalogue (also SPOTENC_POOLS)
    #[arg(long)]
    pools: Option<PathBuf>,
    /// Serve a non-loopback address without tokens (refused otherwise)
    #[arg(long)]
    insecure_no_auth: bool,
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

/// One arm per command (about 120 lines); each arm is a call.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        #[cfg(feature = "transcode")]
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
        #[cfg(feature = "transcode")]
        Command::Probe { file, json } => probe::run(&file, json),
        Command::Coordinator(args) => {
            init_tracing("info");
            serve(args).await
        }
        Command::Submit {
            input,
            output,
            input_flag,
            output_flag,
            job,
            conn,
            idempotency_key,
            wait,
        } => {
            init_tracing("warn");
            let input = input.or(input_flag).unwrap_or_default();
            let output = output.or(output_flag).unwrap_or_default();
            let spec = job.to_spec(args::absolute(&input), args::absolute(&output))?;
            submit(spec, &conn, idempotency_key, wait).await
        }
        Command::Status { job, json, conn } => {
            init_tracing("warn");
            let mut c = client::connect(&conn).await?;
            let jobs = match job {
                Some(id) => vec![client::get(&mut c, &id).await?],
                None => client::list(&mut c).await?,
            };
            for j in &jobs {
                if json {
                    println!("{}", report::job_json(j));
                } else {
                    println!("{}", client::summary(j));
                }
            }
            Ok(true)
        }
        Command::Watch { job, conn } => {
            init_tracing("warn");
            let mut c = client::connect(&conn).await?;
            let done = client::watch(&mut c, &job).await?;
            println!("{}", client::summary(&done));
            Ok(succeeded(&done))
        }
        Command::Workers { json, conn } => {
            init_tracing("warn");
            let mut c = client::connect(&conn).await?;
            for w in client::workers(&mut c).await? {
                println!("{}", client::worker_line(&w, json)?);
            }
            Ok(true)
        }
        Command::Health { service, conn } => {
            init_tracing("warn");
            client::health(&conn, &service).await
        }
        Command::Pools { json, conn } => {
            init_tracing("warn");
            fleet::show(fleet::View::Pools, json, &conn).await
        }
        Command::Costs { json, conn } => {
            init_tracing("warn");
            fleet::show(fleet::View::Costs, json, &conn).await
        }
        Command::Capacity { json, conn } => {
            init_tracing("warn");
            fleet::show(fleet::View::Capacity, json, &conn).await
        }
        Command::Deploy { command } => {
            init_tracing("warn");
            deploy::run(command)
        }
        #[cfg(feature = "operator")]
        Command::Operator { command } => {
            init_tracing("info");
            operator::run(command).await
        }
        #[cfg(feature = "sim")]
        Command::Simulate {
            pools,
            workload,
            chunk_seconds,
            placement,
            seed,
            json,
            plot,
        } => {
            init_tracing("warn");
            simulate::run(&simulate::Args {
                pools,
                workload,
                chunk_seconds,
                placement,
                seed,
                json,
                plot,
            })?;
            Ok(true)
        }
        Command::Logs { job, task, conn } => {
            init_tracing("warn");
            print_logs(&conn, &job, task.as_deref().unwrap_or("")).await
        }
        Command::Cancel { job, conn } => {
            init_tracing("warn");
            let mut c = client::connect(&conn).await?;
            println!("{}", client::summary(&client::cancel(&mut c, &job).await?));
            Ok(true)
        }
    }
}

/// `spotenc coordinator`: the config file, then the environment, then the
/// flags; serves until SIGTERM or Ctrl-C.
async fn serve(a: ServeArgs) -> anyhow::Result<bool> {
    let text = match &a.config {
        Some(p) => {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("read {}: {e}", p.display()))?
        }
        None => String::new(),
    };
    let mut env: std::collections::HashMap<String, String> = std::env::vars().collect();
    if let Some(p) = &a.pools {
        env.insert("SPOTENC_POOLS".into(), p.display().to_string());
    }
    // Through the loader, so the configured prefix still applies.
    if let Some(url) = a.redis {
        env.insert("SPOTENC_REDIS".into(), url);
    }
    let mut c = spotenc_coordinator::config::load(&text, &env)?;
    if let Some(l) = a.listen {
        c.listen = l;
    }
    if let Some(d) = a.data_dir {
        c.files.data_dir = d.clone();
        c.data_dir = d;
    }
    c.metrics_listen = a.metrics_listen.or(c.metrics_listen);
    c.insecure_no_auth |= a.insecure_no_auth;
    c.lease_ttl_ms = a.lease_ttl_ms.unwrap_or(c.lease_ttl_ms);
    c.heartbeat_interval_ms = a.heartbeat_interval_ms.unwrap_or(c.heartbeat_interval_ms);
    c.validate()?;
    let listener = tokio::net::TcpListener::bind(c.listen).await?;
    spotenc_coordinator::run(listener, c, shutdown_signal()).await?;
    Ok(true)
}

/// `spotenc submit`: prints the job's id; with `wait`, follows it and
/// succeeds only if it does.
async fn submit(
    spec: spotenc_proto::domain::JobSpec,
    conn: &client::ConnArgs,
    idempotency_key: String,
    wait: bool,
) -> anyhow::Result<bool> {
    let mut c = client::connect(conn).await?;
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

/// `spotenc logs`: each attempt's audit log under a header line.
async fn print_logs(conn: &client::ConnArgs, job: &str, task: &str) -> anyhow::Result<bool> {
    let mut c = client::connect(conn).await?;
    let logs = client::logs(&mut c, job, task).await?;
    if logs.is_empty() {
        eprintln!("spotenc: no attempt of {job} has a log");
    }
    for l in logs {
        let error = if l.error.is_empty() {
            String::new()
        } else {
            format!(": {}", l.error)
        };
        println!(
            "== {} attempt {} on {} (pool {}): {}{error}",
            l.task_id, l.attempt, l.worker_id, l.pool, l.outcome
        );
        print!("{}", l.log);
        if !l.log.ends_with('\n') {
            println!();
        }
    }
    Ok(true)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
