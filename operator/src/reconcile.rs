//! The operator's decisions, as pure functions: what to apply for a pool,
//! what its status says, whether it may be deleted, and how long to back off.

use std::time::Duration;

use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use spotenc_deploy::{self as deploy, RenderOptions};
use spotenc_proto::pb::PoolCapacity;

use crate::crd::{WorkerPool, WorkerPoolStatus};

/// The field manager of every server-side apply.
pub const MANAGER: &str = "spotenc-operator";
/// Held on a WorkerPool until no worker of the pool is busy.
pub const FINALIZER: &str = "spotenc.io/busy-workers";

/// The pool's Deployment, ScaledObject and PodDisruptionBudget, exactly as
/// `deploy render` writes them, in the pool's namespace and owned by the
/// WorkerPool (so deleting it removes them).
pub fn desired_objects(wp: &WorkerPool, o: &RenderOptions) -> Result<Vec<Value>, String> {
    let pool = wp.to_pool()?;
    deploy::check_pool(&pool)?;
    let owner = wp
        .controller_owner_ref(&())
        .ok_or_else(|| format!("WorkerPool {}: no uid yet", wp.name_any()))?;
    let namespace = wp.namespace().unwrap_or_else(|| o.namespace.clone());
    let mut objects = deploy::pool_objects(o, &pool, pool.min_workers);
    for obj in &mut objects {
        obj["metadata"]["namespace"] = json!(namespace);
        obj["metadata"]["ownerReferences"] = json!([owner]);
    }
    Ok(objects)
}

/// The status from the coordinator's view of the pool: its capacity row,
/// none (the coordinator does not know the pool), or why it was not asked.
pub fn status(
    wp: &WorkerPool,
    capacity: Result<Option<&PoolCapacity>, String>,
) -> WorkerPoolStatus {
    let generation = wp.metadata.generation;
    match capacity {
        Ok(Some(c)) => WorkerPoolStatus {
            observed_workers: c.live,
            busy_workers: c.busy,
            desired_workers: c.desired,
            health: c.health.clone(),
            reason: c.reason.clone(),
            observed_generation: generation,
        },
        Ok(None) => WorkerPoolStatus {
            health: "unknown".into(),
            reason: "the coordinator's catalogue has no pool of this name: add it to the \
                     coordinator's pools file"
                .into(),
            observed_generation: generation,
            ..WorkerPoolStatus::default()
        },
        Err(why) => WorkerPoolStatus {
            health: "unknown".into(),
            reason: format!("coordinator unreachable: {why}"),
            observed_generation: generation,
            ..WorkerPoolStatus::default()
        },
    }
}

/// Whether a deleted WorkerPool may let its objects go.
#[derive(Debug, Clone, PartialEq)]
pub enum Deletion {
    /// Remove the finalizer: the Deployment goes with no busy encoder.
    Release,
    /// Keep it, and say why.
    Wait(String),
}

/// A deleted pool's Deployment is never removed while its workers are busy
/// (or while nobody can say whether they are).
pub fn deletion(capacity: Result<Option<&PoolCapacity>, String>) -> Deletion {
    match capacity {
        Ok(Some(c)) if c.busy > 0 => Deletion::Wait(format!(
            "{} workers still hold leases; deleting when they finish",
            c.busy
        )),
        Ok(_) => Deletion::Release,
        Err(why) => Deletion::Wait(format!(
            "cannot tell whether workers are busy (coordinator unreachable: {why})"
        )),
    }
}

/// Requeue delay after `failures` reconcile errors in a row: 5 s doubling
/// to at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << failures.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

#[cfg(test)]
pub(crate) mod tests;
