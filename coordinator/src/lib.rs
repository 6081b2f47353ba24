//! spotenc-coordinator: takes jobs, plans chunks, leases tasks to workers,
//! and commits outputs. It never links FFmpeg: media work happens in tasks.
//!
//! Layout:
//! - [`run`]: binds the gRPC services to a listener until `shutdown`.
//! - [`Config`]: lease TTL, heartbeat interval, limits, data directory,
//!   tokens, TLS; [`config`] loads it from TOML and the environment.
//! - [`auth`]: bearer tokens with roles, checked on every RPC.
//! - `core`: [`Coordinator`], the behaviour between the RPC edge and the
//!   store: submission checks, long-poll leasing, planning after a probe,
//!   interruptions and audit logs, the workers heard from, commit of every
//!   rendition and cleanup.
//! - `service`: the tonic `JobService` and `WorkerService` handlers.
//! - `prom`: Prometheus `/metrics` (`metrics_listen`): jobs, queue depth by
//!   partition, interruptions by pool, expiries, escalations, workers, cost
//!   by pool and outcome, output seconds by codec, live workers by pool, and
//!   the capacity planner's desired workers, backlog, health and
//!   interruption rate by pool and queue age against target.
//! - [`fuzzing`]: entry points for the fuzz targets in `fuzz/` and the
//!   corpus replay (job specs as protobuf, TOML, the Lua-facing JSON).
//!
//! What it builds on, each its own crate: `spotenc-core` (plan, graph,
//! cost model, placement, capacity planner, the pure state machine),
//! `spotenc-store` (the embedded and Redis stores) and `spotenc-storage`
//! (object stores and the broker).

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod fuzzing;

mod core;
mod prom;
mod service;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::core::Coordinator;
pub use spotenc_proto::{Error, Result};

use spotenc_core::state::Limits;
use spotenc_proto::auth::Role;
use spotenc_proto::pb::{
    job_service_server::JobServiceServer, worker_service_server::WorkerServiceServer,
};
use spotenc_store::{embedded::EmbeddedStore, redis::RedisStore, StateStore};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

/// Where job and task state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateBackend {
    /// A file in the data directory; one coordinator.
    Embedded,
    /// A Redis server shared by any number of coordinator replicas.
    Redis { url: String, prefix: String },
}

/// PEM files for serving gRPC over TLS.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Coordinator settings. Every field is a decision; [`config::load`]
/// documents and supplies the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `spotenc coordinator` binds; [`run`] takes a bound listener.
    pub listen: std::net::SocketAddr,
    /// Where to serve Prometheus `/metrics` (off when `None`).
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub state: StateBackend,
    /// The jobs' intermediate objects (and the embedded store's state file).
    /// Replicas sharing Redis must see the same directory.
    pub data_dir: PathBuf,
    pub lease_ttl_ms: u32,
    pub heartbeat_interval_ms: u32,
    /// Seconds without progress after which a worker fails its task as
    /// stalled (sent to workers when they register).
    pub stall_seconds: u32,
    pub quotas: Quotas,
    /// How long ended jobs (with their tasks, attempts, logs and
    /// idempotency keys) and silent workers are kept.
    pub retention: Duration,
    /// A task whose lease expires more than this many times fails its job.
    pub max_expiries: u32,
    /// How often expired leases are reaped.
    pub reap_interval_ms: u32,
    /// Accepted bearer tokens. Empty turns authentication off, which
    /// [`run`] allows only on a loopback address or with
    /// `insecure_no_auth`.
    pub tokens: auth::Tokens,
    /// Serve without tokens on a non-loopback address (fail closed
    /// otherwise).
    pub insecure_no_auth: bool,
    pub tls: Option<TlsFiles>,
    /// S3 storage for `s3://` inputs and outputs, through the broker.
    pub s3: Option<spotenc_storage::broker::S3Config>,
    /// Where local inputs and outputs may lie.
    pub files: spotenc_storage::Files,
    /// Every pool the fleet may run in.
    pub pools: spotenc_core::cost::catalogue::Catalogue,
    pub placement: Placement,
    /// The capacity planner's targets and rules.
    pub capacity: spotenc_core::cost::capacity::CapacityPolicy,
}

/// Per-client limits (a client is a token name, or `anonymous`); 0 turns
/// a limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quotas {
    /// Jobs not ended (queued, running or committing).
    pub queued_jobs_per_client: u32,
    /// Open WatchJob streams on one replica.
    pub watch_streams_per_client: u32,
}

/// How the coordinator places tasks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Cost-aware placement; `false` leases first in, first out.
    pub enabled: bool,
    pub policy: spotenc_core::cost::place::Policy,
    /// A GPU whose NVENC utilisation is at or above this gets no further
    /// session.
    pub nvenc_util_limit_pct: u32,
    /// A job pinned to encoder identities that no live worker serves for
    /// this long restarts under another identity.
    pub affinity_wait_ms: i64,
    /// Dollars per GB of output a platform pays to store and deliver; 0:
    /// placement prices encode time only.
    pub delivered_price_per_gb: f64,
}

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms * 2 > self.lease_ttl_ms {
            return Err(Error::invalid(format!(
                "invalid heartbeat interval {} ms (expected 1..={} ms, half the lease TTL)",
                self.heartbeat_interval_ms,
                self.lease_ttl_ms / 2
            )));
        }
        if self.retention.is_zero() {
            return Err(Error::invalid("retention_hours must be above 0"));
        }
        if self.stall_seconds < 5 {
            return Err(Error::invalid(format!(
                "invalid stall_seconds {} (expected at least 5)",
                self.stall_seconds
            )));
        }
        Ok(())
    }
}

/// Serves the coordinator on `listener` until `shutdown` completes: opens
/// the store, starts the background work (reaping expired leases,
/// retention), then serves the gRPC services until shutdown.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.validate()?;
    spotenc_proto::client::install_crypto_provider();
    if let Some(addr) = config.metrics_listen {
        prom::serve(addr)
            .await
            .map_err(|e| Error::invalid(format!("metrics listener {addr}: {e}")))?;
    }
    let (store, poll) = open_store(&config).await?;
    let coord = Arc::new(Coordinator::new(store, config.clone(), poll));
    let background = [reaper(&coord, &config), retention(&coord, &config)];
    let result = serve(listener, &config, coord, shutdown).await;
    for task in background {
        task.abort();
    }
    result
}

/// The configured store, and how often a long poll looks for work that
/// another replica submitted (`None`: the embedded store wakes waiters).
async fn open_store(config: &Config) -> Result<(Arc<dyn StateStore>, Option<Duration>)> {
    let limits = Limits {
        lease_ttl_ms: config.lease_ttl_ms,
        max_expiries: config.max_expiries,
    };
    Ok(match &config.state {
        StateBackend::Embedded => (
            Arc::new(EmbeddedStore::open(&config.data_dir, limits)?),
            None,
        ),
        StateBackend::Redis { url, prefix } => {
            let work_root = config.data_dir.join("jobs");
            std::fs::create_dir_all(&work_root)
                .map_err(|e| Error::Internal(format!("create {}: {e}", work_root.display())))?;
            let store =
                RedisStore::connect(url, prefix, &work_root.display().to_string(), limits).await?;
            // Work submitted through another replica wakes no waiter here.
            (Arc::new(store), Some(Duration::from_millis(250)))
        }
    })
}

/// Reaps expired leases every `reap_interval_ms`.
fn reaper(coord: &Arc<Coordinator>, config: &Config) -> tokio::task::JoinHandle<()> {
    let coord = coord.clone();
    let every = Duration::from_millis(u64::from(config.reap_interval_ms));
    tokio::spawn(async move {
        loop {
            if let Err(e) = coord.reap().await {
                tracing::warn!(error = %e, "reap failed");
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Retention: a pass every tenth of the retention (1 s ..= 10 min).
fn retention(coord: &Arc<Coordinator>, config: &Config) -> tokio::task::JoinHandle<()> {
    let coord = coord.clone();
    let keep = config.retention;
    let every = (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            coord.purge(keep).await;
        }
    })
}

/// Refuses to serve a non-loopback address without tokens unless told to.
fn check_auth(config: &Config, addr: Option<std::net::SocketAddr>) -> Result<()> {
    if config.tokens.is_empty() {
        let loopback = addr.is_some_and(|a| a.ip().is_loopback());
        if !loopback && !config.insecure_no_auth {
            return Err(Error::invalid(format!(
                "refusing to serve on {} with no tokens: anyone who can reach it could submit jobs \
                 and act as a worker; configure [[tokens]], listen on a loopback address, or pass \
                 --insecure-no-auth (SPOTENC_INSECURE_NO_AUTH=1)",
                addr.map_or_else(|| "?".into(), |a| a.to_string())
            )));
        }
        tracing::warn!(?addr, "no tokens configured: authentication is off");
    }
    Ok(())
}

/// The job and worker services behind their roles, with health and
/// reflection, over TLS when configured, until `shutdown`.
async fn serve(
    listener: tokio::net::TcpListener,
    config: &Config,
    coord: Arc<Coordinator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<JobServiceServer<service::Jobs>>()
        .await;
    health
        .set_serving::<WorkerServiceServer<service::Workers>>()
        .await;
    // Reflection under both names: grpcurl speaks v1, but Python grpcio's
    // reflection client and older tools still ask for v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(spotenc_proto::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;

    let addr = listener.local_addr().ok();
    check_auth(config, addr)?;
    tracing::info!(?addr, tls = config.tls.is_some(), data_dir = %config.data_dir.display(), "coordinator listening");
    let tokens = Arc::new(config.tokens.clone());
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| Error::invalid(format!("read {}: {e}", p.display())))
        };
        let identity = tonic::transport::Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| Error::invalid(format!("tls: {e}")))?;
    }
    server
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            JobServiceServer::new(service::Jobs(coord.clone()))
                .max_decoding_message_size(spotenc_proto::MAX_MESSAGE_BYTES),
            auth::RequireRole::new(tokens.clone(), Role::Client),
        ))
        .add_service(InterceptedService::new(
            WorkerServiceServer::new(service::Workers(coord))
                .max_decoding_message_size(spotenc_proto::MAX_MESSAGE_BYTES),
            auth::RequireRole::new(tokens, Role::Worker),
        ))
        .serve_with_incoming_shutdown(
            // TCP_NODELAY: a reply written in several small writes (headers,
            // data, trailers) otherwise waits for the client's delayed ACK,
            // about 40 ms, under Nagle's algorithm.
            TcpIncoming::from(listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(Duration::from_secs(60))),
            shutdown,
        )
        .await
        .map_err(|e| Error::Internal(format!("serve: {e}")))
}
