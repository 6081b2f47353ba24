//! `spotenc operator`: the WorkerPool controller, and its CRD.

use std::sync::Arc;

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
    #[command(flatten)]
    workers: crate::deploy::WorkerObjectArgs,
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
            let render = a
                .workers
                .options(a.namespace.clone().unwrap_or_else(|| "spotenc".into()));
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
