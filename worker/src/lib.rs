//! spotenc-worker: the runtime cpu-worker and gpu-worker share.
//!
//! Layout:
//! - [`run`]: connect, register, then run one lease loop per slot until an
//!   interruption notice; then stop leasing, hand back in-flight tasks that
//!   would not finish well inside the deadline, and return before it. A
//!   rebalance recommendation only stops leasing.
//! - [`run_with`]: the same with [`Hooks`]: the encoder of each slot, a GPU
//!   telemetry source (sampled every 2 s into heartbeats and metrics) and a
//!   lease gate (gpu-worker adapts NVENC sessions to encoder utilisation).
//! - `prom`: the Prometheus `/metrics` endpoint (`metrics_listen`).
//! - [`notice`]: the notice watchers (AWS IMDSv2, GCP, Azure Scheduled
//!   Events, SIGTERM/SIGINT) and [`notice::Notices`], their one channel.
//! - [`identity`]: the instance type and zone from the cloud's metadata
//!   service, when not configured.
//! - [`WorkerConfig`]: coordinator URL, identity, pool and slots;
//!   [`config`] loads it from flags over a TOML file; [`cli`] has the
//!   flags and the shutdown signal the worker binaries share.
//! - [`slots_for`]: slot sizing from cores and memory.
//! - `exec`: runs one task in three phases (stage, media work on a blocking
//!   thread, upload), each under heartbeats that carry progress and can
//!   call the work off, the notice rules and the stall watchdog.
//! - `hardware`: which encoder a slot runs a chunk with (exactly the
//!   encoder identities its lease names, else the chunk goes back), and
//!   hardware families withdrawn after a failure until a retry.
//! - `remote`: stages tasks whose objects are presigned URLs: download the
//!   inputs, upload the output with one PUT or in parts, counting bytes.
//! - [`fuzzing`]: the worker config's fuzz entry point.
//! - [`Error`]: what stops a worker.
//!
//! Workers hold no state worth keeping: a task's result lives in its stored
//! object and the coordinator's record of it.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
mod exec;
pub mod fuzzing;
mod hardware;
pub mod identity;
pub mod notice;
mod prom;
mod remote;

pub use spotenc_proto::domain::Capacity as WorkerCapacity;

use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use spotenc_media::encode::Hardware;
use spotenc_proto::client::{Connection, WorkerClient};
use spotenc_proto::domain::{Capacity, Codec, GpuDevice, GpuTelemetry, WorkerInfo};
use spotenc_proto::pb;
use tracing::{info, warn};

use exec::Mode;
use notice::{Notice, NoticeSettings, Notices};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach coordinator {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("coordinator refused: {0}")]
    Rpc(#[from] spotenc_proto::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// `http://host:port` (or `https://` with a CA) of the coordinator.
    pub coordinator: String,
    /// Bearer token with the worker role.
    pub token: Option<spotenc_proto::secret::Secret>,
    /// PEM CA certificate for a coordinator serving TLS.
    pub tls_ca: Option<std::path::PathBuf>,
    pub name: String,
    pub pool: String,
    /// `cpu` or `gpu`.
    pub hardware: String,
    pub slots: u32,
    pub cores: u32,
    pub memory_bytes: u64,
    /// Spot capacity serves only cost work; on-demand serves latency and
    /// escalated work first, then cost work.
    pub capacity: Capacity,
    pub instance_type: String,
    pub zone: String,
    /// How a job's source behind a presigned URL is read.
    pub input_mode: InputMode,
    /// How long to keep trying to reach the coordinator at start-up.
    pub connect_timeout: Duration,
    /// Which interruption notices to watch for, and the exit deadline.
    pub notices: NoticeSettings,
    /// Where to serve Prometheus `/metrics` (off when `None`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// GPUs found at start-up, reported at registration.
    pub gpus: Vec<GpuDevice>,
    /// The encoder family of the slots, reported at registration.
    pub encoder: String,
    /// The operator's encoder parameters by family (`libx264`,
    /// `libx265`), applied to every software encode and reported at
    /// registration as part of the worker's encoder identities.
    pub encoder_params: std::collections::BTreeMap<String, String>,
    /// A hardware encoder that failed is withdrawn for this long, then
    /// offered again.
    pub hardware_retry: Duration,
}

/// Reads every GPU's telemetry now (blocking; NVML).
pub type TelemetrySource = Arc<dyn Fn() -> Vec<GpuTelemetry> + Send + Sync>;

/// Whether slot `n` may lease another task, given the latest telemetry and
/// the encoder sessions each slot holds now (one per rendition of its
/// encode task; 0 when idle or on other work).
pub type LeaseGate = Arc<dyn Fn(u32, &[GpuTelemetry], &[u32]) -> bool + Send + Sync>;

/// What a worker binary plugs into the shared runtime.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The encoder of each slot; slots past the end use the software one.
    pub encoders: Vec<Hardware>,
    pub telemetry: Option<TelemetrySource>,
    pub lease_gate: Option<LeaseGate>,
}

/// How a worker reads a job's source object (chunks and audio tracks are
/// always downloaded: the stitcher checks their checksums). Streaming is the
/// default: `bench/s3_input.sh` measured it at 0.92–1.00 of the download
/// time on loopback, and each chunk task reads only the ranges it needs
/// instead of the whole source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// Download the whole object to a scratch file first.
    Download,
    /// Let FFmpeg read the URL with HTTP range requests.
    Stream,
}

impl std::str::FromStr for InputMode {
    type Err = spotenc_proto::Error;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "download" => Ok(InputMode::Download),
            "stream" => Ok(InputMode::Stream),
            other => Err(spotenc_proto::Error::invalid(format!(
                "invalid input mode {other:?} (expected download or stream)"
            ))),
        }
    }
}

/// Slots for a CPU host: one per four cores (x264 scales well to about
/// four threads per 1080p encode), at most one per 1.5 GiB of memory
/// (about 0.7 GB per megapixel of x264 lookahead, for 1080p with headroom),
/// and at least one.
pub fn slots_for(cores: u32, memory_bytes: u64) -> u32 {
    let by_cores = (cores / 4).max(1);
    let by_memory = (memory_bytes / (3 << 29)).max(1) as u32;
    by_cores.min(by_memory)
}

/// The cores and memory this process may use.
pub fn host_resources() -> (u32, u64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    (cores, memory)
}

async fn connect(config: &WorkerConfig) -> Result<WorkerClient> {
    let conn = Connection {
        url: config.coordinator.clone(),
        token: config.token.clone(),
        tls_ca: config.tls_ca.clone(),
    };
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    loop {
        match conn.workers().await {
            Ok(c) => return Ok(c),
            Err(e @ spotenc_proto::Error::Invalid(_)) => return Err(e.into()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(Error::Connect {
                    url: config.coordinator.clone(),
                    reason: e.to_string(),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn register(
    client: &mut WorkerClient,
    config: &WorkerConfig,
) -> Result<pb::RegisterWorkerResponse> {
    let info = WorkerInfo {
        name: config.name.clone(),
        pool: config.pool.clone(),
        hardware: config.hardware.clone(),
        slots: config.slots,
        cores: config.cores,
        memory_bytes: config.memory_bytes,
        codecs: vec![Codec::H264, Codec::Hevc],
        instance_type: config.instance_type.clone(),
        zone: config.zone.clone(),
        capacity: config.capacity,
        gpus: config.gpus.clone(),
        encoder: if config.encoder.is_empty() {
            "libx264/libx265".into()
        } else {
            config.encoder.clone()
        },
        encoder_params: config.encoder_params.clone(),
    };
    let resp = client
        .register_worker(pb::RegisterWorkerRequest {
            info: Some(info.into()),
        })
        .await
        .map_err(|s| spotenc_proto::Error::from_status(&s))?;
    Ok(resp.into_inner())
}

/// Runs the worker until an interruption notice, then hands back what will
/// not finish in time and returns before the notice's deadline.
pub async fn run(config: WorkerConfig, notices: Notices) -> Result<()> {
    run_with(config, notices, Hooks::default()).await
}

/// [`run`] with the hooks a worker binary provides. Long (about 150
/// lines): the worker's one select loop (leases, notices, shutdown,
/// heartbeats), whose arms share its state.
pub async fn run_with(config: WorkerConfig, mut notices: Notices, hooks: Hooks) -> Result<()> {
    spotenc_media::init();
    if let Some(addr) = config.metrics_listen {
        prom::serve(addr).await.map_err(|e| Error::Connect {
            url: format!("metrics listener {addr}"),
            reason: e.to_string(),
        })?;
    }
    metrics::gauge!("spotenc_worker_slots").set(f64::from(config.slots));
    let gpus: Arc<RwLock<Vec<GpuTelemetry>>> = Arc::default();
    if let Some(read) = hooks.telemetry.clone() {
        let gpus = gpus.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let read = read.clone();
                if let Ok(now) = tokio::task::spawn_blocking(move || read()).await {
                    prom::record_gpus(&now);
                    *gpus.write().expect("telemetry lock") = now;
                }
            }
        });
    }
    let mut config = config;
    if config.instance_type.is_empty() || config.zone.is_empty() {
        if let Some((t, z)) = identity::discover(&config.notices).await {
            if config.instance_type.is_empty() {
                config.instance_type = t;
            }
            if config.zone.is_empty() {
                config.zone = z;
            }
        }
    }
    let mut client = connect(&config).await?;
    let reg = register(&mut client, &config).await?;
    info!(worker = %reg.worker_id, slots = config.slots, coordinator = %config.coordinator, "worker registered");
    let (mode_tx, mode_rx) = tokio::sync::watch::channel(Mode::Run);
    // A read that blocks this long fails a download (retryably). Uploads
    // get no read timeout: the server says nothing until the whole body is
    // in, so a PUT longer than the timeout failed (a 1.5 GB stitch to a
    // local Garage did, every attempt); the stall watchdog ends an upload
    // that stops moving.
    let client_with = |read_timeout: Option<Duration>| {
        let b = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        match read_timeout {
            Some(t) => b.read_timeout(t),
            None => b,
        }
        .build()
        .map_err(|e| Error::Connect {
            url: "object storage".into(),
            reason: e.to_string(),
        })
    };
    let http = client_with(Some(spotenc_media::NETWORK_RW_TIMEOUT))?;
    let upload_http = client_with(None)?;
    let sessions: Arc<std::sync::Mutex<Vec<u32>>> =
        Arc::new(std::sync::Mutex::new(vec![0; config.slots as usize]));
    let withdrawn = Arc::new(hardware::Withdrawn::new(config.hardware_retry));
    let mut slots = tokio::task::JoinSet::new();
    for slot in 0..config.slots {
        let slot_ctx = exec::Slot {
            client: client.clone(),
            http: http.clone(),
            upload_http: upload_http.clone(),
            stream_sources: config.input_mode == InputMode::Stream,
            worker_id: reg.worker_id.clone(),
            heartbeat: Duration::from_millis(u64::from(reg.heartbeat_interval_ms.max(50))),
            stall: Duration::from_secs(u64::from(if reg.stall_seconds == 0 {
                // A coordinator that does not say: the same default.
                spotenc_proto::DEFAULT_STALL_SECONDS
            } else {
                reg.stall_seconds
            })),
            mode: mode_rx.clone(),
            slot,
            hw: hooks
                .encoders
                .get(slot as usize)
                .copied()
                .unwrap_or(Hardware::Software),
            gpus: gpus.clone(),
            withdrawn: withdrawn.clone(),
            gate: hooks.lease_gate.clone(),
            sessions: sessions.clone(),
        };
        slots.spawn(slot_ctx.run());
    }
    let (seen, deadline) = loop {
        tokio::select! {
            n = notices.recv() => match n {
                Some(Notice::Rebalance { source }) => {
                    metrics::counter!("spotenc_worker_notices_total", "kind" => "rebalance").increment(1);
                    info!(worker = %reg.worker_id, %source, "rebalance recommendation: finishing current work, leasing nothing new");
                    mode_tx.send_if_modified(|m| {
                        let run = *m == Mode::Run;
                        if run {
                            *m = Mode::Drain;
                        }
                        run
                    });
                }
                Some(Notice::Interruption { source, seen, deadline }) => {
                    metrics::counter!("spotenc_worker_notices_total", "kind" => "interruption").increment(1);
                    info!(worker = %reg.worker_id, %source, left_ms = deadline.saturating_duration_since(seen).as_millis() as u64, "interruption notice: leasing nothing new, handing back what will not finish in time");
                    let _ = mode_tx.send(Mode::Interrupted { reason: source, deadline });
                    break (seen, deadline);
                }
                // No watcher left: run until the slots stop.
                None => {
                    while let Some(res) = slots.join_next().await {
                        if let Ok(Err(e)) = res {
                            warn!(error = %e, "slot stopped");
                            return Err(e);
                        }
                    }
                    return Ok(());
                }
            },
            Some(res) = slots.join_next() => {
                if let Ok(Err(e)) = res {
                    warn!(error = %e, "slot stopped");
                    let _ = mode_tx.send(Mode::Drain);
                    slots.shutdown().await;
                    return Err(e);
                }
                // A slot that stopped leasing after a rebalance: wait on.
            }
        }
    };
    // Leave the last half second for acknowledging and exiting.
    let by =
        deadline - Duration::from_millis(500).min(deadline.saturating_duration_since(seen) / 4);
    let drained = tokio::time::timeout_at(by, async {
        while let Some(res) = slots.join_next().await {
            if let Ok(Err(e)) = res {
                warn!(error = %e, "slot stopped");
            }
        }
    })
    .await;
    if drained.is_err() {
        warn!("deadline reached with work still running; leaving it to lease expiry");
        slots.abort_all();
    }
    notices.acknowledge(deadline).await;
    info!(
        worker = %reg.worker_id,
        exit_ms = seen.elapsed().as_millis() as u64,
        "exiting after the notice"
    );
    Ok(())
}
