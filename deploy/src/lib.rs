//! `spotenc deploy render`: plain Kubernetes manifests from the pool
//! catalogue, a pure function of the catalogue and [`RenderOptions`]. The
//! same catalogue drives placement and the capacity planner, and the
//! coordinator's ConfigMap carries it (`builtin_pools = false`), so a pool
//! added to the file appears in the planner, its gauge, its Deployment and
//! its ScaledObject at once.
//!
//! Layout:
//! - this file: options, validation (every refusal names the pool and the
//!   field, before anything is written), the file list and
//!   `kustomization.yaml`, and the catalogue written back as TOML.
//! - `objects`: the objects themselves, as JSON values: the coordinator
//!   (ConfigMap, Deployment, Service), monitoring (ServiceMonitor, PodMonitor,
//!   PrometheusRule), Redis, and per pool a worker Deployment, a KEDA
//!   ScaledObject and a PodDisruptionBudget; example Karpenter NodePools.

#![forbid(unsafe_code)]

mod objects;

use std::collections::BTreeMap;

use serde_json::Value;
use spotenc_proto::domain::Capacity;

use spotenc_core::cost::catalogue::{Catalogue, Hardware, Pool};

/// The worker notice deadline may not exceed this: a spot notice gives
/// 120 s, and draining the node takes some of it.
pub const MAX_NOTICE_DEADLINE_SECONDS: u32 = 90;

/// Where the coordinators keep their shared state.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisChoice {
    /// A Redis the operator runs (ElastiCache, a Helm chart ...).
    External(String),
    /// A single-replica StatefulSet rendered here (append-only,
    /// `noeviction`): for trials, not for production.
    StatefulSet,
}

#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub namespace: String,
    /// Images are `{image_repository}/{coordinator,cpu-worker,gpu-worker}:{image_tag}`.
    pub image_repository: String,
    pub image_tag: String,
    pub redis: RedisChoice,
    /// The Prometheus KEDA queries (`serverAddress`).
    pub prometheus_url: String,
    /// Seconds a worker has from a notice (or SIGTERM) to exit.
    pub notice_deadline_seconds: u32,
    /// The on-demand pool that always keeps a worker (default: the
    /// cheapest CPU on-demand pool).
    pub baseline_pool: Option<String>,
    /// The Karpenter EC2NodeClass the example NodePools use.
    pub node_class: String,
    pub coordinator_replicas: u32,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            namespace: "spotenc".into(),
            image_repository: "spotenc".into(),
            image_tag: env!("CARGO_PKG_VERSION").into(),
            redis: RedisChoice::StatefulSet,
            prometheus_url: "http://prometheus-operated.monitoring.svc:9090".into(),
            notice_deadline_seconds: MAX_NOTICE_DEADLINE_SECONDS,
            baseline_pool: None,
            node_class: "default".into(),
            coordinator_replicas: 2,
        }
    }
}

/// One file of the rendered directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFile {
    /// Relative to the output directory.
    pub path: String,
    pub text: String,
}

pub fn capacity_name(c: Capacity) -> &'static str {
    match c {
        Capacity::Spot => "spot",
        Capacity::OnDemand => "on-demand",
    }
}

/// The example Karpenter NodePools, outside the kustomization.
pub const NODE_POOLS: &str = "karpenter/nodepools.yaml";

/// The longest pool name: `spotenc-worker-` + name must stay a DNS label
/// (63 characters).
const MAX_POOL_NAME: usize = 63 - "spotenc-worker-".len();

fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Everything a render needs that can be wrong, checked before anything is
/// written. The error names the pool (or option) and the field.
fn check(catalogue: &Catalogue, o: &RenderOptions) -> Result<String, String> {
    if catalogue.pools.is_empty() {
        return Err("the catalogue has no pools".into());
    }
    if !is_dns_label(&o.namespace, 63) {
        return Err(format!(
            "--namespace {:?} is not a DNS label (lower-case letters, digits and '-', at most 63)",
            o.namespace
        ));
    }
    let tag_ok = !o.image_tag.is_empty()
        && o.image_tag.len() <= 128
        && !o.image_tag.starts_with(['.', '-'])
        && o.image_tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !tag_ok {
        return Err(format!(
            "--image-tag {:?} is not a valid image tag",
            o.image_tag
        ));
    }
    if !(10..=MAX_NOTICE_DEADLINE_SECONDS).contains(&o.notice_deadline_seconds) {
        return Err(format!(
            "--notice-deadline-seconds {} is invalid (expected 10..={MAX_NOTICE_DEADLINE_SECONDS}: a spot notice gives 120 s)",
            o.notice_deadline_seconds
        ));
    }
    if let RedisChoice::External(url) = &o.redis {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!(
                "--redis-url {url:?} is invalid (expected redis://host:port/db or rediss://...)"
            ));
        }
    }
    if o.coordinator_replicas == 0 {
        return Err("--coordinator-replicas 0: nothing would serve the fleet".into());
    }
    for p in catalogue.pools.values() {
        check_pool(p)?;
    }
    let baseline = match &o.baseline_pool {
        Some(name) => {
            let p = catalogue
                .get(name)
                .ok_or_else(|| format!("--baseline-pool {name:?} is not in the catalogue"))?;
            if p.capacity != Capacity::OnDemand {
                return Err(format!("--baseline-pool {name:?} is not an on-demand pool"));
            }
            p.name.clone()
        }
        None => catalogue
            .pools
            .values()
            .filter(|p| p.capacity == Capacity::OnDemand)
            .min_by(|a, b| {
                (a.hardware != Hardware::Cpu)
                    .cmp(&(b.hardware != Hardware::Cpu))
                    .then(a.price_per_hour.total_cmp(&b.price_per_hour))
            })
            .map(|p| p.name.clone())
            .unwrap_or_default(),
    };
    Ok(baseline)
}

/// One pool's part of the render's checks (the operator runs it on each
/// WorkerPool): the error names the pool and the field.
pub fn check_pool(p: &Pool) -> Result<(), String> {
    let bad = |field: &str, why: String| format!("pool {:?}: {field} {why}", p.name);
    if !is_dns_label(&p.name, MAX_POOL_NAME) {
        return Err(bad(
            "name",
            format!(
                "is not a DNS label (lower-case letters, digits and '-', at most {MAX_POOL_NAME} characters); Kubernetes object names derive from it"
            ),
        ));
    }
    if p.hardware != Hardware::Cpu && p.gpus.is_none() {
        return Err(bad(
            "gpus",
            format!(
                "is missing: a {} pool must say how many GPUs an instance has",
                p.hardware.name()
            ),
        ));
    }
    if p.max_workers == 0 {
        return Err(bad(
            "max_workers",
            "is 0: the pool could never run a worker".into(),
        ));
    }
    if p.min_workers > p.max_workers {
        return Err(bad(
            "min_workers",
            format!("{} is above max_workers {}", p.min_workers, p.max_workers),
        ));
    }
    Ok(())
}

/// The minimum replicas of a pool: the catalogue's, and at least one for
/// the on-demand baseline pool.
fn min_replicas(p: &Pool, baseline: &str) -> u32 {
    if p.name == baseline {
        p.min_workers.max(1)
    } else {
        p.min_workers
    }
}

fn yaml_docs(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).expect("JSON values serialise as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The catalogue as `[[pools]]` TOML, every field written out, for the
/// coordinator's ConfigMap.
pub fn catalogue_toml(catalogue: &Catalogue) -> String {
    let mut out = String::from(
        "# The pool catalogue `spotenc deploy render` was given; the coordinator\n\
         # loads exactly these pools (builtin_pools = false).\n",
    );
    for p in catalogue.pools.values() {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: toml::Value| {
            t.insert(k.into(), v);
        };
        put("name", p.name.clone().into());
        put("capacity", capacity_name(p.capacity).into());
        put("instance_type", p.instance_type.clone().into());
        put(
            "zones",
            toml::Value::Array(p.zones.iter().cloned().map(Into::into).collect()),
        );
        put("hardware", p.hardware.name().into());
        if !p.gpu.is_empty() {
            put("gpu", p.gpu.clone().into());
        }
        if let Some(n) = p.gpus {
            put("gpus", i64::from(n).into());
        }
        put("vcpus", i64::from(p.vcpus).into());
        put("memory", p.memory_gib.into());
        put("slots", i64::from(p.slots).into());
        put("price_per_hour", p.price_per_hour.into());
        if let Some(od) = p.on_demand_price_per_hour {
            put("on_demand_price_per_hour", od.into());
        }
        put(
            "interruption_rate_per_hour",
            p.interruption_rate_per_hour.into(),
        );
        put("min_workers", i64::from(p.min_workers).into());
        put("max_workers", i64::from(p.max_workers).into());
        put("launch_seconds", i64::from(p.launch_seconds).into());
        if !p.source.is_empty() {
            put("source", p.source.clone().into());
        }
        let mut file = toml::Table::new();
        file.insert("pools".into(), toml::Value::Array(vec![t.into()]));
        out.push('\n');
        out.push_str(&toml::to_string(&file).expect("a TOML table serialises"));
    }
    out
}

/// One pool's objects exactly as [`render`] writes them: the worker
/// Deployment, its KEDA ScaledObject and its PodDisruptionBudget, with
/// `min_replicas` as their floor. The operator applies these.
pub fn pool_objects(o: &RenderOptions, p: &Pool, min_replicas: u32) -> Vec<Value> {
    objects::pool(o, p, min_replicas)
}

/// Renders the manifests, or says what in the catalogue or options would
/// make an invalid object. Nothing is written here.
pub fn render(catalogue: &Catalogue, o: &RenderOptions) -> Result<Vec<RenderedFile>, String> {
    let baseline = check(catalogue, o)?;
    let mut files: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    files.insert("namespace.yaml".into(), vec![objects::namespace(o)]);
    files.insert(
        "coordinator.yaml".into(),
        objects::coordinator(o, &catalogue_toml(catalogue)),
    );
    files.insert("monitoring.yaml".into(), objects::monitoring()?);
    if o.redis == RedisChoice::StatefulSet {
        files.insert("redis.yaml".into(), objects::redis());
    }
    for p in catalogue.pools.values() {
        files.insert(
            format!("pools/{}.yaml", p.name),
            pool_objects(o, p, min_replicas(p, &baseline)),
        );
    }
    let resources: Vec<String> = files.keys().cloned().collect();
    // Cluster-scoped and owned by whoever runs Karpenter: written beside
    // the kustomization, not in it (kustomize would give them a namespace).
    files.insert(NODE_POOLS.into(), objects::node_pools(o, catalogue));
    let kustomization = serde_json::json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": o.namespace,
        "labels": [{
            "pairs": {"app.kubernetes.io/part-of": "spotenc"},
            "includeSelectors": false,
        }],
        "resources": resources,
    });
    let header = format!(
        "# Rendered by `spotenc deploy render` from a pool catalogue of {} pools.\n\
         # Apply with `kubectl apply -k <dir>` (and {NODE_POOLS} with `kubectl apply -f`);\n\
         # re-render rather than edit.\n",
        catalogue.pools.len()
    );
    let mut out = vec![RenderedFile {
        path: "kustomization.yaml".into(),
        text: format!("{header}{}", yaml_docs(&[kustomization])),
    }];
    out.extend(files.into_iter().map(|(path, docs)| RenderedFile {
        path,
        text: format!("{header}{}", yaml_docs(&docs)),
    }));
    Ok(out)
}

/// Writes a render into `dir`: refused if `dir` holds anything unless
/// `force`; with `force`, files of an earlier render are replaced (others
/// are left alone).
pub fn write(dir: &std::path::Path, files: &[RenderedFile], force: bool) -> Result<(), String> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if entries.next().is_some() && !force {
            return Err(format!(
                "{} is not empty: pass --force to write over an earlier render",
                dir.display()
            ));
        }
    }
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &f.text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
