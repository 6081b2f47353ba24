//! `spotenc operator`: the WorkerPool controller, and its CRD.

use std::sync::Arc;

use spotenc_coordinator::deploy::RenderOptions;
use spotenc_operator::controller::{self, Context};
use spotenc_proto::client::Connection;

#[derive(clap::Subcommand, Debug)]
pub enum OperatorCommand {
    /// Print the WorkerPool CustomResourceDefinition (generated from the Rust type)
    Crd,
    /// Reconcile WorkerPools: apply each pool's Deployment, ScaledObject and
    /// PodDisruptionBudget and report the coordinator's view in its status
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Watch WorkerPools in this namespace only (default: all)
    #[arg(long)]
    namespace: Option<String>,
    /// Image tag of the worker images
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    image_tag: String,
    /// Images are REPOSITORY/{cpu-worker,gpu-worker}:TAG
    #[arg(long, default_value = "spotenc")]
    image_repository: String,
    /// The Prometheus that KEDA's triggers query
    #[arg(long, default_value = "http://prometheus-operated.monitoring.svc:9090")]
    prometheus_url: String,
    /// Seconds a worker has from a spot notice or SIGTERM to exit (at most 90)
    #[arg(long, default_value_t = spotenc_coordinator::deploy::MAX_NOTICE_DEADLINE_SECONDS)]
    notice_deadline_seconds: u32,
    #[command(flatten)]
    conn: crate::client::ConnArgs,
}

pub async fn run(command: OperatorCommand) -> anyhow::Result<bool> {
    match command {
        OperatorCommand::Crd => {
            print!("{}", spotenc_operator::crd::crd_yaml());
            Ok(true)
        }
        OperatorCommand::Run(a) => {
            let client = kube::Client::try_default().await?;
            let render = RenderOptions {
                namespace: a.namespace.clone().unwrap_or_else(|| "spotenc".into()),
                image_repository: a.image_repository,
                image_tag: a.image_tag,
                prometheus_url: a.prometheus_url,
                notice_deadline_seconds: a.notice_deadline_seconds,
                ..RenderOptions::default()
            };
            let coordinator = Connection {
                url: a.conn.coordinator,
                token: a.conn.token,
                tls_ca: a.conn.tls_ca,
            };
            let ctx = Arc::new(Context::new(client, render, Some(coordinator)));
            controller::run(ctx, a.namespace).await;
            Ok(true)
        }
    }
}
