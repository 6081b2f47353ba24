//! The codec cost model: the throughput of one slot, in output pixels per
//! second, for a key of (instance type or hardware class, encoder family,
//! codec, preset, output resolution band). Priors come from the table
//! below; completed encodes teach it.
//!
//! **Priors** (sources in `shared/facts/costs.md` §1, §2 and §7):
//! - NVENC, per engine at 1080p and preset P4 (the default, interpolated
//!   between P3 and P5 of NVIDIA's NVENC application note table): T4
//!   370 fps H.264 and 350 fps HEVC (Turing, derated ×0.85 for the T4's
//!   clock); A10G 440 and 400. An engine is shared by the worker's slots,
//!   so one slot gets engine / slots.
//! - QSV: 250 fps at 1080p for both codecs, an assumption with no measured
//!   source yet.
//! - libx264 medium: 5 fps per vCPU at 1080p, 85% of vCPUs usable;
//!   libx265 medium: 0.9 fps per vCPU (about 5× slower than x264, as the
//!   H.264/HEVC managed-service price ratio also says).
//! - Presets scale speed relative to medium: x264 from the FFmpeg wiki's
//!   timings (ultrafast 4.4×, superfast 2.9×, veryfast 2.2×, faster 1.5×,
//!   fast 1.2×, slow 0.72×, slower 0.38×, veryslow 0.19×); x265 veryfast
//!   2.2× and slow 0.44× from §7, the rest assumed alike; NVENC maps the
//!   x264 names onto P1..P7 (ultrafast/superfast P1 2.3×, veryfast/faster
//!   P3 1.6×, fast/medium P4, slow P5 0.73×, slower and slower still P7
//!   0.62×).
//! - Pixel scaling: throughput in pixels per second is roughly constant
//!   across sizes (§1); small frames do a little better and 4K a little
//!   worse (band factors 1.1, 1.05, 1.0, 0.9; x265 at 4K 0.8).
//!
//! **Estimator**: a prior-weighted running mean of observed throughput,
//! `(k·prior + Σ observed) / (k + n)` with `k` = [`PRIOR_WEIGHT`] samples.
//! It needs only a count and a sum per key, which both stores update
//! atomically (Redis `HINCRBY`/`HINCRBYFLOAT`), so replicas share it and a
//! restart keeps it. A multi-rendition encode apportions its wall time to
//! each rendition's key in proportion to that key's predicted time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spotenc_proto::domain::Codec;

use super::catalogue::{Hardware, Pool};

/// How many observations the prior counts as.
pub const PRIOR_WEIGHT: f64 = 3.0;
/// 1920×1080.
pub const PIXELS_1080P: f64 = 1920.0 * 1080.0;

/// Every output resolution band, smallest first.
pub const BANDS: [&str; 4] = ["sd", "hd720", "hd1080", "uhd"];

/// Output resolution bands.
pub fn band(width: u32, height: u32) -> &'static str {
    BANDS[band_index(width, height)]
}

/// [`band`] as its index in [`BANDS`].
fn band_index(width: u32, height: u32) -> usize {
    let px = u64::from(width) * u64::from(height);
    match px {
        0..=409_920 => 0,         // sd: up to 854×480
        409_921..=921_600 => 1,   // hd720: up to 1280×720
        921_601..=2_211_840 => 2, // hd1080: up to 2048×1080
        _ => 3,                   // uhd
    }
}

/// The encoder a slot uses for a codec, at 8 or (`ten_bit`) 10 bits.
pub fn family(
    hardware: Hardware,
    nvenc_codecs: &[Codec],
    codec: Codec,
    ten_bit: bool,
) -> &'static str {
    let base = match hardware {
        Hardware::Nvenc if nvenc_codecs.contains(&codec) => "nvenc",
        Hardware::Qsv => "qsv",
        _ => codec.software_encoder(),
    };
    with_depth(base, ten_bit)
}

/// A family keyed by bit depth: 10-bit work learns and is priced apart
/// from 8-bit (`libx265-10`), 8-bit keeps the plain name (and every key
/// stored before depth was keyed).
pub fn with_depth(base: &str, ten_bit: bool) -> &'static str {
    match (base, ten_bit) {
        ("nvenc", false) => "nvenc",
        ("nvenc", true) => "nvenc-10",
        ("qsv", false) => "qsv",
        ("qsv", true) => "qsv-10",
        ("libx265", false) => "libx265",
        ("libx265", true) => "libx265-10",
        (_, false) => "libx264",
        (_, true) => "libx264-10",
    }
}

/// How much of the 8-bit throughput a 10-bit encode of `base` keeps.
/// Measured on this project's 2-core machine (100 frames of 1080p, medium,
/// 2 threads, from the same 10-bit source): libx264 10.42 s at 10 bits
/// against 7.93 s at 8, libx265 12.88 s against 11.83 s. NVENC and QSV
/// were not measured (no hardware here): taken as equal.
fn ten_bit_factor(base: &str) -> f64 {
    match base {
        "libx264" => 0.76,
        "libx265" => 0.92,
        _ => 1.0,
    }
}

/// One key of the model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// Instance type, or the hardware class (`cpu`, `nvenc`, `qsv`).
    pub class: String,
    pub family: String,
    pub codec: Codec,
    pub preset: String,
    pub band: String,
}

impl Key {
    /// The form both stores keep the key in.
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.class,
            self.family,
            self.codec.name(),
            self.preset,
            self.band
        )
    }

    pub fn decode(s: &str) -> Option<Key> {
        let mut it = s.split('|');
        let k = Key {
            class: it.next()?.to_string(),
            family: it.next()?.to_string(),
            codec: it.next()?.parse().ok()?,
            preset: it.next()?.to_string(),
            band: it.next()?.to_string(),
        };
        it.next().is_none().then_some(k)
    }
}

/// What a store keeps per key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    pub n: u64,
    /// Sum of observed pixels per second.
    pub sum: f64,
    /// Encodes whose quality was measured, with the sums of their output
    /// bits per pixel and mean PSNR (dB).
    #[serde(default)]
    pub measured: u64,
    #[serde(default)]
    pub bits_per_pixel_sum: f64,
    #[serde(default)]
    pub psnr_sum: f64,
}

impl Samples {
    /// Mean output bits per pixel, once measured.
    pub fn bits_per_pixel(&self) -> Option<f64> {
        (self.measured > 0).then(|| self.bits_per_pixel_sum / self.measured as f64)
    }

    /// Mean delivered PSNR (dB), once measured.
    pub fn psnr(&self) -> Option<f64> {
        (self.measured > 0).then(|| self.psnr_sum / self.measured as f64)
    }
}

/// One observation: a key, the throughput seen and, when the output was
/// measured, what it delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub key: Key,
    pub pixels_per_second: f64,
    pub delivered: Option<Delivered>,
}

/// What one measured output delivered: bits per pixel and mean PSNR.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivered {
    pub bits_per_pixel: f64,
    pub psnr: f64,
}

/// The shape of a worker the prior is computed for.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub hardware: Hardware,
    pub gpu: String,
    pub vcpus: u32,
    pub slots: u32,
}

impl From<&Pool> for Shape {
    fn from(p: &Pool) -> Self {
        Shape {
            hardware: p.hardware,
            gpu: p.gpu.clone(),
            vcpus: p.vcpus,
            slots: p.slots,
        }
    }
}

fn x264_preset(preset: &str) -> f64 {
    match preset {
        "ultrafast" => 4.4,
        "superfast" => 2.9,
        "veryfast" => 2.2,
        "faster" => 1.5,
        "fast" => 1.2,
        "slow" => 0.72,
        "slower" => 0.38,
        "veryslow" => 0.19,
        "placebo" => 0.06,
        _ => 1.0,
    }
}

fn x265_preset(preset: &str) -> f64 {
    match preset {
        "ultrafast" => 4.0,
        "superfast" => 3.0,
        "veryfast" => 2.2,
        "faster" => 1.6,
        "fast" => 1.25,
        "slow" => 0.44,
        "slower" => 0.2,
        "veryslow" => 0.1,
        "placebo" => 0.03,
        _ => 1.0,
    }
}

fn nvenc_preset(preset: &str) -> f64 {
    match preset {
        "ultrafast" | "superfast" => 2.3,
        "veryfast" | "faster" => 1.6,
        "slow" => 0.73,
        "slower" | "veryslow" | "placebo" => 0.62,
        _ => 1.0,
    }
}

fn band_factor(band: &str, family: &str) -> f64 {
    let family = family.strip_suffix("-10").unwrap_or(family);
    match (band, family) {
        ("sd", _) => 1.1,
        ("hd720", _) => 1.05,
        ("uhd", "libx265") => 0.8,
        ("uhd", _) => 0.9,
        _ => 1.0,
    }
}

/// The prior throughput of one slot, in output pixels per second.
pub fn prior(key: &Key, shape: &Shape) -> f64 {
    prior_of(&key.family, key.codec, &key.preset, &key.band, shape)
}

/// [`prior`] from a key's parts.
fn prior_of(family: &str, codec: Codec, preset: &str, band: &str, shape: &Shape) -> f64 {
    let slots = f64::from(shape.slots.max(1));
    let (base, depth) = match family.strip_suffix("-10") {
        Some(base) => (base, ten_bit_factor(base)),
        None => (family, 1.0),
    };
    let fps_1080 = depth
        * match base {
            "nvenc" => {
                let a10g = shape.gpu.contains("A10");
                let engine = match (codec, a10g) {
                    (Codec::H264, false) => 370.0,
                    (Codec::Hevc, false) => 350.0,
                    (Codec::H264, true) => 440.0,
                    (Codec::Hevc, true) => 400.0,
                };
                engine * nvenc_preset(preset) / slots
            }
            "qsv" => 250.0 * nvenc_preset(preset) / slots,
            "libx265" => 0.9 * 0.85 * f64::from(shape.vcpus) * x265_preset(preset) / slots,
            _ => 5.0 * 0.85 * f64::from(shape.vcpus) * x264_preset(preset) / slots,
        };
    fps_1080 * PIXELS_1080P * band_factor(band, family)
}

/// The learned state of every key, as the stores keep it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub samples: BTreeMap<String, Samples>,
}

impl Model {
    /// Predicted pixels per second of one slot for `key` on `shape`.
    pub fn throughput(&self, key: &Key, shape: &Shape) -> f64 {
        let p = prior(key, shape);
        if self.samples.is_empty() {
            return p;
        }
        match self.samples.get(&key.encode()) {
            Some(s) if s.n > 0 => (PRIOR_WEIGHT * p + s.sum) / (PRIOR_WEIGHT + s.n as f64),
            _ => p,
        }
    }

    /// [`Model::throughput`] from a key's parts, allocating only to look
    /// up learned samples.
    pub fn throughput_of(
        &self,
        class: &str,
        family: &str,
        codec: Codec,
        preset: &str,
        band: &str,
        shape: &Shape,
    ) -> f64 {
        let p = prior_of(family, codec, preset, band, shape);
        if self.samples.is_empty() {
            return p;
        }
        let key = format!("{class}|{family}|{}|{preset}|{band}", codec.name());
        match self.samples.get(&key) {
            Some(s) if s.n > 0 => (PRIOR_WEIGHT * p + s.sum) / (PRIOR_WEIGHT + s.n as f64),
            _ => p,
        }
    }

    /// Adds observations (what the stores do atomically).
    pub fn learn(&mut self, obs: &[Observation]) {
        for o in obs {
            let s = self.samples.entry(o.key.encode()).or_default();
            s.n += 1;
            s.sum += o.pixels_per_second;
            if let Some(d) = o.delivered {
                s.measured += 1;
                s.bits_per_pixel_sum += d.bits_per_pixel;
                s.psnr_sum += d.psnr;
            }
        }
    }

    /// Output bits per pixel learned for `key`; from the same encoder,
    /// codec, preset and size on any instance class when its own has none
    /// (bits do not depend on the machine). `None` before any was
    /// measured.
    pub fn bits_per_pixel(&self, key: &Key) -> Option<f64> {
        if let Some(b) = self
            .samples
            .get(&key.encode())
            .and_then(Samples::bits_per_pixel)
        {
            return Some(b);
        }
        let rest = Key {
            class: String::new(),
            ..key.clone()
        }
        .encode();
        let (sum, n) = self
            .samples
            .iter()
            .filter(|(k, _)| k.split_once('|').is_some_and(|(_, r)| rest[1..] == *r))
            .fold((0.0, 0u64), |(sum, n), (_, s)| {
                (sum + s.bits_per_pixel_sum, n + s.measured)
            });
        (n > 0).then(|| sum / n as f64)
    }
}

/// One output of an encode task, as placement and the model see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Output {
    pub codec: Codec,
    pub preset: String,
    pub width: u32,
    pub height: u32,
    /// 10 bits per sample: NVENC encodes it only where the GPU says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ten_bit: bool,
}

/// What a task asks of a slot: its outputs and frames; empty outputs for
/// probe, audio and stitch tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    pub outputs: Vec<Output>,
    pub frames: u64,
    /// An audio task's work; `None` for other tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioWork>,
}

/// Every queue class but `misc`, by codec then band (as [`BANDS`]).
const CLASSES: [[&str; 4]; 2] = [
    ["h264-sd", "h264-hd720", "h264-hd1080", "h264-uhd"],
    ["hevc-sd", "hevc-hd720", "hevc-hd1080", "hevc-uhd"],
];

fn codec_index(codec: Codec) -> usize {
    match codec {
        Codec::H264 => 0,
        Codec::Hevc => 1,
    }
}

/// Seconds a task without outputs (probe, stitch, and audio tasks made
/// before they said their work) is assumed to take.
pub const SMALL_TASK_SECONDS: f64 = 5.0;

/// One audio task's work: a track of `seconds` with `channels`, encoded to
/// AAC or copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioWork {
    pub seconds: f64,
    pub channels: u32,
    pub encode: bool,
}

impl AudioWork {
    /// Seconds of one core per channel-second of AAC encode: the ffmpeg
    /// CLI encoded 120 s of stereo in 2.50 s and of 5.1 in 5.26 s on this
    /// project's machine (0.0104 and 0.0073 a channel-second).
    pub const ENCODE_SECONDS_PER_CHANNEL_SECOND: f64 = 0.0104;
    /// Reading the whole source to copy or encode one track, a second of
    /// source (demuxing a 1080p source at about 500x real time).
    pub const READ_SECONDS_PER_SECOND: f64 = 0.002;

    /// Predicted seconds on one slot, never below the small-task floor.
    pub fn seconds(&self) -> f64 {
        let encode = if self.encode {
            self.seconds * f64::from(self.channels.max(1)) * Self::ENCODE_SECONDS_PER_CHANNEL_SECOND
        } else {
            0.0
        };
        (encode + self.seconds * Self::READ_SECONDS_PER_SECOND).max(SMALL_TASK_SECONDS)
    }
}

impl Demand {
    /// Predicted seconds of a task without video outputs: its audio work,
    /// else [`SMALL_TASK_SECONDS`].
    fn small_task_seconds(&self) -> f64 {
        self.audio.map_or(SMALL_TASK_SECONDS, |a| a.seconds())
    }

    /// The queue class the Redis store indexes pending tasks by: codec and
    /// band of the first output, `misc` for tasks without outputs.
    pub fn class(&self) -> &'static str {
        match self.outputs.first() {
            None => "misc",
            Some(o) => CLASSES[codec_index(o.codec)][band_index(o.width, o.height)],
        }
    }

    /// [`Demand::class`] as a number that sorts as the class names do:
    /// the embedded store's index keys its queues by it, so no name is
    /// compared as a task moves.
    pub fn class_rank(&self) -> u8 {
        // BANDS' names sorted: hd1080, hd720, sd, uhd.
        const RANK: [u8; 4] = [2, 1, 0, 3];
        match self.outputs.first() {
            None => 8,
            Some(o) => codec_index(o.codec) as u8 * 4 + RANK[band_index(o.width, o.height)],
        }
    }

    /// Every class [`Demand::class`] can return.
    pub fn classes() -> Vec<String> {
        // CLASSES is by codec then band: the order the Redis store lists
        // its queues in.
        let named = CLASSES.iter().flatten().map(|c| c.to_string());
        std::iter::once("misc".to_string()).chain(named).collect()
    }

    /// NVENC sessions the task holds: one per output.
    pub fn sessions(&self) -> u32 {
        self.outputs.len() as u32
    }

    /// The model key of each output on a worker of `class` and hardware.
    pub fn keys(&self, class: &str, hardware: Hardware, nvenc_codecs: &[Codec]) -> Vec<Key> {
        self.outputs
            .iter()
            .map(|o| Key {
                class: class.to_string(),
                family: family(hardware, nvenc_codecs, o.codec, o.ten_bit).into(),
                codec: o.codec,
                preset: o.preset.clone(),
                band: band(o.width, o.height).into(),
            })
            .collect()
    }

    /// Predicted seconds of each output on one slot (outputs share the
    /// slot, so the task takes their sum).
    pub fn seconds_each(&self, keys: &[Key], shape: &Shape, model: &Model) -> Vec<f64> {
        self.outputs
            .iter()
            .zip(keys)
            .map(|(o, k)| {
                let px = f64::from(o.width) * f64::from(o.height) * self.frames as f64;
                px / model.throughput(k, shape).max(1.0)
            })
            .collect()
    }

    /// Predicted seconds on one slot of a worker of `class` and
    /// `hardware` whose NVENC encodes the codecs (at the depths) `nvenc`
    /// accepts: the sum
    /// over outputs, as [`Demand::seconds`] with [`Demand::keys`], without
    /// building keys (placement calls it per candidate and pool).
    pub fn seconds_on(
        &self,
        class: &str,
        hardware: Hardware,
        nvenc: impl Fn(Codec, bool) -> bool,
        shape: &Shape,
        model: &Model,
    ) -> f64 {
        if self.outputs.is_empty() {
            return self.small_task_seconds();
        }
        self.outputs
            .iter()
            .map(|o| {
                let base = match hardware {
                    Hardware::Nvenc if nvenc(o.codec, o.ten_bit) => "nvenc",
                    Hardware::Qsv => "qsv",
                    _ => o.codec.software_encoder(),
                };
                let family = with_depth(base, o.ten_bit);
                let tp = model.throughput_of(
                    class,
                    family,
                    o.codec,
                    &o.preset,
                    band(o.width, o.height),
                    shape,
                );
                let px = f64::from(o.width) * f64::from(o.height) * self.frames as f64;
                px / tp.max(1.0)
            })
            .sum()
    }

    pub fn seconds(&self, keys: &[Key], shape: &Shape, model: &Model) -> f64 {
        if self.outputs.is_empty() {
            return self.small_task_seconds();
        }
        self.seconds_each(keys, shape, model).iter().sum()
    }

    /// Observations from a finished encode of `wall_seconds`, apportioned
    /// to each output by its predicted share.
    pub fn observe(
        &self,
        keys: &[Key],
        shape: &Shape,
        model: &Model,
        wall_seconds: f64,
    ) -> Vec<Observation> {
        if self.outputs.is_empty() || wall_seconds <= 0.0 || self.frames == 0 {
            return vec![];
        }
        let each = self.seconds_each(keys, shape, model);
        let total: f64 = each.iter().sum();
        self.outputs
            .iter()
            .zip(keys)
            .zip(each)
            .map(|((o, k), s)| {
                let share = if total > 0.0 { s / total } else { 1.0 };
                let px = f64::from(o.width) * f64::from(o.height) * self.frames as f64;
                Observation {
                    key: k.clone(),
                    pixels_per_second: px / (wall_seconds * share).max(1e-3),
                    delivered: None,
                }
            })
            .collect()
    }
}

/// The expected share of a task's time that an interruption wastes: the
/// chance of an interruption while it runs (hazard `rate_per_hour`) times
/// the work lost (half the task on average, plus 45 s of restart: pull,
/// seek, warm-up; costs.md §7).
pub fn waste(rate_per_hour: f64, seconds: f64) -> f64 {
    if seconds <= 0.0 || rate_per_hour <= 0.0 {
        return 0.0;
    }
    let p = 1.0 - (-rate_per_hour * seconds / 3600.0).exp();
    p * (seconds / 2.0 + 45.0) / seconds
}

/// Expected dollars for a task on a pool: price per slot-second × slots
/// held × predicted seconds × (1 + expected re-run waste).
pub fn expected_cost(pool: &Pool, sessions: u32, seconds: f64) -> f64 {
    let share = pool.share(sessions) * f64::from(pool.slots.max(1));
    pool.slot_price_per_second()
        * share
        * seconds
        * (1.0 + waste(pool.interruption_rate_per_hour, seconds))
}
