//! What this host can encode with, and the slots the worker registers.
//!
//! [`probe`] asks NVML for the GPUs and their telemetry, opens an NVENC
//! session on each CUDA device for its codecs and limits, looks for an
//! Intel GPU with the QSV runtime, and [`plan`]s the slots from that: NVENC
//! sessions per GPU, else QSV sessions, else CPU slots sized from cores and
//! memory. Every "no" carries the reason.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use spotenc_media::encode::{has_encoder, Hardware};
use spotenc_proto::domain::{GpuDevice, GpuTelemetry};

use crate::ffi;
use crate::nvml::Gpus;

/// Which encoder the slots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderChoice {
    /// NVENC if a GPU has it, else QSV if present, else software.
    Auto,
    /// NVENC even if the probe found none (it reports no NVENC caps, so its
    /// leases name libx264/libx265 and the slots encode on the CPU).
    Nvenc,
    Qsv,
    Software,
}

impl std::str::FromStr for EncoderChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => EncoderChoice::Auto,
            "nvenc" => EncoderChoice::Nvenc,
            "qsv" => EncoderChoice::Qsv,
            "software" | "cpu" => EncoderChoice::Software,
            other => {
                return Err(format!(
                    "invalid encoder {other:?} (expected auto, nvenc, qsv or software)"
                ))
            }
        })
    }
}

/// How the worker sizes its slots.
#[derive(Debug, Clone)]
pub struct Settings {
    pub encoder: EncoderChoice,
    /// Concurrent NVENC sessions per GPU (one per task: a task encodes one
    /// rendition).
    pub sessions_per_gpu: u32,
    /// Concurrent QSV sessions.
    pub qsv_sessions: u32,
    /// A GPU above this encoder utilisation gets no further sessions beyond
    /// its first.
    pub max_encoder_util_pct: u32,
    /// Slots for CPU capacity; `None`: from cores and memory.
    pub cpu_slots: Option<u32>,
    /// CPU slots on a host whose GPUs have CUDA but no NVENC (H100, H200)
    /// decode and scale on the GPU (NVDEC, scale_cuda) when set.
    pub gpu_decode: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Availability {
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Availability {
    fn yes() -> Self {
        Availability {
            available: true,
            reason: None,
        }
    }
    fn no(reason: impl Into<String>) -> Self {
        Availability {
            available: false,
            reason: Some(reason.into()),
        }
    }
}

/// One slot: its encoder, and the NVML index of its GPU (for the lease
/// gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPlan {
    pub hw: Hardware,
    pub gpu: Option<u32>,
    /// 0 for the first slot on a GPU, 1 for the second, ...
    pub rank: u32,
}

/// The slots the worker registers.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `gpu`, `qsv` or `cpu`: what the coordinator sees.
    pub hardware: String,
    /// `nvenc`, `qsv` or `libx264/libx265`.
    pub encoder: String,
    pub slots: u32,
    pub why: String,
    #[serde(skip)]
    pub slot_plans: Vec<SlotPlan>,
}

/// What `gpu-worker probe` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub nvml: Availability,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    pub gpus: Vec<GpuDevice>,
    pub telemetry: Vec<GpuTelemetry>,
    pub nvenc: Availability,
    pub qsv: Availability,
    /// Whether this FFmpeg build has each hardware encoder.
    pub ffmpeg_encoders: BTreeMap<String, bool>,
    pub plan: Plan,
}

/// `(domain, bus, device, function)` of a PCI address in NVML's
/// (`00000000:3B:00.0`) or CUDA's (`0000:3b:00.0`) spelling.
pub fn pci_address(s: &str) -> Option<(u32, u32, u32, u32)> {
    let mut parts = s.trim().split(':');
    let domain = u32::from_str_radix(parts.next()?, 16).ok()?;
    let bus = u32::from_str_radix(parts.next()?, 16).ok()?;
    let (dev, func) = parts.next()?.split_once('.')?;
    Some((
        domain,
        bus,
        u32::from_str_radix(dev, 16).ok()?,
        u32::from_str_radix(func, 16).ok()?,
    ))
}

/// Intel GPUs with a render node, from sysfs.
fn intel_render_nodes() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/drm") else {
        return Vec::new();
    };
    let mut nodes: Vec<String> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("renderD"))
        .filter(|n| {
            std::fs::read_to_string(format!("/sys/class/drm/{n}/device/vendor"))
                .is_ok_and(|v| v.trim() == "0x8086")
        })
        .collect();
    nodes.sort();
    nodes
}

fn qsv_availability(encoders: &BTreeMap<String, bool>) -> Availability {
    let nodes = intel_render_nodes();
    if nodes.is_empty() {
        return Availability::no("no Intel GPU render node under /sys/class/drm");
    }
    if !encoders["h264_qsv"] {
        return Availability::no("this FFmpeg build has no h264_qsv encoder");
    }
    if let Err(e) = ffi::library_loads("libmfx.so.1") {
        return Availability::no(format!(
            "Intel GPU at {} but the QSV runtime does not load: {e}",
            nodes.join(", ")
        ));
    }
    Availability::yes()
}

/// Probes the host. Also returns NVML, for the telemetry sampler.
pub fn probe(settings: &Settings) -> (Report, Option<Arc<Gpus>>) {
    let encoders: BTreeMap<String, bool> = ["h264_nvenc", "hevc_nvenc", "h264_qsv", "hevc_qsv"]
        .iter()
        .map(|e| (e.to_string(), has_encoder(e)))
        .collect();
    let (nvml, gpus_handle, mut gpus, telemetry, driver) = match Gpus::open() {
        Ok(g) => match g.devices() {
            Ok(devs) => {
                let t = g.telemetry();
                let d = g.driver_version();
                (Availability::yes(), Some(Arc::new(g)), devs, t, Some(d))
            }
            Err(e) => (Availability::no(e), None, Vec::new(), Vec::new(), None),
        },
        Err(e) => (Availability::no(e), None, Vec::new(), Vec::new(), None),
    };
    // NVML index -> CUDA ordinal, for GPUs whose NVENC opened, and for
    // every GPU CUDA can use.
    let mut usable: Vec<(u32, u32)> = Vec::new();
    let mut cuda: Vec<(u32, u32)> = Vec::new();
    let nvenc = match ffi::probe_nvenc() {
        Err(e) => {
            for g in &mut gpus {
                g.nvenc_unavailable = e.clone();
            }
            Availability::no(e)
        }
        Ok(devs) => {
            let mut reasons = Vec::new();
            for d in devs {
                let gpu = gpus
                    .iter_mut()
                    .find(|g| pci_address(&g.pci_bus_id) == pci_address(&d.pci_bus_id));
                if let Some(g) = &gpu {
                    cuda.push((g.index, d.cuda_ordinal));
                }
                match (&d.result, gpu) {
                    (Ok(codecs), Some(g)) if !codecs.is_empty() => {
                        g.nvenc = codecs.clone();
                        usable.push((g.index, d.cuda_ordinal));
                    }
                    (Ok(_), g) => {
                        let why = "NVENC lists no H.264 or HEVC encoder".to_string();
                        reasons.push(format!("{} ({}): {why}", d.name, d.pci_bus_id));
                        if let Some(g) = g {
                            g.nvenc_unavailable = why;
                        }
                    }
                    (Err(e), g) => {
                        reasons.push(format!("{} ({}): {e}", d.name, d.pci_bus_id));
                        if let Some(g) = g {
                            g.nvenc_unavailable = e.clone();
                        }
                    }
                }
            }
            if !usable.is_empty() && encoders["h264_nvenc"] {
                Availability::yes()
            } else if !usable.is_empty() {
                Availability::no("NVENC works but this FFmpeg build has no h264_nvenc")
            } else if reasons.is_empty() {
                Availability::no("CUDA reports no devices")
            } else {
                Availability::no(reasons.join("; "))
            }
        }
    };
    let qsv = qsv_availability(&encoders);
    let plan = plan(settings, &nvenc, &usable, &cuda, &qsv);
    (
        Report {
            nvml,
            driver_version: driver,
            gpus,
            telemetry,
            nvenc,
            qsv,
            ffmpeg_encoders: encoders,
            plan,
        },
        gpus_handle,
    )
}

/// Sizes the slots from what the probe found.
/// `usable`: (NVML index, CUDA ordinal) of the GPUs whose NVENC opened;
/// `cuda`: of every GPU CUDA can use. Long (about 105 lines): one rule per
/// kind of slot (NVENC, QSV, CPU), in the order they are preferred.
pub fn plan(
    s: &Settings,
    nvenc: &Availability,
    usable: &[(u32, u32)],
    cuda: &[(u32, u32)],
    qsv: &Availability,
) -> Plan {
    let use_nvenc = match s.encoder {
        EncoderChoice::Nvenc => true,
        EncoderChoice::Auto => nvenc.available,
        EncoderChoice::Qsv | EncoderChoice::Software => false,
    };
    if use_nvenc {
        // Forced without a usable GPU: one GPU's worth of sessions on
        // CUDA device 0, each falling back chunk by chunk.
        let gpus: Vec<(u32, u32)> = if usable.is_empty() {
            vec![(0, 0)]
        } else {
            usable.to_vec()
        };
        let per = s.sessions_per_gpu.max(1);
        let slot_plans: Vec<SlotPlan> = (0..per * gpus.len() as u32)
            .map(|i| {
                let (nvml, cuda) = gpus[(i as usize) % gpus.len()];
                SlotPlan {
                    hw: Hardware::Nvenc { gpu: cuda },
                    gpu: Some(nvml),
                    rank: i / gpus.len() as u32,
                }
            })
            .collect();
        let why = if nvenc.available {
            format!("{per} NVENC sessions on each of {} GPU(s)", gpus.len())
        } else {
            format!(
                "NVENC forced but unavailable ({}); no NVENC caps reported, so chunks come as libx264/libx265 and run on the CPU",
                nvenc.reason.clone().unwrap_or_default()
            )
        };
        return Plan {
            hardware: "gpu".into(),
            encoder: "nvenc".into(),
            slots: slot_plans.len() as u32,
            why,
            slot_plans,
        };
    }
    let use_qsv = match s.encoder {
        EncoderChoice::Qsv => true,
        EncoderChoice::Auto => qsv.available,
        EncoderChoice::Nvenc | EncoderChoice::Software => false,
    };
    if use_qsv {
        let n = s.qsv_sessions.max(1);
        return Plan {
            hardware: "qsv".into(),
            encoder: "qsv".into(),
            slots: n,
            why: format!("{n} QSV sessions"),
            slot_plans: (0..n)
                .map(|rank| SlotPlan {
                    hw: Hardware::Qsv,
                    gpu: None,
                    rank,
                })
                .collect(),
        };
    }
    let (cores, memory) = spotenc_worker::host_resources();
    let n = s
        .cpu_slots
        .unwrap_or_else(|| spotenc_worker::slots_for(cores, memory));
    let mut why = match s.encoder {
        EncoderChoice::Software => "software encoding asked for".to_string(),
        _ => format!(
            "no usable hardware encoder (NVENC: {}; QSV: {}); CPU capacity with slots from {cores} cores and {} MiB",
            nvenc.reason.clone().unwrap_or_default(),
            qsv.reason.clone().unwrap_or_default(),
            memory >> 20
        ),
    };
    let gpu_decode = s.gpu_decode && !cuda.is_empty();
    if gpu_decode {
        why.push_str(&format!("; decoding and scaling on {} GPU(s)", cuda.len()));
    }
    Plan {
        hardware: "cpu".into(),
        encoder: if gpu_decode {
            "libx264/libx265+nvdec".into()
        } else {
            "libx264/libx265".into()
        },
        slots: n,
        why,
        slot_plans: (0..n)
            .map(|i| {
                let (hw, gpu) = if gpu_decode {
                    let (nvml, ordinal) = cuda[(i as usize) % cuda.len()];
                    (Hardware::Nvdec { gpu: ordinal }, Some(nvml))
                } else {
                    (Hardware::Software, None)
                };
                SlotPlan { hw, gpu, rank: i }
            })
            .collect(),
    }
}

/// Encoder sessions the slots on `gpu` hold now (`in_use` by slot).
pub fn sessions_on(gpu: Option<u32>, slots: &[SlotPlan], in_use: &[u32]) -> u32 {
    slots
        .iter()
        .zip(in_use)
        .filter(|(s, _)| gpu.is_some() && s.gpu == gpu)
        .map(|(_, n)| *n)
        .sum()
}

/// Whether a slot may lease now: a GPU's first session always may; further
/// ones only while NVML reports its encoder below the limit (or cannot
/// say).
pub fn gate_open(slot: &SlotPlan, telemetry: &[GpuTelemetry], max_util_pct: u32) -> bool {
    let Some(gpu) = slot.gpu else { return true };
    if slot.rank == 0 {
        return true;
    }
    telemetry
        .iter()
        .find(|t| t.index == gpu)
        .and_then(|t| t.encoder_util_pct)
        .is_none_or(|u| u < max_util_pct)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(encoder: EncoderChoice) -> Settings {
        Settings {
            encoder,
            sessions_per_gpu: 3,
            qsv_sessions: 2,
            max_encoder_util_pct: 90,
            cpu_slots: Some(4),
            gpu_decode: false,
        }
    }

    #[test]
    fn pci_addresses_compare_across_nvml_and_cuda_spellings() {
        assert_eq!(pci_address("00000000:3B:00.0"), pci_address("0000:3b:00.0"));
        assert_ne!(pci_address("0000:3b:00.0"), pci_address("0000:3c:00.0"));
        assert_eq!(pci_address("junk"), None);
    }

    #[test]
    fn nvenc_sessions_spread_over_gpus_with_the_cuda_ordinal() {
        let yes = Availability::yes();
        let no = Availability::no("none");
        let p = plan(
            &settings(EncoderChoice::Auto),
            &yes,
            &[(0, 1), (1, 0)],
            &[],
            &no,
        );
        assert_eq!((p.hardware.as_str(), p.slots), ("gpu", 6));
        assert_eq!(p.slot_plans[0].hw, Hardware::Nvenc { gpu: 1 });
        assert_eq!(p.slot_plans[1].hw, Hardware::Nvenc { gpu: 0 });
        assert_eq!(p.slot_plans[2].rank, 1);
    }

    #[test]
    fn no_hardware_means_cpu_capacity_with_the_reasons() {
        let no = Availability::no("libcuda.so.1 does not load");
        let p = plan(
            &settings(EncoderChoice::Auto),
            &no,
            &[],
            &[],
            &Availability::no("no Intel GPU"),
        );
        assert_eq!((p.hardware.as_str(), p.slots), ("cpu", 4));
        assert!(p.slot_plans.iter().all(|s| s.hw == Hardware::Software));
        assert!(
            p.why.contains("libcuda.so.1") && p.why.contains("no Intel GPU"),
            "{}",
            p.why
        );
    }

    #[test]
    fn further_sessions_wait_while_the_encoder_is_busy() {
        let first = SlotPlan {
            hw: Hardware::Nvenc { gpu: 0 },
            gpu: Some(0),
            rank: 0,
        };
        let second = SlotPlan { rank: 1, ..first };
        let busy = [GpuTelemetry {
            index: 0,
            encoder_util_pct: Some(95),
            ..Default::default()
        }];
        assert!(gate_open(&first, &busy, 90));
        assert!(!gate_open(&second, &busy, 90));
        assert!(
            gate_open(&second, &[], 90),
            "no reading: do not hold work back"
        );
    }

    #[test]
    fn a_gpu_without_nvenc_can_still_decode_for_the_cpu_slots() {
        let no = Availability::no("nvEncOpenEncodeSessionEx: NV_ENC_ERR_UNSUPPORTED_DEVICE (2)");
        let mut s = settings(EncoderChoice::Auto);
        s.gpu_decode = true;
        let p = plan(&s, &no, &[], &[(0, 0)], &Availability::no("none"));
        assert_eq!(
            (p.hardware.as_str(), p.encoder.as_str()),
            ("cpu", "libx264/libx265+nvdec")
        );
        assert!(p
            .slot_plans
            .iter()
            .all(|s| s.hw == Hardware::Nvdec { gpu: 0 }));
        s.gpu_decode = false;
        let p = plan(&s, &no, &[], &[(0, 0)], &Availability::no("none"));
        assert!(p.slot_plans.iter().all(|s| s.hw == Hardware::Software));
    }

    #[test]
    fn sessions_are_counted_per_rendition_on_each_gpu() {
        let yes = Availability::yes();
        let no = Availability::no("-");
        let p = plan(
            &settings(EncoderChoice::Auto),
            &yes,
            &[(0, 0), (1, 1)],
            &[],
            &no,
        );
        // Slots alternate GPUs: 0, 2, 4 on GPU 0; 1, 3, 5 on GPU 1. Slot 0
        // runs a task with three renditions, slot 1 one with one.
        let in_use = [3, 1, 0, 0, 0, 0];
        assert_eq!(sessions_on(Some(0), &p.slot_plans, &in_use), 3);
        assert_eq!(sessions_on(Some(1), &p.slot_plans, &in_use), 1);
        assert_eq!(sessions_on(None, &p.slot_plans, &in_use), 0);
    }
}
