//! Cost-aware placement end to end: catalogue pools from the coordinator's
//! TOML, workers that report them, jobs placed by cost, priced attempts,
//! and a cost model that learns from real encodes.

use std::collections::BTreeMap;
use std::time::Duration;

use spotenc_proto::pb;
use spotenc_tests::media::*;
use spotenc_tests::{bin, Fleet};

use super::{assert_ok, ended, job, submit_id};

/// Two CPU pools of one shape: spot at $0.05/h, on-demand at $2.00/h (40×,
/// so that what the model learns from tiny, noisy chunks cannot flip the
/// choice).
const POOLS: &str = r#"
[[pools]]
name = "spot-cheap"
capacity = "spot"
instance_type = "test.cheap"
hardware = "cpu"
vcpus = 2
memory = 4
slots = 1
price_per_hour = 0.05
on_demand_price_per_hour = 0.30
interruption_rate_per_hour = 0.0025
max_workers = 4

[[pools]]
name = "od-dear"
capacity = "on-demand"
instance_type = "test.dear"
hardware = "cpu"
vcpus = 2
memory = 4
slots = 1
price_per_hour = 2.00
max_workers = 2
"#;

fn pool_worker(fleet: &mut Fleet, name: &str, pool: &str, capacity: &str, instance: &str) {
    let url = fleet.url.clone();
    fleet.add_worker_args(
        name,
        &url,
        capacity,
        &["--pool", pool, "--instance-type", instance],
    );
}

fn json(out: &std::process::Output, what: &str) -> serde_json::Value {
    assert_ok(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Done encode attempts of a job: (pool, rate $/h, cost $, wall s).
fn encode_attempts(j: &pb::Job) -> Vec<(String, f64, f64, f64)> {
    j.tasks
        .iter()
        .filter(|t| t.kind == pb::TaskKind::Encode as i32)
        .flat_map(|t| t.history.iter())
        .filter(|a| a.outcome == "done")
        .map(|a| {
            let wall = (a.ended_unix_ms - a.started_unix_ms) as f64 / 1000.0;
            (a.pool.clone(), a.rate_per_hour, a.cost_dollars, wall)
        })
        .collect()
}

/// A spot pool priced low and an on-demand pool priced high: cost jobs'
/// chunks all run on the cheap spot pool (with `on_demand_declines_spot`
/// the dear pool declines them, at 40× the cost), the latency job's on the
/// on-demand pool; every attempt is
/// priced at its pool's rate; `spotenc costs` learned one sample per
/// encode; `spotenc pools` and `/metrics` see both pools.
#[tokio::test(flavor = "multi_thread")]
async fn each_pool_gets_the_work_its_price_says_and_jobs_show_their_cost() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 4, "320x240");
    let config = format!("{POOLS}\n[placement]\non_demand_declines_spot = true\n");
    let mut fleet = Fleet::builder().cpu_workers(0).config(&config).start();
    pool_worker(&mut fleet, "cheap", "spot-cheap", "spot", "test.cheap");
    pool_worker(&mut fleet, "dear", "od-dear", "on-demand", "test.dear");
    // Placement sees the live pools through a view cached for 2 s: submit
    // once both workers are live and every view includes both, or the dear
    // pool, alone in its first view, rightly takes the first chunk.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let pools = json(&fleet.spotenc(&["pools", "--json"]), "pools");
        let live = |n: &str| {
            pools
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == n && p["live_workers"] == 1)
        };
        if live("spot-cheap") && live("od-dear") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workers not live: {pools}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let common = ["--chunk-seconds", "1", "--min-chunk-seconds", "0.5"];
    let mut jobs = Vec::new();
    for (codec, priority) in [("h264", "cost"), ("hevc", "cost"), ("h264", "latency")] {
        let out = dir.path().join(format!("{codec}-{priority}.mp4"));
        let mut args = common.to_vec();
        args.extend([
            "--codec",
            codec,
            "--priority",
            priority,
            "--preset",
            "ultrafast",
        ]);
        let id = submit_id(&fleet, &src, &out, &args);
        jobs.push((id, priority, out));
    }
    let mut encodes = 0;
    for (id, priority, out) in &jobs {
        let j = ended(&fleet.url, id, Duration::from_secs(120), None).await;
        assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
        assert_eq!(frame_count(out), frame_count(&src));
        let attempts = encode_attempts(&j);
        assert_eq!(attempts.len(), 4, "four 1 s chunks: {attempts:?}");
        encodes += attempts.len();
        let want = if *priority == "latency" {
            "od-dear"
        } else {
            "spot-cheap"
        };
        for (pool, rate, cost, wall) in &attempts {
            assert_eq!(pool, want, "{priority} job {id}: {attempts:?}");
            let price = if pool == "od-dear" { 2.00 } else { 0.05 };
            assert!((rate - price).abs() < 1e-9, "{attempts:?}");
            assert!((cost - rate * wall / 3600.0).abs() < 1e-9, "{attempts:?}");
        }
        let c = j.cost.expect("job cost");
        let total = c.spot_dollars + c.on_demand_dollars;
        assert!(total > 0.0, "{c:?}");
        if *priority == "latency" {
            assert!(c.on_demand_dollars > 0.0, "{c:?}");
        } else {
            assert!(c.spot_dollars > 0.0, "{c:?}");
        }
        assert!((c.output_seconds - 4.0).abs() < 0.1, "{c:?}");
        assert!((c.dollars_per_output_minute - total / (c.output_seconds / 60.0)).abs() < 1e-12);
        let status = fleet.spotenc(&["status", id]);
        assert_ok(&status, "status");
        assert!(String::from_utf8_lossy(&status.stdout).contains("/output-min"));
    }

    // One learned sample per completed encode, on the keys that ran.
    let costs = json(&fleet.spotenc(&["costs", "--json"]), "costs");
    let mut samples: BTreeMap<String, u64> = BTreeMap::new();
    for e in costs.as_array().unwrap() {
        let n = e["samples"].as_u64().unwrap();
        if n > 0 {
            let key = format!("{}|{}|{}", e["class"], e["family"], e["codec"]);
            *samples.entry(key).or_default() += n;
            assert!(e["learned_pixels_per_second"].as_f64().unwrap() > 0.0);
        }
    }
    assert_eq!(
        samples.values().sum::<u64>() as usize,
        encodes,
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#""test.cheap"|"libx265"|"hevc""#),
        Some(&4),
        "{samples:?}"
    );
    assert_eq!(
        samples.get(r#""test.dear"|"libx264"|"h264""#),
        Some(&4),
        "{samples:?}"
    );

    let pools = json(&fleet.spotenc(&["pools", "--json"]), "pools");
    let by_name = |n: &str| {
        pools
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n} not listed: {pools}"))
            .clone()
    };
    assert_eq!(by_name("spot-cheap")["live_workers"], 1);
    assert_eq!(by_name("spot-cheap")["origin"], "file");
    assert_eq!(by_name("od-dear")["live_workers"], 1);
    assert_eq!(by_name("g4dn-xlarge-spot")["origin"], "builtin");
    assert!(by_name("spot-cheap")["worker_hours"].as_f64().unwrap() > 0.0);
    let table = fleet.spotenc(&["pools"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("spot-cheap"));

    let metrics = reqwest_get(&fleet.metrics[0]).await;
    for want in [
        "spotenc_cost_dollars_total{pool=\"spot-cheap\",outcome=\"done\"}",
        "spotenc_output_seconds_total{codec=\"hevc\"}",
        "spotenc_pool_workers{pool=\"spot-cheap\"} 1",
    ] {
        assert!(metrics.contains(want), "{want} not in /metrics:\n{metrics}");
    }
}

async fn reqwest_get(url: &str) -> String {
    // The reaper records the gauges every 500 ms; wait for one round.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    spotenc_tests::promql::scrape(url)
}

/// A worker whose pool the catalogue does not know still gets work, and
/// the coordinator says once which pool it made an entry up for.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_pool_works_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    pool_worker(&mut fleet, "odd", "mystery-pool", "spot", "");
    let id = submit_id(&fleet, &src, &out, &["--chunk-seconds", "1"]);
    let j = ended(&fleet.url, &id, Duration::from_secs(60), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
    assert_eq!(frame_count(&out), frame_count(&src));
    let log = std::fs::read_to_string(fleet.data_dir.path().join("coordinator0.log")).unwrap();
    let warnings = log
        .lines()
        .filter(|l| l.contains("not in the catalogue") && l.contains("mystery-pool"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    let pools = json(&fleet.spotenc(&["pools", "--json"]), "pools");
    let odd = pools
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mystery-pool")
        .expect("the derived pool is listed");
    assert_eq!(odd["origin"], "derived");
    let _ = job(&fleet.url, &id).await;
}

/// An invalid catalogue entry stops the coordinator before it serves, with
/// the pool and the field named.
#[test]
fn an_invalid_catalogue_refuses_to_start_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nprice_per_hour = -0.5\n",
            "price_per_hour",
        ),
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nhardware = \"fpga\"\n",
            "hardware",
        ),
        (
            "[[pools]]\nname = \"g5-xlarge-spot\"\nprice_per_hour = 2.0\n",
            "above on_demand_price_per_hour",
        ),
    ];
    for (text, field) in cases {
        let pools = dir.path().join("pools.toml");
        std::fs::write(&pools, text).unwrap();
        let out = std::process::Command::new(bin("spotenc"))
            .args(["coordinator", "--listen", "127.0.0.1:0", "--pools"])
            .arg(&pools)
            .arg("--data-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {text:?}");
        assert!(err.contains(field), "{text:?}: {err}");
        assert!(err.contains("pool \""), "{text:?}: {err}");
    }
}

/// The model's accuracy on real encodes: it learns from one job, then
/// predicts the chunk times of a second job of the same kind. Prints the
/// median absolute error of the predicted chunk wall time.
#[tokio::test(flavor = "multi_thread")]
async fn the_cost_model_predicts_chunk_times_it_has_learned() {
    let dir = tempfile::tempdir().unwrap();
    // Frames big enough that encoding, not the fixed cost of a lease and
    // an upload, dominates each chunk's wall time, and ten chunks to learn
    // from, so the prior (weighted as three samples) pulls little.
    let src = video_clip(dir.path(), 10, "640x360");
    let mut fleet = Fleet::builder().cpu_workers(0).config(POOLS).start();
    pool_worker(&mut fleet, "cheap", "spot-cheap", "spot", "test.cheap");
    let args = [
        "--chunk-seconds",
        "1",
        "--min-chunk-seconds",
        "0.5",
        "--preset",
        "fast",
    ];
    let first = submit_id(&fleet, &src, &dir.path().join("a.mp4"), &args);
    ended(&fleet.url, &first, Duration::from_secs(120), None).await;
    let costs = json(&fleet.spotenc(&["costs", "--json"]), "costs");
    let learned = costs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["class"] == "test.cheap" && e["family"] == "libx264" && e["preset"] == "fast")
        .expect("a learned key")["learned_pixels_per_second"]
        .as_f64()
        .unwrap();
    let second = submit_id(&fleet, &src, &dir.path().join("b.mp4"), &args);
    let j = ended(&fleet.url, &second, Duration::from_secs(120), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32);
    let mut errors = Vec::new();
    let mut actual = Vec::new();
    for t in j
        .tasks
        .iter()
        .filter(|t| t.kind == pb::TaskKind::Encode as i32)
    {
        let a = t.history.iter().find(|a| a.outcome == "done").unwrap();
        let wall = (a.ended_unix_ms - a.started_unix_ms) as f64 / 1000.0;
        let predicted = 640.0 * 360.0 * t.frames_total as f64 / learned;
        errors.push((predicted - wall).abs());
        actual.push(wall);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mae, typical) = (median(&mut errors), median(&mut actual));
    println!(
        "cost model: median |predicted - actual| chunk wall time {:.1} ms over {} chunks (median chunk {:.1} ms, {:.0}%)",
        mae * 1000.0,
        errors.len(),
        typical * 1000.0,
        100.0 * mae / typical
    );
    assert!(
        mae < 0.5 * typical,
        "median error {mae} s against chunks of {typical} s"
    );
}
