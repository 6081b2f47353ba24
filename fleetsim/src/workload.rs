//! The simulator's workload TOML, validated with the file, line and field
//! of the first problem (its pools file loads through
//! `spotenc_core::cost::pools`).

use std::path::Path;

use serde::Deserialize;
use spotenc_proto::domain::{Codec, JobSpec};

use spotenc_core::cost::capacity::CapacityPolicy;
use spotenc_core::cost::pools::{line_of, toml_error_text};

/// A month, for output minutes per month.
pub const MONTH_SECONDS: f64 = 30.0 * 86_400.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced arrivals at a constant rate.
    #[default]
    Uniform,
    /// A Poisson process at a constant rate.
    Poisson,
    /// A Poisson process whose rate follows the day: a sine with its peak
    /// at 14:00 and `diurnal_peak_ratio` between peak and trough.
    Diurnal,
}

/// One entry of the codec and resolution mix.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    #[serde(default = "medium")]
    pub preset: String,
    pub share: f64,
}

fn medium() -> String {
    "medium".into()
}

/// One entry of the job length distribution.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Length {
    pub minutes: f64,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interruptions {
    /// Overrides every spot pool's hourly hazard when set.
    pub spot_rate_per_hour: Option<f64>,
    /// Pool-wide reclaims (every worker of one spot pool at once) per day.
    #[serde(default)]
    pub reclaim_events_per_day: f64,
    #[serde(default = "notice")]
    pub notice_seconds: f64,
}

fn notice() -> f64 {
    120.0
}

impl Default for Interruptions {
    fn default() -> Self {
        Interruptions {
            spot_rate_per_hour: None,
            reclaim_events_per_day: 0.0,
            notice_seconds: notice(),
        }
    }
}

/// A region-wide window in which no spot launch succeeds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exhaustion {
    pub start_hour: f64,
    pub hours: f64,
}

/// The planner settings a workload may override.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CapacityOverrides {
    pub latency_target_seconds: Option<f64>,
    pub cost_target_seconds: Option<f64>,
    pub on_demand_baseline: Option<f64>,
    pub max_pool_share: Option<f64>,
    pub pool_reclaims_per_day: Option<f64>,
    pub reclaim_burst: Option<u32>,
    pub reclaim_window_seconds: Option<f64>,
    pub cooldown_seconds: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub output_minutes_per_month: f64,
    /// Days of arrivals simulated (the month is scaled to them).
    #[serde(default = "days")]
    pub days: f64,
    /// Share of jobs submitted with latency priority.
    #[serde(default)]
    pub latency_share: f64,
    #[serde(default)]
    pub arrival: Arrival,
    #[serde(default = "peak")]
    pub diurnal_peak_ratio: f64,
    #[serde(default = "chunk")]
    pub chunk_seconds: f64,
    #[serde(default = "fps")]
    pub fps: u32,
    /// Relative spread of real against predicted encode time (log-normal
    /// sigma); 0 runs at the prediction exactly.
    #[serde(default = "noise")]
    pub throughput_noise: f64,
    /// Fixed seconds each encode task spends beyond encoding: fetch, seek,
    /// warm-up, upload.
    #[serde(default = "overhead")]
    pub task_overhead_seconds: f64,
    #[serde(default = "wait")]
    pub escalate_after_wait_seconds: u32,
    #[serde(default = "autoscale")]
    pub autoscale_seconds: f64,
    /// The HPA scale-down stabilisation window.
    #[serde(default = "stabilise")]
    pub scale_in_window_seconds: f64,
    #[serde(default = "billing")]
    pub billing_minimum_seconds: f64,
    /// A job pinned to an encoder identity no live pool serves for this
    /// long restarts under another (`[placement] affinity_wait_seconds`).
    #[serde(default = "affinity_wait")]
    pub affinity_wait_seconds: f64,
    /// Placement: `cost` or `fifo`.
    #[serde(default = "cost")]
    pub placement: String,
    pub mix: Vec<Mix>,
    pub lengths: Vec<Length>,
    #[serde(default)]
    pub interruptions: Interruptions,
    pub exhaustion: Option<Exhaustion>,
    #[serde(default)]
    pub capacity: CapacityOverrides,
    /// Free text: the assumptions behind the scenario.
    #[serde(default)]
    pub assumptions: Vec<String>,
}

fn days() -> f64 {
    30.0
}
fn peak() -> f64 {
    3.0
}
fn chunk() -> f64 {
    JobSpec::DEFAULT_CHUNK_SECONDS
}
fn fps() -> u32 {
    30
}
fn noise() -> f64 {
    0.1
}
fn overhead() -> f64 {
    5.0
}
fn wait() -> u32 {
    JobSpec::DEFAULT_ESCALATE_AFTER_WAIT_SECONDS
}
fn autoscale() -> f64 {
    30.0
}
fn stabilise() -> f64 {
    300.0
}
fn billing() -> f64 {
    60.0
}
fn affinity_wait() -> f64 {
    300.0
}
fn cost() -> String {
    "cost".into()
}

impl Workload {
    /// Reads and validates a workload file.
    pub fn load(path: &Path) -> Result<Workload, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Workload::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a workload text; `file` names it in errors.
    /// Long (about 130 lines): one check per field, in file order.
    pub fn parse(text: &str, file: &str) -> Result<Workload, String> {
        let w: Workload = toml::from_str(text).map_err(|e| toml_error_text(text, file, &e))?;
        let at = |field: &str, nth: usize, why: String| {
            format!("{file}:{}: {field}: {why}", line_of(text, field, nth))
        };
        let positive = [
            ("output_minutes_per_month", w.output_minutes_per_month),
            ("days", w.days),
            ("diurnal_peak_ratio", w.diurnal_peak_ratio),
            ("chunk_seconds", w.chunk_seconds),
            ("autoscale_seconds", w.autoscale_seconds),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(at(field, 0, format!("must be above 0, not {v}")));
            }
        }
        let non_negative = [
            ("throughput_noise", w.throughput_noise),
            ("task_overhead_seconds", w.task_overhead_seconds),
            ("scale_in_window_seconds", w.scale_in_window_seconds),
            ("billing_minimum_seconds", w.billing_minimum_seconds),
            ("affinity_wait_seconds", w.affinity_wait_seconds),
            (
                "reclaim_events_per_day",
                w.interruptions.reclaim_events_per_day,
            ),
            (
                "spot_rate_per_hour",
                w.interruptions.spot_rate_per_hour.unwrap_or(0.0),
            ),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(at(field, 0, format!("must not be negative, not {v}")));
            }
        }
        if !(0.0..=1.0).contains(&w.latency_share) {
            return Err(at(
                "latency_share",
                0,
                format!("must be within 0..=1, not {}", w.latency_share),
            ));
        }
        if w.fps == 0 || w.fps > 240 {
            return Err(at("fps", 0, format!("must be 1..=240, not {}", w.fps)));
        }
        if !["cost", "fifo"].contains(&w.placement.as_str()) {
            return Err(at(
                "placement",
                0,
                format!("{:?} is not cost or fifo", w.placement),
            ));
        }
        if !(w.interruptions.notice_seconds.is_finite() && w.interruptions.notice_seconds >= 1.0) {
            return Err(at("notice_seconds", 0, "must be at least 1".into()));
        }
        if w.mix.is_empty() {
            return Err(format!("{file}: mix: at least one [[mix]] entry is needed"));
        }
        for (i, m) in w.mix.iter().enumerate() {
            if m.codec.parse::<Codec>().is_err() {
                return Err(at("codec", i, format!("{:?} is not h264 or hevc", m.codec)));
            }
            if m.width == 0 || m.height == 0 || m.width > 8192 || m.height > 8192 {
                return Err(at(
                    "width",
                    i,
                    format!("{}x{} is not 1..=8192 a side", m.width, m.height),
                ));
            }
            if !(m.share.is_finite() && m.share >= 0.0) {
                return Err(at(
                    "share",
                    i,
                    format!("must not be negative, not {}", m.share),
                ));
            }
        }
        let mix_sum: f64 = w.mix.iter().map(|m| m.share).sum();
        if (mix_sum - 1.0).abs() > 1e-6 {
            return Err(at(
                "share",
                0,
                format!("the [[mix]] shares sum to {mix_sum}, not 1"),
            ));
        }
        if w.lengths.is_empty() {
            return Err(format!(
                "{file}: lengths: at least one [[lengths]] entry is needed"
            ));
        }
        let mixes = w.mix.len();
        for (i, l) in w.lengths.iter().enumerate() {
            if !(l.minutes.is_finite() && l.minutes > 0.0 && l.minutes <= 24.0 * 60.0) {
                return Err(at(
                    "minutes",
                    i,
                    format!("must be within (0, 1440], not {}", l.minutes),
                ));
            }
            if !(l.share.is_finite() && l.share >= 0.0) {
                return Err(at(
                    "share",
                    mixes + i,
                    format!("must not be negative, not {}", l.share),
                ));
            }
        }
        let len_sum: f64 = w.lengths.iter().map(|l| l.share).sum();
        if (len_sum - 1.0).abs() > 1e-6 {
            return Err(at(
                "share",
                mixes,
                format!("the [[lengths]] shares sum to {len_sum}, not 1"),
            ));
        }
        if let Some(x) = &w.exhaustion {
            if !(x.start_hour.is_finite() && x.start_hour >= 0.0) {
                return Err(at("start_hour", 0, "must not be negative".into()));
            }
            if !(x.hours.is_finite() && x.hours > 0.0) {
                return Err(at("hours", 0, "must be above 0".into()));
            }
        }
        w.capacity_policy()
            .validate()
            .map_err(|e| format!("{file}: {e}"))?;
        Ok(w)
    }

    pub fn capacity_policy(&self) -> CapacityPolicy {
        let d = CapacityPolicy::default();
        let o = &self.capacity;
        CapacityPolicy {
            latency_target_seconds: o.latency_target_seconds.unwrap_or(d.latency_target_seconds),
            cost_target_seconds: o.cost_target_seconds.unwrap_or(d.cost_target_seconds),
            on_demand_baseline: o.on_demand_baseline.unwrap_or(d.on_demand_baseline),
            max_pool_share: o.max_pool_share.unwrap_or(d.max_pool_share),
            pool_reclaims_per_day: o.pool_reclaims_per_day.unwrap_or(d.pool_reclaims_per_day),
            max_cost_ratio: d.max_cost_ratio,
            reclaim_burst: o.reclaim_burst.unwrap_or(d.reclaim_burst),
            reclaim_window_seconds: o.reclaim_window_seconds.unwrap_or(d.reclaim_window_seconds),
            cooldown_seconds: o.cooldown_seconds.unwrap_or(d.cooldown_seconds),
        }
    }

    /// Mean job length in minutes.
    pub fn mean_minutes(&self) -> f64 {
        self.lengths.iter().map(|l| l.minutes * l.share).sum()
    }
}
