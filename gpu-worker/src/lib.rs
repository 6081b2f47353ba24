//! gpu-worker: the spotenc worker for GPU hosts.
//!
//! Layout:
//! - [`nvml`]: GPU discovery and telemetry (model, memory, driver,
//!   encoder/decoder utilisation, encoder sessions and fps, temperature,
//!   power, clocks) through NVML, loaded at run time.
//! - `ffi`: loads `libcuda.so.1` and `libnvidia-encode.so.1` at run time
//!   and opens an NVENC session on each CUDA device for its codecs and
//!   limits; the only `unsafe` in this crate.
//! - [`probe`]: puts NVML, NVENC and QSV (Intel render node, FFmpeg
//!   encoder, libmfx) together into a [`probe::Report`], and plans the
//!   slots: NVENC sessions per GPU, else QSV sessions, else CPU slots from
//!   cores and memory. Also the lease gate that holds extra sessions back
//!   while a GPU's encoder is saturated.
//! - [`hooks`]: turns a plan into the shared runtime's hooks.
//!
//! Encoding goes through spotenc-media's hardware encoders, with a per-chunk
//! fallback to libx264/libx265; the runtime is spotenc-worker's.

#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod ffi;
pub mod nvml;
pub mod probe;

use std::sync::Arc;

use spotenc_worker::Hooks;

pub use ffi::nvenc_status;

/// The shared runtime's hooks for a plan: each slot's encoder, NVML
/// telemetry, and the NVENC lease gate: a slot leases only while its GPU
/// holds fewer than `sessions_per_gpu` sessions (counted per rendition) and,
/// beyond the GPU's first session, while NVML reports its encoder below
/// `max_util_pct`.
pub fn hooks(
    plan: &probe::Plan,
    gpus: Option<Arc<nvml::Gpus>>,
    max_util_pct: u32,
    sessions_per_gpu: u32,
) -> Hooks {
    let slots = plan.slot_plans.clone();
    let gate = (plan.encoder == "nvenc").then(|| {
        let slots = slots.clone();
        Arc::new(
            move |slot: u32, t: &[spotenc_proto::domain::GpuTelemetry], in_use: &[u32]| {
                let Some(me) = slots.get(slot as usize) else {
                    return true;
                };
                let used = probe::sessions_on(me.gpu, &slots, in_use);
                used < sessions_per_gpu && probe::gate_open(me, t, max_util_pct)
            },
        ) as spotenc_worker::LeaseGate
    });
    Hooks {
        encoders: slots.iter().map(|s| s.hw).collect(),
        telemetry: gpus.map(|g| Arc::new(move || g.telemetry()) as spotenc_worker::TelemetrySource),
        lease_gate: gate,
    }
}
