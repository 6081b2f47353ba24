//! Command-line flags shared by cpu-worker and gpu-worker, and their log
//! set-up.

use std::path::PathBuf;

use crate::config::WorkerSettings;
use crate::WorkerConfig;

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// TOML config file; flags override it
    #[arg(long, env = "SPOTENC_CONFIG")]
    config: Option<PathBuf>,
    /// Coordinator address, e.g. http://127.0.0.1:50051
    #[arg(long, env = "SPOTENC_COORDINATOR")]
    coordinator: Option<String>,
    /// Bearer token with the worker role
    #[arg(long, env = "SPOTENC_TOKEN", hide_env_values = true)]
    token: Option<spotenc_proto::secret::Secret>,
    /// CA certificate (PEM) when the coordinator serves TLS
    #[arg(long, env = "SPOTENC_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Worker name, shown in job records (default: the host name)
    #[arg(long, env = "SPOTENC_WORKER_NAME")]
    name: Option<String>,
    /// Pool this worker belongs to (default: local-cpu)
    #[arg(long, env = "SPOTENC_POOL")]
    pool: Option<String>,
    /// Concurrent tasks (default: sized from cores and memory)
    #[arg(long, env = "SPOTENC_SLOTS")]
    slots: Option<u32>,
    /// spot: cost work only; on-demand (default): latency and escalated work
    /// first, then cost work
    #[arg(long, env = "SPOTENC_CAPACITY")]
    capacity: Option<String>,
    /// Instance type, recorded with the worker (e.g. c6i.4xlarge)
    #[arg(long, env = "SPOTENC_INSTANCE_TYPE")]
    instance_type: Option<String>,
    /// Availability zone, recorded with the worker
    #[arg(long, env = "SPOTENC_ZONE")]
    zone: Option<String>,
    /// How to read a job's source behind a presigned URL: stream (default,
    /// FFmpeg HTTP range requests) or download
    #[arg(long, env = "SPOTENC_INPUT_MODE")]
    pub input_mode: Option<String>,
    /// Cloud whose spot notices to watch: auto (default, ask each metadata
    /// service at start-up), aws, gcp, azure or none (signals only)
    #[arg(long, env = "SPOTENC_CLOUD")]
    cloud: Option<String>,
    /// AWS instance metadata base URL (default http://169.254.169.254)
    #[arg(long, env = "SPOTENC_AWS_METADATA_URL")]
    aws_metadata_url: Option<String>,
    /// GCP metadata base URL (default http://metadata.google.internal)
    #[arg(long, env = "SPOTENC_GCP_METADATA_URL")]
    gcp_metadata_url: Option<String>,
    /// Azure instance metadata base URL (default http://169.254.169.254)
    #[arg(long, env = "SPOTENC_AZURE_METADATA_URL")]
    azure_metadata_url: Option<String>,
    /// How often to poll for a notice, in ms (default 2000)
    #[arg(long, env = "SPOTENC_NOTICE_POLL_MS")]
    notice_poll_ms: Option<u64>,
    /// The most seconds between a notice and exit (default 90; a notice
    /// that gives less wins)
    #[arg(long, env = "SPOTENC_NOTICE_DEADLINE_SECONDS")]
    notice_deadline_seconds: Option<u64>,
    /// TTL of IMDSv2 session tokens, in seconds (default 21600)
    #[arg(long, env = "SPOTENC_AWS_TOKEN_TTL_SECONDS")]
    aws_token_ttl_seconds: Option<u64>,
    /// Serve Prometheus /metrics on this address (e.g. 0.0.0.0:9464)
    #[arg(long, env = "SPOTENC_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Operator libx264 parameters (key=value:...), part of the worker's
    /// encoder identity
    #[arg(long, env = "SPOTENC_X264_PARAMS")]
    x264_params: Option<String>,
    /// Operator libx265 parameters (key=value:...), part of the worker's
    /// encoder identity
    #[arg(long, env = "SPOTENC_X265_PARAMS")]
    x265_params: Option<String>,
    /// Probe the worker already running with this configuration: exit 0 if
    /// its /metrics answers on the loopback (the container health check)
    #[arg(long)]
    pub health: bool,
}

impl WorkerArgs {
    /// `--slots` (or `SPOTENC_SLOTS`), when given.
    pub fn slots(&self) -> Option<u32> {
        self.slots
    }

    /// Flags over the config file over defaults.
    pub fn load(self, hardware: &str, default_pool: &str) -> anyhow::Result<WorkerConfig> {
        let text = match &self.config {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("read {}: {e}", p.display()))?,
            None => String::new(),
        };
        let flags = WorkerSettings {
            coordinator: self.coordinator,
            token: self.token,
            token_env: None,
            tls_ca: self.tls_ca,
            name: self.name,
            pool: self.pool,
            capacity: self.capacity,
            instance_type: self.instance_type,
            zone: self.zone,
            slots: self.slots,
            input_mode: self.input_mode,
            cloud: self.cloud,
            aws_metadata_url: self.aws_metadata_url,
            gcp_metadata_url: self.gcp_metadata_url,
            azure_metadata_url: self.azure_metadata_url,
            notice_poll_ms: self.notice_poll_ms,
            notice_deadline_seconds: self.notice_deadline_seconds,
            aws_token_ttl_seconds: self.aws_token_ttl_seconds,
            metrics_listen: self.metrics_listen,
            x264_params: self.x264_params,
            x265_params: self.x265_params,
            hardware_retry_seconds: None,
        };
        let env = std::env::vars().collect();
        Ok(crate::config::load(
            flags,
            &text,
            &env,
            hardware,
            default_pool,
        )?)
    }
}

/// `--health`: GET the running worker's `/metrics` on the loopback, at the
/// port of `metrics_listen`, and expect its slot gauge. A worker without a
/// metrics endpoint cannot be probed, and says so.
pub async fn health(mut args: WorkerArgs) -> anyhow::Result<()> {
    // The probe never dials the coordinator; the config need not name one.
    args.coordinator
        .get_or_insert_with(|| "http://unused".into());
    let config = args.load("cpu", "local-cpu")?;
    let Some(addr) = config.metrics_listen else {
        anyhow::bail!("no metrics_listen configured: nothing to probe");
    };
    let url = format!("http://127.0.0.1:{}/metrics", addr.port());
    let body = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?
        .text()
        .await?;
    anyhow::ensure!(
        body.contains("spotenc_worker_slots"),
        "{url} answered without spotenc_worker_slots"
    );
    println!("{url}: ok");
    Ok(())
}

/// Logs to stderr at `RUST_LOG` (default `info`), as both worker binaries do.
/// Stderr itself is teed into the tasks' audit logs first (libx265 prints
/// there), so the worker's own log lines are written to the original
/// stderr and stay out of them.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match spotenc_media::capture_stderr() {
        Ok(original) => tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(original))
            .with_env_filter(filter)
            .init(),
        Err(e) => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(filter)
                .init();
            tracing::warn!(error = %e, "stderr is not captured: libx265's lines stay out of audit logs");
        }
    }
}
