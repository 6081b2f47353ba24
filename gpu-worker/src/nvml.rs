//! GPU discovery and telemetry through NVML, loaded at run time by
//! nvml-wrapper: no driver means an `Err` that says why, never a link or
//! start-up failure.

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Nvml;
use spotenc_proto::domain::{GpuDevice, GpuTelemetry};

/// An initialised NVML.
pub struct Gpus {
    nvml: Nvml,
}

impl std::fmt::Debug for Gpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gpus")
    }
}

fn explain(e: NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(e) => {
            format!("libnvidia-ml.so.1 does not load ({e}): no NVIDIA driver installed")
        }
        NvmlError::DriverNotLoaded => "the NVIDIA kernel driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        other => format!("NVML: {other}"),
    }
}

impl Gpus {
    /// Loads NVML. Driver-only installs ship `libnvidia-ml.so.1` without
    /// the unversioned name nvml-wrapper looks for by default, so that is
    /// tried first.
    pub fn open() -> Result<Gpus, String> {
        let nvml = Nvml::builder()
            .lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1"))
            .init()
            .or_else(|_| Nvml::init())
            .map_err(explain)?;
        Ok(Gpus { nvml })
    }

    pub fn driver_version(&self) -> String {
        self.nvml.sys_driver_version().unwrap_or_default()
    }

    /// Every GPU NVML sees (NVENC fields empty: see `probe`).
    pub fn devices(&self) -> Result<Vec<GpuDevice>, String> {
        let n = self.nvml.device_count().map_err(explain)?;
        let driver = self.driver_version();
        let mut out = Vec::new();
        for index in 0..n {
            let d = self.nvml.device_by_index(index).map_err(explain)?;
            out.push(GpuDevice {
                index,
                name: d.name().unwrap_or_default(),
                uuid: d.uuid().unwrap_or_default(),
                pci_bus_id: d.pci_info().map(|p| p.bus_id).unwrap_or_default(),
                memory_total_bytes: d.memory_info().map(|m| m.total).unwrap_or_default(),
                driver_version: driver.clone(),
                nvenc: Vec::new(),
                nvenc_unavailable: String::new(),
            });
        }
        Ok(out)
    }

    /// One reading of every GPU; what NVML cannot read stays `None`.
    pub fn telemetry(&self) -> Vec<GpuTelemetry> {
        let n = self.nvml.device_count().unwrap_or(0);
        (0..n)
            .filter_map(|index| {
                let d = self.nvml.device_by_index(index).ok()?;
                let stats = d.encoder_stats().ok();
                Some(GpuTelemetry {
                    index,
                    gpu_util_pct: d.utilization_rates().ok().map(|u| u.gpu),
                    encoder_util_pct: d.encoder_utilization().ok().map(|u| u.utilization),
                    decoder_util_pct: d.decoder_utilization().ok().map(|u| u.utilization),
                    encoder_sessions: stats.as_ref().map(|s| s.session_count),
                    encoder_fps: stats.as_ref().map(|s| s.average_fps),
                    encoder_latency_us: stats.as_ref().map(|s| s.average_latency),
                    memory_used_bytes: d.memory_info().ok().map(|m| m.used),
                    temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
                    power_mw: d.power_usage().ok(),
                    graphics_clock_mhz: d.clock_info(Clock::Graphics).ok(),
                    memory_clock_mhz: d.clock_info(Clock::Memory).ok(),
                    video_clock_mhz: d.clock_info(Clock::Video).ok(),
                })
            })
            .collect()
    }
}
