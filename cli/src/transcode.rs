//! `spotenc transcode`: the coordinator (embedded store) and N workers in
//! this process, talking real gRPC on a loopback port. The same code a
//! deployed fleet runs, not a second pipeline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use spotenc_proto::domain::JobSpec;

use crate::client;

pub struct Local {
    pub workers: u32,
    /// Where the embedded store and the chunks live (default: a hidden
    /// directory beside the output, removed afterwards).
    pub work_dir: Option<PathBuf>,
}

/// Runs one job to the end. `Ok(true)` when it succeeded. Long (about
/// 140 lines): the coordinator, the workers and the progress display are
/// started, watched and stopped together in one scope.
pub async fn run(spec: JobSpec, local: Local) -> anyhow::Result<bool> {
    let out_dir = std::path::Path::new(&spec.output)
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    if !out_dir.is_dir() {
        anyhow::bail!("output directory {} does not exist", out_dir.display());
    }
    // Intermediate chunks go beside the output: the same filesystem, and not
    // a tmpfs that a long job could fill.
    let scratch = match &local.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::Builder::new()
                .prefix(".spotenc-")
                .tempdir_in(dir)?
        }
        None => tempfile::Builder::new()
            .prefix(".spotenc-")
            .tempdir_in(&out_dir)
            .with_context(|| format!("output directory {} is not writable", out_dir.display()))?,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The in-process coordinator listens on loopback, where other local
    // users could reach it: it accepts only this run's random token.
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut config = spotenc_coordinator::config::load("", &Default::default())?;
    config
        .tokens
        .add("transcode", &token, spotenc_proto::auth::Role::Admin);
    config.data_dir = scratch.path().to_path_buf();
    // Confined to this run's own files: its input's and output's folders.
    let folder = |p: &str| std::path::Path::new(p).parent().map(|d| d.to_path_buf());
    config.files = spotenc_storage::Files {
        input_roots: folder(&spec.input).into_iter().collect(),
        output_roots: spec
            .outputs()
            .into_iter()
            .filter_map(|(o, _, _)| folder(o))
            .collect(),
        data_dir: scratch.path().to_path_buf(),
    };
    config.lease_ttl_ms = 10_000;
    config.heartbeat_interval_ms = 1_000;
    let coordinator = tokio::spawn(spotenc_coordinator::run(
        listener,
        config,
        stopped(stop_rx.clone()),
    ));
    let (cores, memory) = spotenc_worker::host_resources();
    let mut workers = Vec::new();
    for i in 0..local.workers.max(1) {
        let wc = spotenc_worker::WorkerConfig {
            coordinator: url.clone(),
            token: Some(token.as_str().into()),
            tls_ca: None,
            name: format!("local-{i}"),
            pool: "local".into(),
            hardware: "cpu".into(),
            slots: 1,
            cores,
            memory_bytes: memory,
            capacity: spotenc_worker::WorkerCapacity::OnDemand,
            instance_type: String::new(),
            zone: String::new(),
            input_mode: spotenc_worker::InputMode::Download,
            connect_timeout: Duration::from_secs(10),
            notices: spotenc_worker::notice::NoticeSettings {
                cloud: spotenc_worker::notice::CloudChoice::None,
                ..Default::default()
            },
            metrics_listen: None,
            gpus: Vec::new(),
            encoder: String::new(),
            encoder_params: Default::default(),
            hardware_retry: Duration::from_secs(300),
        };
        let notices = spotenc_worker::notice::Notices::when(
            stopped(stop_rx.clone()),
            Duration::from_secs(10),
        );
        workers.push(tokio::spawn(spotenc_worker::run(wc, notices)));
    }

    let started = Instant::now();
    let result = async {
        let mut jobs = client::connect(&client::ConnArgs {
            coordinator: url.clone(),
            token: Some(token.as_str().into()),
            tls_ca: None,
        })
        .await?;
        let job = client::submit(&mut jobs, spec, String::new()).await?;
        let watched = tokio::select! {
            j = client::watch(&mut jobs, &job.id) => j?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("spotenc: interrupted, cancelling");
                client::cancel(&mut jobs, &job.id).await?
            }
        };
        anyhow::Ok(watched)
    }
    .await;

    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    let _ = coordinator.await;
    drop(scratch);

    let job = result?;
    if client::state_name(&job) == "succeeded" {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "spotenc: {} frames in {} chunks, {:.1} s ({:.1} fps)",
            job.frames_total,
            job.chunks_total,
            secs,
            job.frames_total as f64 / secs.max(1e-9)
        );
        for l in &job.left_out {
            eprintln!("spotenc: left out {l}");
        }
        for l in crate::report::quality_lines(&job) {
            eprintln!("spotenc: {l}");
        }
        Ok(true)
    } else {
        let reason = if job.error.is_empty() {
            client::state_name(&job).to_string()
        } else {
            job.error.clone()
        };
        eprintln!("spotenc: {reason}");
        Ok(false)
    }
}
