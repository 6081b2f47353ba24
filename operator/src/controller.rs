//! `spotenc operator`: kube-rs's controller runtime over WorkerPools.
//! Each reconcile server-side applies the pool's objects, asks the
//! coordinator for the pool's capacity row and writes it to the status.
//! A finalizer keeps a deleted pool's objects while its workers are busy.
//! Errors requeue with [`backoff`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{finalizer, Event};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};
use spotenc_deploy::RenderOptions;
use spotenc_proto::client::Connection;
use spotenc_proto::pb;

use crate::crd::WorkerPool;
use crate::reconcile::{backoff, deletion, desired_objects, status, Deletion, FINALIZER, MANAGER};

/// A reconcile failure, in words (the controller logs it and backs off).
#[derive(Debug)]
pub struct ReconcileError(pub String);

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReconcileError {}

fn fail(e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError(e.to_string())
}

/// Where the operator reads capacity: the coordinator, or nothing (status
/// then says so).
pub struct Context {
    pub client: Client,
    pub render: RenderOptions,
    pub coordinator: Option<Connection>,
    /// Reconcile errors in a row, by pool, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, render: RenderOptions, coordinator: Option<Connection>) -> Self {
        Context {
            client,
            render,
            coordinator,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The coordinator's capacity rows.
    async fn capacity(&self) -> Result<Vec<pb::PoolCapacity>, String> {
        let Some(c) = &self.coordinator else {
            return Err("no --coordinator given".into());
        };
        let mut jobs = c.jobs().await.map_err(|e| e.to_string())?;
        let rows = tokio::time::timeout(
            Duration::from_secs(10),
            jobs.get_capacity(pb::GetCapacityRequest {}),
        )
        .await
        .map_err(|_| "GetCapacity timed out after 10 s".to_string())?
        .map_err(|s| s.message().to_string())?;
        Ok(rows.into_inner().pools)
    }
}

fn row<'a>(
    rows: &'a Result<Vec<pb::PoolCapacity>, String>,
    pool: &str,
) -> Result<Option<&'a pb::PoolCapacity>, String> {
    match rows {
        Ok(rows) => Ok(rows.iter().find(|r| r.pool == pool)),
        Err(e) => Err(e.clone()),
    }
}

/// Server-side apply of one rendered object.
async fn apply_object(client: &Client, obj: &Value) -> Result<(), ReconcileError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let object: DynamicObject = serde_json::from_value(obj.clone()).map_err(fail)?;
    let namespace = object.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    api.patch(
        &object.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .map_err(|e| fail(format!("apply {kind} {}: {e}", object.name_any())))?;
    Ok(())
}

async fn write_status(
    api: &Api<WorkerPool>,
    name: &str,
    status: &crate::crd::WorkerPoolStatus,
) -> Result<(), ReconcileError> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .map_err(|e| fail(format!("status of WorkerPool {name}: {e}")))?;
    Ok(())
}

/// One reconcile of one WorkerPool.
pub async fn reconcile(wp: Arc<WorkerPool>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = wp
        .namespace()
        .unwrap_or_else(|| ctx.render.namespace.clone());
    let api: Api<WorkerPool> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&api, FINALIZER, wp, |event| async {
        match event {
            Event::Apply(wp) => apply(&wp, &api, &ctx).await,
            Event::Cleanup(wp) => cleanup(&wp, &api, &ctx).await,
        }
    })
    .await
    .map_err(fail)?;
    Ok(action)
}

async fn apply(
    wp: &WorkerPool,
    api: &Api<WorkerPool>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let name = wp.name_any();
    for obj in desired_objects(wp, &ctx.render).map_err(fail)? {
        apply_object(&ctx.client, &obj).await?;
    }
    let rows = ctx.capacity().await;
    write_status(api, &name, &status(wp, row(&rows, &name))).await?;
    ctx.failures.lock().expect("failures lock").remove(&name);
    // Status follows the coordinator's plan; refresh it twice a minute.
    Ok(Action::requeue(Duration::from_secs(30)))
}

async fn cleanup(
    wp: &WorkerPool,
    api: &Api<WorkerPool>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let name = wp.name_any();
    let rows = ctx.capacity().await;
    match deletion(row(&rows, &name)) {
        Deletion::Release => Ok(Action::await_change()),
        Deletion::Wait(why) => {
            let mut s = status(wp, row(&rows, &name));
            s.reason = why.clone();
            write_status(api, &name, &s).await?;
            // An error keeps the finalizer; the error policy requeues.
            Err(ReconcileError(why))
        }
    }
}

/// Requeue after a failed reconcile, backing off per pool.
pub fn error_policy(wp: Arc<WorkerPool>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let mut failures = ctx.failures.lock().expect("failures lock");
    let n = failures.entry(wp.name_any()).or_default();
    *n += 1;
    let delay = backoff(*n);
    tracing::warn!(pool = %wp.name_any(), error = %error, failures = *n, ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Watches WorkerPools in `namespace` (all namespaces if `None`) and their
/// Deployments until the stream ends.
pub async fn run(ctx: Arc<Context>, namespace: Option<String>) {
    let client = ctx.client.clone();
    let (pools, deployments): (Api<WorkerPool>, Api<Deployment>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    Controller::new(pools, watcher::Config::default())
        .owns(deployments, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((pool, _)) => tracing::info!(pool = %pool.name, "reconciled"),
                Err(e) => tracing::warn!(error = %e, "reconcile error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
