use super::workload::Workload;
use super::{simulate, Options};
use spotenc_core::cost::pools::parse_pools;

const POOLS_OD: &str = r#"
[[pools]]
name = "m5-4xlarge-ondemand"
min_workers = 4
max_workers = 4
"#;

const POOLS_MIX: &str = r#"
[[pools]]
name = "c6i-4xlarge-spot"
max_workers = 50
[[pools]]
name = "c7i-4xlarge-spot"
max_workers = 50
[[pools]]
name = "c6a-4xlarge-spot"
max_workers = 50
[[pools]]
name = "c6i-4xlarge-ondemand"
max_workers = 50
"#;

fn workload(extra: &str) -> Workload {
    workload_of(200_000, extra)
}

fn workload_of(minutes_per_month: u32, extra: &str) -> Workload {
    let text = format!(
        r#"
output_minutes_per_month = {minutes_per_month}
days = 1
throughput_noise = 0
task_overhead_seconds = 0
{extra}
[[mix]]
codec = "h264"
width = 1920
height = 1080
share = 1.0
[[lengths]]
minutes = 10
share = 1.0
"#
    );
    Workload::parse(&text, "test.toml").unwrap()
}

fn opts(seed: u64) -> Options {
    Options {
        seed,
        chunk_seconds: None,
        placement: None,
        series: false,
        ask_all: false,
    }
}

#[test]
fn same_seed_same_bytes() {
    let pools = parse_pools(POOLS_MIX, "pools.toml").unwrap();
    let w = workload("arrival = \"poisson\"\n[interruptions]\nspot_rate_per_hour = 0.05\nreclaim_events_per_day = 2");
    let a = serde_json::to_string(&simulate(&pools, &w, &opts(7))).unwrap();
    let b = serde_json::to_string(&simulate(&pools, &w, &opts(7))).unwrap();
    assert_eq!(a, b);
    let c = serde_json::to_string(&simulate(&pools, &w, &opts(8))).unwrap();
    assert_ne!(a, c, "the seed must matter");
}

#[test]
fn no_interruptions_no_waste_and_every_job_done() {
    let pools = parse_pools(POOLS_MIX, "pools.toml").unwrap();
    let w = workload("arrival = \"poisson\"\n[interruptions]\nspot_rate_per_hour = 0");
    let r = simulate(&pools, &w, &opts(1));
    assert!(r.jobs_submitted > 10, "{r:#?}");
    assert_eq!(r.jobs_done, r.jobs_submitted, "{}", r.table());
    assert_eq!(r.interruptions, 0);
    assert_eq!(r.waste_seconds, 0.0);
    assert_eq!(r.waste_dollars, 0.0);
    // With interruptions, waste appears and still every job finishes.
    let w = workload("arrival = \"poisson\"\n[interruptions]\nspot_rate_per_hour = 0.2");
    let r = simulate(&pools, &w, &opts(1));
    assert_eq!(r.jobs_done, r.jobs_submitted, "{}", r.table());
    assert!(r.hand_backs > 0 && r.waste_seconds > 0.0, "{}", r.table());
}

/// One on-demand pool of four always-on m5.4xlarge (two x264 slots of 8
/// vCPU each), 10-minute 1080p30 jobs arriving evenly, no noise and no
/// per-task overhead. Closed form: the bill is 4 × $0.768 × the makespan,
/// and the encode work is output frames ÷ (5 fps/vCPU × 0.85 × 8 vCPU)
/// slot-seconds, priced at $0.768 / 2 per slot-hour.
#[test]
fn closed_form_on_demand() {
    let pools = parse_pools(POOLS_OD, "pools.toml").unwrap();
    let w = workload("");
    let r = simulate(&pools, &w, &opts(3));
    assert_eq!(r.jobs_done, r.jobs_submitted);
    let pool = &r.pools[0];
    let makespan_h = pool.instance_hours / 4.0;
    let bill = 4.0 * 0.768 * makespan_h;
    assert!(
        (r.dollars - bill).abs() / bill < 0.02,
        "{} vs {bill}",
        r.dollars
    );
    let frames = r.output_minutes * 60.0 * 30.0;
    let slot_fps = 5.0 * 0.85 * 8.0;
    let encode_dollars = frames / slot_fps * 0.768 / 2.0 / 3600.0;
    // Work adds probe, audio and stitch tasks (5 s each per job).
    let small = r.jobs_done as f64 * 3.0 * 5.0 * 0.768 / 2.0 / 3600.0;
    let expect = encode_dollars + small;
    assert!(
        (r.work_dollars - expect).abs() / expect < 0.02,
        "work ${} vs closed form ${expect}\n{}",
        r.work_dollars,
        r.table()
    );
    // One pool and constant arrivals: the lower bound is that closed form
    // too (every task on the one pool, its seconds only), and efficiency
    // is the bound over the bill.
    assert!(
        (r.bound_dollars - expect).abs() / expect < 0.02,
        "bound ${} vs closed form ${expect}",
        r.bound_dollars
    );
    let efficiency = expect / r.dollars;
    assert!(
        (r.efficiency - efficiency).abs() / efficiency < 0.02 && r.efficiency <= 1.0,
        "efficiency {} vs closed form {efficiency}",
        r.efficiency
    );
    assert!(r.ceilings_bind.is_empty(), "{:?}", r.ceilings_bind);
    // 200k minutes a month is 4.63 output minutes a minute, at 34 fps per
    // slot = 1.13× real time: ~4.1 slots busy of 8, so the fleet keeps up
    // and the makespan is the day plus the last job.
    assert!(makespan_h > 24.0 && makespan_h < 25.0, "{makespan_h}");
}

#[test]
fn bad_input_names_file_line_and_field() {
    let bad = [
        ("unknown_field = 1\n", "unknown field"),
        ("latency_share = -0.5\n", "latency_share"),
    ];
    for (extra, want) in bad {
        let text = format!("output_minutes_per_month = 1000\n{extra}[[mix]]\ncodec = \"h264\"\nwidth = 1920\nheight = 1080\nshare = 1.0\n[[lengths]]\nminutes = 5\nshare = 1.0\n");
        let e = Workload::parse(&text, "w.toml").unwrap_err();
        assert!(e.starts_with("w.toml:2:"), "{e}");
        assert!(e.contains(want), "{e}");
    }
    let text = "output_minutes_per_month = 1000\n[[mix]]\ncodec = \"h264\"\nwidth = 1920\nheight = 1080\nshare = 0.5\n[[mix]]\ncodec = \"hevc\"\nwidth = 1920\nheight = 1080\nshare = 0.4\n[[lengths]]\nminutes = 5\nshare = 1.0\n";
    let e = Workload::parse(text, "w.toml").unwrap_err();
    assert!(
        e.starts_with("w.toml:6: share:") && e.contains("sum to 0.9"),
        "{e}"
    );
    let e = parse_pools(
        "[[pools]]\nname = \"c6i-4xlarge-spot\"\ninterruption_rate_per_hour = -1\n",
        "p.toml",
    )
    .unwrap_err();
    assert_eq!(
        (
            e.file.as_str(),
            e.line,
            e.pool.as_deref(),
            e.field.as_deref()
        ),
        (
            "p.toml",
            Some(3),
            Some("c6i-4xlarge-spot"),
            Some("interruption_rate_per_hour")
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("p.toml:3: pool \"c6i-4xlarge-spot\": interruption_rate_per_hour "),
        "{e}"
    );
    let e = parse_pools("[[pools]]\nname = \"x\"\nbogus = 1\n", "p.toml").unwrap_err();
    assert_eq!(
        (e.line, e.field.as_deref()),
        (Some(3), Some("bogus")),
        "{e}"
    );
    assert!(e.to_string().starts_with("p.toml:3:"), "{e}");
}

/// An autoscaled on-demand-only fleet (the seed's baseline) keeps up: no
/// job waits for spot capacity that does not exist.
#[test]
fn on_demand_only_fleet_keeps_up() {
    let pools = parse_pools(
        "[[pools]]\nname = \"m5-4xlarge-ondemand\"\nmax_workers = 50\n",
        "pools.toml",
    )
    .unwrap();
    let w = workload("arrival = \"poisson\"\nescalate_after_wait_seconds = 7200");
    let r = simulate(&pools, &w, &opts(2));
    assert_eq!(r.jobs_done, r.jobs_submitted, "{}", r.table());
    let p95 = r.turnaround["cost"].p95_s;
    assert!(p95 < 1800.0, "p95 turnaround {p95} s\n{}", r.table());
    assert!((r.on_demand_share - 1.0).abs() < 1e-9);
}

/// Spot pools and an on-demand baseline: spot does most of the work and the
/// baseline holds.
#[test]
fn mixed_fleet_uses_spot_and_holds_the_baseline() {
    let pools = parse_pools(POOLS_MIX, "pools.toml").unwrap();
    let w = workload_of(
        3_000_000,
        "arrival = \"poisson\"\nescalate_after_wait_seconds = 7200",
    );
    let r = simulate(&pools, &w, &opts(4));
    assert_eq!(r.jobs_done, r.jobs_submitted, "{}", r.table());
    let od = r.pools.iter().find(|p| p.on_demand).unwrap();
    let spot_hours: f64 = r
        .pools
        .iter()
        .filter(|p| !p.on_demand)
        .map(|p| p.instance_hours)
        .sum();
    let share = od.instance_hours / (od.instance_hours + spot_hours);
    assert!(
        share > 0.08 && share < 0.35,
        "on-demand share of instance-hours {share}\n{}",
        r.table()
    );
    let spot_encodes: u64 = r
        .pools
        .iter()
        .filter(|p| !p.on_demand)
        .map(|p| p.encode_tasks)
        .sum();
    assert!(spot_encodes > 2 * od.encode_tasks, "{}", r.table());
    assert!(r.turnaround["cost"].p95_s < 1800.0, "{}", r.table());
}

/// A region-wide spot exhaustion window: spot launches fail, the planner
/// marks the spot pools unavailable, on-demand takes the work, and no job
/// is lost.
#[test]
fn spot_exhaustion_moves_work_to_on_demand_and_loses_nothing() {
    let pools = parse_pools(POOLS_MIX, "pools.toml").unwrap();
    let base = "arrival = \"poisson\"\nescalate_after_wait_seconds = 7200";
    let calm = simulate(&pools, &workload_of(3_000_000, base), &opts(5));
    let w = workload_of(
        3_000_000,
        &format!("{base}\n[exhaustion]\nstart_hour = 0\nhours = 12"),
    );
    let r = simulate(&pools, &w, &opts(5));
    assert_eq!(r.jobs_done, r.jobs_submitted, "{}", r.table());
    assert_eq!(r.jobs_failed, 0);
    assert!(
        r.on_demand_share > calm.on_demand_share + 0.2,
        "on-demand share {} against {} without exhaustion\n{}",
        r.on_demand_share,
        calm.on_demand_share,
        r.table()
    );
}

// The event loop skips asking instances whose answer is known to be none
// (no waiting work in the partitions their pool serves now, or their pool
// found nothing this instant); asking every one must give the same report,
// with placement and with FIFO, on CPU and multi-session NVENC pools, with
// spot notices, reclaims, escalations and an on-demand pool closed to spot
// work at times.
#[test]
fn skipping_known_refusals_changes_nothing() {
    let pools = format!("{POOLS_MIX}[[pools]]\nname = \"g4dn-xlarge-spot\"\nmax_workers = 20\n");
    let pools = parse_pools(&pools, "pools.toml").unwrap();
    let w = workload_of(
        600_000,
        "arrival = \"diurnal\"\nlatency_share = 0.2\n\
         escalate_after_wait_seconds = 300\n\
         [interruptions]\nspot_rate_per_hour = 0.2\nreclaim_events_per_day = 4",
    );
    for placement in [Some(true), Some(false)] {
        let quick = Options {
            placement,
            ..opts(3)
        };
        let all = Options {
            ask_all: true,
            ..quick.clone()
        };
        let a = serde_json::to_string(&simulate(&pools, &w, &quick)).unwrap();
        let b = serde_json::to_string(&simulate(&pools, &w, &all)).unwrap();
        assert_eq!(a, b, "placement {placement:?}");
    }
}

/// `--plot` draws a sweep and each run's fleet as SVG, a line per pool
/// that ran workers.
#[test]
fn plots_draw_the_sweep_and_the_fleet() {
    let pools = parse_pools(POOLS_MIX, "pools.toml").unwrap();
    let w = workload("");
    let runs: Vec<_> = [60.0, 120.0]
        .into_iter()
        .map(|chunk| {
            let o = Options {
                chunk_seconds: Some(chunk),
                series: true,
                ..opts(1)
            };
            simulate(&pools, &w, &o)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (sweep, fleet) = (dir.path().join("sweep.svg"), dir.path().join("fleet.svg"));
    crate::plots::sweep(&runs, &sweep).unwrap();
    crate::plots::fleet(&runs[0], &fleet).unwrap();
    let sweep = std::fs::read_to_string(sweep).unwrap();
    assert!(sweep.starts_with("<svg") && sweep.contains("Cost against chunk length"));
    let fleet = std::fs::read_to_string(fleet).unwrap();
    let series = runs[0].series.as_deref().unwrap();
    assert!(
        series.iter().any(|p| p.workers > 0.0),
        "no pool ran workers"
    );
    for pool in series.iter().filter(|p| p.workers > 0.0).map(|p| &p.pool) {
        assert!(fleet.contains(pool.as_str()), "no line for {pool}");
    }
}
