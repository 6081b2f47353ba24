//! Command-line flags shared by cpu-worker and gpu-worker, and the shutdown
//! signal both listen for.

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
    token: Option<String>,
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
}

impl WorkerArgs {
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

/// Completes on SIGTERM (a Kubernetes eviction) or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
