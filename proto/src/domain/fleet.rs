//! Workers, their GPUs and telemetry, and the coordinator's views of the
//! pool catalogue and the cost model.

use serde::{Deserialize, Serialize};

use super::{Capacity, Codec};

/// A worker's self-description at registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub pool: String,
    pub hardware: String,
    pub slots: u32,
    pub cores: u32,
    pub memory_bytes: u64,
    pub codecs: Vec<Codec>,
    pub instance_type: String,
    pub zone: String,
    pub capacity: Capacity,
    /// GPUs found with NVML at start-up.
    #[serde(default)]
    pub gpus: Vec<GpuDevice>,
    /// The encoder family the slots use: `libx264/libx265`, `nvenc`, `qsv`.
    #[serde(default)]
    pub encoder: String,
    /// The operator's encoder parameters by family (`libx264`,
    /// `libx265`): part of the identities this worker produces.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub encoder_params: std::collections::BTreeMap<String, String>,
}

/// One GPU as a worker found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// NVML index.
    pub index: u32,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    pub memory_total_bytes: u64,
    pub driver_version: String,
    /// What NVENC encodes here; empty when it is not usable.
    pub nvenc: Vec<NvencCodec>,
    /// Why NVENC is not usable here (empty when it is).
    pub nvenc_unavailable: String,
}

/// One codec NVENC supports on a GPU, with its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvencCodec {
    pub codec: Codec,
    pub max_width: u32,
    pub max_height: u32,
    pub ten_bit: bool,
    pub max_b_frames: u32,
}

/// One NVML reading of one GPU; `None` where NVML could not read a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuTelemetry {
    pub index: u32,
    pub gpu_util_pct: Option<u32>,
    pub encoder_util_pct: Option<u32>,
    pub decoder_util_pct: Option<u32>,
    pub encoder_sessions: Option<u32>,
    pub encoder_fps: Option<u32>,
    pub encoder_latency_us: Option<u32>,
    pub memory_used_bytes: Option<u64>,
    pub temperature_c: Option<u32>,
    pub power_mw: Option<u32>,
    pub graphics_clock_mhz: Option<u32>,
    pub memory_clock_mhz: Option<u32>,
    pub video_clock_mhz: Option<u32>,
}

/// A worker as a coordinator last heard from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub worker_id: String,
    pub info: WorkerInfo,
    pub registered_unix_ms: i64,
    pub last_seen_unix_ms: i64,
    pub gpus: Vec<GpuTelemetry>,
    /// Hardware encoder families withdrawn after a failure.
    #[serde(default)]
    pub withdrawn: Vec<String>,
}

/// One catalogue pool as a coordinator sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    pub capacity: String,
    pub instance_type: String,
    pub zones: Vec<String>,
    pub hardware: String,
    pub gpu: String,
    pub vcpus: u32,
    pub memory_gib: f64,
    pub slots: u32,
    pub price_per_hour: f64,
    pub on_demand_price_per_hour: f64,
    pub interruption_rate_per_hour: f64,
    pub min_workers: u32,
    pub max_workers: u32,
    pub launch_seconds: u32,
    pub source: String,
    /// `builtin`, `file` or `derived`.
    pub origin: String,
    pub live_workers: u32,
    pub interruptions: u32,
    pub worker_hours: f64,
    pub measured_interruption_rate_per_hour: f64,
}

/// One key of the codec cost model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEntry {
    pub class: String,
    pub family: String,
    pub codec: Codec,
    pub preset: String,
    pub band: String,
    pub prior_pixels_per_second: f64,
    pub learned_pixels_per_second: f64,
    pub samples: u64,
    /// Encodes whose output was measured, and what they delivered: mean
    /// bits per pixel and mean PSNR (dB).
    pub measured: u64,
    pub bits_per_pixel: Option<f64>,
    pub psnr: Option<f64>,
    /// (pool, dollars per output minute at 1080p30).
    pub pools: Vec<(String, f64)>,
}
