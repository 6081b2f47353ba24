//! `spotenc deploy render`: Kubernetes manifests from a pool catalogue file
//! (the coordinator's `deploy` module does the rendering; this is the glue).

use std::path::PathBuf;

use spotenc_core::cost::pools::load_pools;
use spotenc_deploy::{self as deploy, RedisChoice, RenderOptions};

#[derive(clap::Subcommand, Debug)]
pub enum DeployCommand {
    /// Write plain manifests for `kubectl apply -k DIR`: the coordinator,
    /// monitoring, and per pool a worker Deployment, KEDA ScaledObject and
    /// PodDisruptionBudget, plus example Karpenter NodePools
    Render(RenderArgs),
}

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The pool catalogue: exactly the [[pools]] it lists (an entry named
    /// like a built-in pool starts from the built-in fields)
    #[arg(long)]
    pools: PathBuf,
    /// The directory to write (refused if not empty, unless --force)
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "spotenc")]
    namespace: String,
    #[command(flatten)]
    workers: WorkerObjectArgs,
    /// An external Redis for the coordinators' state
    #[arg(
        long,
        conflicts_with = "with_redis",
        required_unless_present = "with_redis"
    )]
    redis_url: Option<String>,
    /// Render a single-replica Redis StatefulSet instead (trials only)
    #[arg(long)]
    with_redis: bool,
    /// The on-demand pool that always keeps one worker (default: the
    /// cheapest CPU on-demand pool)
    #[arg(long)]
    baseline_pool: Option<String>,
    /// The Karpenter EC2NodeClass of the example NodePools
    #[arg(long, default_value = "default")]
    node_class: String,
    /// Write into a directory that is not empty
    #[arg(long)]
    force: bool,
}

/// What shapes each pool's worker objects, for `deploy render` and the
/// operator alike.
#[derive(clap::Args, Debug)]
pub struct WorkerObjectArgs {
    /// Image tag of the coordinator and worker images
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    image_tag: String,
    /// Images are REPOSITORY/{coordinator,cpu-worker,gpu-worker}:TAG
    #[arg(long, default_value = "spotenc")]
    image_repository: String,
    /// The Prometheus that KEDA's triggers query
    #[arg(long, default_value = "http://prometheus-operated.monitoring.svc:9090")]
    prometheus_url: String,
    /// Seconds a worker has from a spot notice or SIGTERM to exit (at most 90)
    #[arg(long, default_value_t = deploy::MAX_NOTICE_DEADLINE_SECONDS)]
    notice_deadline_seconds: u32,
}

impl WorkerObjectArgs {
    /// Render options in `namespace` with these flags, defaults elsewhere.
    pub fn options(self, namespace: String) -> RenderOptions {
        RenderOptions {
            namespace,
            image_repository: self.image_repository,
            image_tag: self.image_tag,
            prometheus_url: self.prometheus_url,
            notice_deadline_seconds: self.notice_deadline_seconds,
            ..RenderOptions::default()
        }
    }
}

pub fn run(command: DeployCommand) -> anyhow::Result<bool> {
    let DeployCommand::Render(a) = command;
    let catalogue = load_pools(&a.pools).map_err(anyhow::Error::msg)?;
    let options = RenderOptions {
        redis: match a.redis_url {
            Some(url) => RedisChoice::External(url),
            None => RedisChoice::StatefulSet,
        },
        baseline_pool: a.baseline_pool,
        node_class: a.node_class,
        ..a.workers.options(a.namespace)
    };
    let files = deploy::render(&catalogue, &options).map_err(anyhow::Error::msg)?;
    deploy::write(&a.out, &files, a.force).map_err(anyhow::Error::msg)?;
    for f in &files {
        println!("{}", a.out.join(&f.path).display());
    }
    Ok(true)
}
