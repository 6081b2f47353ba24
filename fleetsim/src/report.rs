//! What a simulation measured, as a table or JSON. Deterministic: the same
//! inputs and seed give byte-identical output (no wall time in it).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

/// Per output minute, for reference (shared/facts/costs.md §4):
/// MediaConvert Basic HD, and Bitmovin's PAYG VOD HD as quoted there.
pub const MEDIACONVERT_PER_MINUTE: f64 = 0.015;
pub const BITMOVIN_PER_MINUTE: f64 = 0.009;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub jobs: u64,
    pub p50_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<f32>) -> Percentiles {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f32::total_cmp);
        let at = |q: f64| f64::from(v[((v.len() - 1) as f64 * q).round() as usize]);
        Percentiles {
            jobs: v.len() as u64,
            p50_s: at(0.50),
            p95_s: at(0.95),
            p99_s: at(0.99),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolReport {
    pub pool: String,
    pub on_demand: bool,
    pub price_per_hour: f64,
    pub launched: u64,
    pub peak_live: u32,
    pub instance_hours: f64,
    pub dollars: f64,
    pub interruptions: u64,
    pub hand_backs: u64,
    pub encode_tasks: u64,
    /// Its attempts priced at their slot's rate, and the rest of its bill
    /// (boots, idle, scale-in hold, billing minimums).
    pub work_dollars: f64,
    pub idle_dollars: f64,
}

/// Mean live workers of a pool over one hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub hour: u32,
    pub pool: String,
    pub workers: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub seed: u64,
    pub placement: String,
    pub chunk_seconds: f64,
    pub days: f64,
    pub jobs_submitted: u64,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub output_minutes: f64,
    /// Instance billing: per second, with the minimum per instance.
    pub dollars: f64,
    pub dollars_per_output_minute: f64,
    pub on_demand_dollars: f64,
    pub on_demand_share: f64,
    /// Attempts priced at their slot's rate (work, including waste).
    pub work_dollars: f64,
    /// Billed but not working: boot, idle, scale-in lag, minimums.
    pub idle_dollars: f64,
    /// Seconds of attempts lost to interruptions, and their dollars.
    pub waste_seconds: f64,
    pub waste_dollars: f64,
    pub interruptions: u64,
    pub hand_backs: u64,
    pub reclaims: u64,
    /// Jobs restarted under another encoder identity (their pinned one
    /// had no live pool for the affinity wait).
    pub identity_restarts: u64,
    pub leases: u64,
    pub events: u64,
    pub turnaround: BTreeMap<String, Percentiles>,
    pub pools: Vec<PoolReport>,
    /// The cost lower bound (see `bound`): every task on its cheapest
    /// capable pool, paying only its seconds there, within pool ceilings
    /// and affinity; and what it is per output minute and of the bill.
    pub bound_dollars: f64,
    pub bound_per_output_minute: f64,
    pub efficiency: f64,
    /// Pools whose ceilings bound it.
    pub ceilings_bind: Vec<String>,
    pub mediaconvert_per_minute: f64,
    pub bitmovin_per_minute: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<SeriesPoint>>,
}

impl Report {
    pub(crate) fn finish(
        &mut self,
        turnaround: BTreeMap<&'static str, Vec<f32>>,
        series: Option<Vec<SeriesPoint>>,
    ) {
        if self.output_minutes > 0.0 {
            self.dollars_per_output_minute = self.dollars / self.output_minutes;
        }
        if self.dollars > 0.0 {
            self.on_demand_share = self.on_demand_dollars / self.dollars;
        }
        self.idle_dollars = (self.dollars - self.work_dollars).max(0.0);
        if self.output_minutes > 0.0 {
            self.bound_per_output_minute = self.bound_dollars / self.output_minutes;
        }
        if self.dollars > 0.0 {
            self.efficiency = self.bound_dollars / self.dollars;
        }
        self.turnaround = turnaround
            .into_iter()
            .map(|(k, v)| (k.to_string(), Percentiles::of(v)))
            .collect();
        self.mediaconvert_per_minute = MEDIACONVERT_PER_MINUTE;
        self.bitmovin_per_minute = BITMOVIN_PER_MINUTE;
        self.series = series;
    }

    /// The report as text: totals, turnaround, and a table per pool.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "placement {}  chunk {} s  seed {}  {} days",
            self.placement, self.chunk_seconds, self.seed, self.days
        );
        let _ = writeln!(
            s,
            "jobs {} done of {} submitted, {} failed; {:.0} output minutes",
            self.jobs_done, self.jobs_submitted, self.jobs_failed, self.output_minutes
        );
        let _ = writeln!(
            s,
            "cost ${:.2}  = ${:.5} per output minute  (MediaConvert ${:.3}, Bitmovin ${:.3})",
            self.dollars,
            self.dollars_per_output_minute,
            self.mediaconvert_per_minute,
            self.bitmovin_per_minute
        );
        let _ = writeln!(
            s,
            "bound ${:.2} = ${:.5} per output minute; efficiency {:.2}{}",
            self.bound_dollars,
            self.bound_per_output_minute,
            self.efficiency,
            if self.ceilings_bind.is_empty() {
                String::new()
            } else {
                format!(" (ceilings bind: {})", self.ceilings_bind.join(", "))
            }
        );
        let _ = writeln!(
            s,
            "on-demand {:.1}% of dollars; idle ${:.2}; waste {:.0} s re-run = ${:.2}",
            self.on_demand_share * 100.0,
            self.idle_dollars,
            self.waste_seconds,
            self.waste_dollars
        );
        let _ = writeln!(
            s,
            "interruptions {} (hand-backs {}, pool reclaims {}); {} identity restarts; {} leases, {} events",
            self.interruptions,
            self.hand_backs,
            self.reclaims,
            self.identity_restarts,
            self.leases,
            self.events
        );
        for (k, p) in &self.turnaround {
            let _ = writeln!(
                s,
                "turnaround {k:<8} p50 {:>8.0} s  p95 {:>8.0} s  p99 {:>8.0} s  ({} jobs)",
                p.p50_s, p.p95_s, p.p99_s, p.jobs
            );
        }
        let _ = writeln!(
            s,
            "{:<24} {:>4} {:>8} {:>9} {:>10} {:>11} {:>7} {:>7} {:>9}  {:>10} {:>10}",
            "pool",
            "cap",
            "$/h",
            "launched",
            "peak live",
            "inst-hours",
            "intr",
            "hb",
            "encodes",
            "dollars",
            "idle"
        );
        for p in &self.pools {
            let _ = writeln!(
                s,
                "{:<24} {:>4} {:>8.4} {:>9} {:>10} {:>11.1} {:>7} {:>7} {:>9}  {:>10.2} {:>10.2}",
                p.pool,
                if p.on_demand { "od" } else { "spot" },
                p.price_per_hour,
                p.launched,
                p.peak_live,
                p.instance_hours,
                p.interruptions,
                p.hand_backs,
                p.encode_tasks,
                p.dollars,
                p.idle_dollars
            );
        }
        s
    }
}
