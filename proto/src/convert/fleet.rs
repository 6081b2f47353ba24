//! Workers, their GPUs and GPU telemetry, between [`crate::domain`] and
//! [`crate::pb`].

use super::missing;
use crate::domain as d;
use crate::{pb, Error, Result};

impl From<d::WorkerInfo> for pb::WorkerInfo {
    fn from(w: d::WorkerInfo) -> Self {
        pb::WorkerInfo {
            name: w.name,
            pool: w.pool,
            hardware: w.hardware,
            slots: w.slots,
            cores: w.cores,
            memory_bytes: w.memory_bytes,
            codecs: w
                .codecs
                .into_iter()
                .map(|c| pb::Codec::from(c) as i32)
                .collect(),
            instance_type: w.instance_type,
            zone: w.zone,
            capacity: pb::Capacity::from(w.capacity) as i32,
            gpus: w.gpus.into_iter().map(Into::into).collect(),
            encoder: w.encoder,
            encoder_params: w.encoder_params.into_iter().collect(),
        }
    }
}

impl From<d::GpuDevice> for pb::GpuDevice {
    fn from(g: d::GpuDevice) -> Self {
        pb::GpuDevice {
            index: g.index,
            name: g.name,
            uuid: g.uuid,
            pci_bus_id: g.pci_bus_id,
            memory_total_bytes: g.memory_total_bytes,
            driver_version: g.driver_version,
            nvenc: g
                .nvenc
                .into_iter()
                .map(|c| pb::NvencCodec {
                    codec: pb::Codec::from(c.codec) as i32,
                    max_width: c.max_width,
                    max_height: c.max_height,
                    ten_bit: c.ten_bit,
                    max_b_frames: c.max_b_frames,
                })
                .collect(),
            nvenc_unavailable: g.nvenc_unavailable,
        }
    }
}

impl TryFrom<pb::GpuDevice> for d::GpuDevice {
    type Error = Error;
    fn try_from(g: pb::GpuDevice) -> Result<Self> {
        let nvenc = g
            .nvenc
            .into_iter()
            .map(|c| {
                Ok(d::NvencCodec {
                    codec: pb::Codec::try_from(c.codec)
                        .map_err(|_| Error::invalid(format!("invalid codec value {}", c.codec)))?
                        .try_into()?,
                    max_width: c.max_width,
                    max_height: c.max_height,
                    ten_bit: c.ten_bit,
                    max_b_frames: c.max_b_frames,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(d::GpuDevice {
            index: g.index,
            name: g.name,
            uuid: g.uuid,
            pci_bus_id: g.pci_bus_id,
            memory_total_bytes: g.memory_total_bytes,
            driver_version: g.driver_version,
            nvenc,
            nvenc_unavailable: g.nvenc_unavailable,
        })
    }
}

impl From<d::GpuTelemetry> for pb::GpuTelemetry {
    fn from(t: d::GpuTelemetry) -> Self {
        pb::GpuTelemetry {
            index: t.index,
            gpu_util_pct: t.gpu_util_pct,
            encoder_util_pct: t.encoder_util_pct,
            decoder_util_pct: t.decoder_util_pct,
            encoder_sessions: t.encoder_sessions,
            encoder_fps: t.encoder_fps,
            encoder_latency_us: t.encoder_latency_us,
            memory_used_bytes: t.memory_used_bytes,
            temperature_c: t.temperature_c,
            power_mw: t.power_mw,
            graphics_clock_mhz: t.graphics_clock_mhz,
            memory_clock_mhz: t.memory_clock_mhz,
            video_clock_mhz: t.video_clock_mhz,
        }
    }
}

impl From<pb::GpuTelemetry> for d::GpuTelemetry {
    fn from(t: pb::GpuTelemetry) -> Self {
        d::GpuTelemetry {
            index: t.index,
            gpu_util_pct: t.gpu_util_pct,
            encoder_util_pct: t.encoder_util_pct,
            decoder_util_pct: t.decoder_util_pct,
            encoder_sessions: t.encoder_sessions,
            encoder_fps: t.encoder_fps,
            encoder_latency_us: t.encoder_latency_us,
            memory_used_bytes: t.memory_used_bytes,
            temperature_c: t.temperature_c,
            power_mw: t.power_mw,
            graphics_clock_mhz: t.graphics_clock_mhz,
            memory_clock_mhz: t.memory_clock_mhz,
            video_clock_mhz: t.video_clock_mhz,
        }
    }
}

impl From<d::WorkerStatus> for pb::WorkerStatus {
    fn from(w: d::WorkerStatus) -> Self {
        pb::WorkerStatus {
            worker_id: w.worker_id,
            info: Some(w.info.into()),
            registered_unix_ms: w.registered_unix_ms,
            last_seen_unix_ms: w.last_seen_unix_ms,
            gpus: w.gpus.into_iter().map(Into::into).collect(),
            withdrawn: w.withdrawn,
        }
    }
}

impl TryFrom<pb::WorkerInfo> for d::WorkerInfo {
    type Error = Error;
    fn try_from(w: pb::WorkerInfo) -> Result<Self> {
        if w.slots == 0 {
            return Err(Error::invalid("invalid slots 0 (expected >= 1)"));
        }
        let codecs = w
            .codecs
            .into_iter()
            .map(|c| {
                pb::Codec::try_from(c)
                    .map_err(|_| Error::invalid(format!("invalid codec value {c}")))?
                    .try_into()
            })
            .collect::<Result<Vec<d::Codec>>>()?;
        for (family, params) in &w.encoder_params {
            d::check_params(family, params)?;
        }
        let capacity = match pb::Capacity::try_from(w.capacity) {
            Ok(pb::Capacity::OnDemand) => d::Capacity::OnDemand,
            Ok(pb::Capacity::Spot) => d::Capacity::Spot,
            _ => return Err(missing("worker capacity (spot or on-demand)")),
        };
        Ok(d::WorkerInfo {
            instance_type: w.instance_type,
            zone: w.zone,
            capacity,
            name: w.name,
            pool: w.pool,
            hardware: w.hardware,
            slots: w.slots,
            cores: w.cores,
            memory_bytes: w.memory_bytes,
            codecs,
            gpus: w
                .gpus
                .into_iter()
                .map(d::GpuDevice::try_from)
                .collect::<Result<_>>()?,
            encoder: w.encoder,
            encoder_params: w.encoder_params.into_iter().collect(),
        })
    }
}

impl From<d::PoolStatus> for pb::PoolStatus {
    fn from(p: d::PoolStatus) -> Self {
        pb::PoolStatus {
            name: p.name,
            capacity: p.capacity,
            instance_type: p.instance_type,
            zones: p.zones,
            hardware: p.hardware,
            gpu: p.gpu,
            vcpus: p.vcpus,
            memory_gib: p.memory_gib,
            slots: p.slots,
            price_per_hour: p.price_per_hour,
            on_demand_price_per_hour: p.on_demand_price_per_hour,
            interruption_rate_per_hour: p.interruption_rate_per_hour,
            min_workers: p.min_workers,
            max_workers: p.max_workers,
            launch_seconds: p.launch_seconds,
            source: p.source,
            origin: p.origin,
            live_workers: p.live_workers,
            interruptions: p.interruptions,
            worker_hours: p.worker_hours,
            measured_interruption_rate_per_hour: p.measured_interruption_rate_per_hour,
        }
    }
}

impl From<d::CostEntry> for pb::CostEntry {
    fn from(c: d::CostEntry) -> Self {
        pb::CostEntry {
            class: c.class,
            family: c.family,
            codec: pb::Codec::from(c.codec) as i32,
            preset: c.preset,
            band: c.band,
            prior_pixels_per_second: c.prior_pixels_per_second,
            learned_pixels_per_second: c.learned_pixels_per_second,
            samples: c.samples,
            measured: c.measured,
            bits_per_pixel: c.bits_per_pixel,
            psnr: c.psnr,
            pools: c
                .pools
                .into_iter()
                .map(|(pool, dollars_per_output_minute)| pb::PoolPrice {
                    pool,
                    dollars_per_output_minute,
                })
                .collect(),
        }
    }
}

impl From<d::EncoderIdentity> for pb::EncoderIdentity {
    fn from(i: d::EncoderIdentity) -> Self {
        pb::EncoderIdentity {
            family: i.family,
            codec: pb::Codec::from(i.codec) as i32,
            ten_bit: i.ten_bit,
            params: i.params,
        }
    }
}

impl TryFrom<pb::EncoderIdentity> for d::EncoderIdentity {
    type Error = Error;
    fn try_from(i: pb::EncoderIdentity) -> Result<Self> {
        let codec = pb::Codec::try_from(i.codec)
            .map_err(|_| Error::invalid(format!("invalid codec value {}", i.codec)))?
            .try_into()?;
        if !i.params.is_empty() {
            d::check_params(&i.family, &i.params)?;
        }
        Ok(d::EncoderIdentity {
            family: i.family,
            codec,
            ten_bit: i.ten_bit,
            params: i.params,
        })
    }
}
