//! The `WorkerPool` custom resource. Its CRD is generated from these types
//! (`spotenc operator crd`); `deploy/crd/workerpool.yaml` is that output.

use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use spotenc_core::cost::catalogue::{Pool, PoolEntry};

/// How instances of the pool are bought.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    Spot,
    OnDemand,
}

/// What encodes on the pool's workers.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HardwareType {
    Cpu,
    Nvenc,
    Qsv,
}

/// One pool of the catalogue (the fields of a `[[pools]]` entry; the pool's
/// name is the object's name).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "spotenc.io",
    version = "v1alpha1",
    kind = "WorkerPool",
    namespaced,
    status = "WorkerPoolStatus",
    shortname = "wp",
    printcolumn = r#"{"name":"Capacity","type":"string","jsonPath":".spec.capacity"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.instanceType"}"#,
    printcolumn = r#"{"name":"Live","type":"integer","jsonPath":".status.observedWorkers"}"#,
    printcolumn = r#"{"name":"Busy","type":"integer","jsonPath":".status.busyWorkers"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".status.desiredWorkers"}"#,
    printcolumn = r#"{"name":"Health","type":"string","jsonPath":".status.health"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolSpec {
    pub capacity: CapacityType,
    /// e.g. g4dn.xlarge
    pub instance_type: String,
    #[serde(default)]
    pub zones: Vec<String>,
    pub hardware: HardwareType,
    /// GPU model (T4, A10G) for nvenc and qsv pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    /// GPUs per instance; required for nvenc and qsv pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    pub vcpus: u32,
    pub memory_gib: f64,
    /// Concurrent tasks (CPU) or NVENC sessions (GPU) per worker.
    pub slots: u32,
    pub price_per_hour: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_price_per_hour: Option<f64>,
    #[serde(default)]
    pub interruption_rate_per_hour: f64,
    #[serde(default)]
    pub min_workers: u32,
    pub max_workers: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_seconds: Option<u32>,
    /// Where the prices and rates come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What the coordinator sees of the pool.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolStatus {
    /// Workers heard from recently.
    pub observed_workers: u32,
    /// Workers holding leases.
    pub busy_workers: u32,
    /// The capacity planner's desired workers (what KEDA scales to).
    pub desired_workers: u32,
    /// healthy, reclaimed, unavailable, or unknown (coordinator unreachable).
    pub health: String,
    /// The planner's reason, or what the operator is waiting for.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl WorkerPool {
    /// The catalogue entry this pool is, validated like a `[[pools]]` table.
    pub fn to_pool(&self) -> Result<Pool, String> {
        let s = &self.spec;
        let entry = PoolEntry {
            name: self.metadata.name.clone().unwrap_or_default(),
            capacity: Some(
                match s.capacity {
                    CapacityType::Spot => "spot",
                    CapacityType::OnDemand => "on-demand",
                }
                .into(),
            ),
            instance_type: Some(s.instance_type.clone()),
            zones: Some(s.zones.clone()),
            hardware: Some(
                match s.hardware {
                    HardwareType::Cpu => "cpu",
                    HardwareType::Nvenc => "nvenc",
                    HardwareType::Qsv => "qsv",
                }
                .into(),
            ),
            gpu: s.gpu.clone(),
            gpus: s.gpus,
            vcpus: Some(s.vcpus),
            memory: Some(s.memory_gib),
            slots: Some(s.slots),
            price_per_hour: Some(s.price_per_hour),
            on_demand_price_per_hour: s.on_demand_price_per_hour,
            interruption_rate_per_hour: Some(s.interruption_rate_per_hour),
            min_workers: Some(s.min_workers),
            max_workers: Some(s.max_workers),
            launch_seconds: s.launch_seconds,
            source: s.source.clone(),
        };
        Pool::from_entry(&entry).map_err(|e| e.to_string())
    }
}

/// The CustomResourceDefinition, as YAML.
pub fn crd_yaml() -> String {
    format!(
        "# Generated by `spotenc operator crd` from operator/src/crd.rs; do not edit.\n{}",
        serde_yaml::to_string(&WorkerPool::crd()).expect("the CRD serialises")
    )
}
