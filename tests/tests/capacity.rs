//! Capacity planning through a real Prometheus (Debian's `prometheus`):
//! it scrapes a coordinator and two workers, and the exact query each
//! pool's KEDA ScaledObject runs returns the planner's desired workers; the
//! shipped rules pass `promtool check rules` and `promtool test rules`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::media::*;
use spotenc_tests::{free_port, wait_for_port, Fleet, Proc};

use super::{assert_ok, ended, submit_id};

const POOLS: &str = r#"
[[pools]]
name = "spot-a"
capacity = "spot"
instance_type = "test.a"
hardware = "cpu"
vcpus = 2
memory = 4
slots = 1
price_per_hour = 0.05
on_demand_price_per_hour = 0.30
interruption_rate_per_hour = 0.0025
max_workers = 4

[[pools]]
name = "od-b"
capacity = "on-demand"
instance_type = "test.b"
hardware = "cpu"
vcpus = 2
memory = 4
slots = 1
price_per_hour = 0.10
max_workers = 2

# Small work, quick targets: two 5 s probes due in 5 s are two slots; one
# pool may take all spot work.
[capacity]
cost_target_seconds = 5
max_pool_share = 1.0
"#;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("promtool (scripts/setup.sh installs Debian's prometheus)")
}

#[test]
fn shipped_rules_check_and_pass_their_unit_tests() {
    let check = promtool(&["check", "rules", "spotenc-rules.yml"]);
    assert_ok(&check, "promtool check rules");
    assert!(String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 8 rules found"));
    let test = promtool(&["test", "rules", "spotenc-rules.test.yml"]);
    assert_ok(&test, "promtool test rules");
}

/// A Prometheus server on a free loopback port, scraping every second.
fn prometheus(dir: &Path, coordinator: &str, workers: &[String]) -> (Proc, String) {
    let port = free_port();
    let target = |url: &str| {
        url.trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_string()
    };
    let workers: Vec<String> = workers.iter().map(|w| format!("'{}'", target(w))).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {rules}\n\
         scrape_configs:\n\
         \x20 - job_name: spotenc-coordinator\n    static_configs:\n      - targets: ['{c}']\n\
         \x20 - job_name: spotenc-worker\n    static_configs:\n      - targets: [{w}]\n",
        rules = rules_dir().join("spotenc-rules.yml").display(),
        c = target(coordinator),
        w = workers.join(", "),
    );
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus (scripts/setup.sh installs Debian's prometheus)");
    let proc = Proc {
        child,
        name: "prometheus".into(),
    };
    wait_for_port(port);
    (proc, format!("http://127.0.0.1:{port}"))
}

/// An instant query's samples: (labels, value).
pub(crate) fn query(prom: &str, q: &str) -> Vec<(serde_json::Value, f64)> {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-G",
            &format!("{prom}/api/v1/query"),
            "--data-urlencode",
        ])
        .arg(format!("query={q}"))
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|s| {
                    let value = s["value"][1]
                        .as_str()
                        .unwrap_or("nan")
                        .parse()
                        .unwrap_or(f64::NAN);
                    (s["metric"].clone(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `spotenc capacity --json`: desired workers by pool.
fn planned(fleet: &Fleet) -> Vec<(String, f64)> {
    plan_of(fleet.spotenc(&["capacity", "--json"]))
}

/// Desired workers by pool, from `spotenc capacity --json`'s output.
pub(crate) fn plan_of(out: std::process::Output) -> Vec<(String, f64)> {
    assert_ok(&out, "capacity");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pool"].as_str().unwrap().to_string(),
                p["desired"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Waits until, for every catalogue pool, KEDA's query returns what the
/// planner says; returns the plan.
fn keda_agrees(fleet: &Fleet, prom: &str, limit: Duration) -> Vec<(String, f64)> {
    keda_agrees_with(|| planned(fleet), prom, limit)
}

/// [`keda_agrees`] with the plan from any `spotenc capacity --json`.
pub(crate) fn keda_agrees_with(
    plan: impl Fn() -> Vec<(String, f64)>,
    prom: &str,
    limit: Duration,
) -> Vec<(String, f64)> {
    let start = Instant::now();
    loop {
        let plan = plan();
        let mismatch: Vec<String> = plan
            .iter()
            .filter_map(|(pool, desired)| {
                let q = format!("max(spotenc_pool_desired_workers{{pool=\"{pool}\"}})");
                let got = query(prom, &q).first().map(|s| s.1);
                (got != Some(*desired))
                    .then(|| format!("{pool}: planner {desired}, KEDA query {got:?}"))
            })
            .collect();
        if mismatch.is_empty() {
            return plan;
        }
        assert!(
            start.elapsed() < limit,
            "KEDA's queries disagree with the planner: {mismatch:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keda_queries_return_the_planners_desired_workers() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 3, "320x240");
    let mut fleet = Fleet::builder().cpu_workers(0).config(POOLS).start();
    let worker_metrics: Vec<String> = (0..2)
        .map(|_| format!("http://127.0.0.1:{}/metrics", free_port()))
        .collect();
    let (_prom, prom) = prometheus(dir.path(), &fleet.metrics[0], &worker_metrics);

    // Work with nobody to run it: two cost jobs and a latency job wait.
    let mut jobs = Vec::new();
    for (i, priority) in ["cost", "cost", "latency"].iter().enumerate() {
        let out = dir.path().join(format!("out-{i}.mp4"));
        let id = submit_id(
            &fleet,
            &src,
            &out,
            &[
                "--chunk-seconds",
                "1",
                "--priority",
                priority,
                "--preset",
                "ultrafast",
            ],
        );
        jobs.push((id, out));
    }
    let plan = keda_agrees(&fleet, &prom, Duration::from_secs(30));
    let desired = |plan: &[(String, f64)], pool: &str| {
        plan.iter().find(|(p, _)| p == pool).map_or(0.0, |x| x.1)
    };
    // The latency job's probe sizes the cheapest on-demand pool by itself
    // (rounded up); the cost probes, 10 slot-seconds due in 5 s, two
    // workers of the cheapest spot pool; nothing else.
    assert_eq!(desired(&plan, "od-b"), 1.0, "{plan:?}");
    assert_eq!(desired(&plan, "spot-a"), 2.0, "{plan:?}");
    assert_eq!(plan.iter().map(|p| p.1).sum::<f64>(), 3.0, "{plan:?}");
    let backlog = query(&prom, "sum(spotenc_pool_backlog_seconds)");
    assert!(backlog.first().is_some_and(|s| s.1 > 0.0), "{backlog:?}");
    let oldest = query(&prom, "spotenc_queue_oldest_seconds{priority=\"latency\"}");
    assert!(oldest.first().is_some_and(|s| s.1 > 0.0), "{oldest:?}");

    // Two workers come, one per pool, with their own /metrics.
    let url = fleet.url.clone();
    for (i, (name, pool, capacity, instance)) in [
        ("a", "spot-a", "spot", "test.a"),
        ("b", "od-b", "on-demand", "test.b"),
    ]
    .into_iter()
    .enumerate()
    {
        let listen = worker_metrics[i]
            .trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_string();
        fleet.add_worker_args(
            name,
            &url,
            capacity,
            &[
                "--pool",
                pool,
                "--instance-type",
                instance,
                "--metrics-listen",
                &listen,
            ],
        );
    }
    for (id, out) in &jobs {
        let j = ended(&fleet.url, id, Duration::from_secs(120), None).await;
        assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
        assert_eq!(frame_count(out), frame_count(&src));
    }
    // Idle now: the plan drops to nothing, and KEDA's queries follow.
    let start = Instant::now();
    let plan = loop {
        let plan = keda_agrees(&fleet, &prom, Duration::from_secs(30));
        if plan.iter().all(|(_, d)| *d == 0.0) {
            break plan;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{plan:?}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        plan.iter().any(|(p, _)| p == "g4dn-xlarge-spot"),
        "{plan:?}"
    );
    // Prometheus scraped all three processes, and saw both pools live.
    let start = Instant::now();
    loop {
        let up = query(&prom, "up");
        let live = query(&prom, "spotenc_pool_workers{pool=~\"spot-a|od-b\"}");
        if up.len() == 3
            && up.iter().all(|s| s.1 == 1.0)
            && live.len() == 2
            && live.iter().all(|s| s.1 == 1.0)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "up {up:?}; live {live:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let health = query(
        &prom,
        "spotenc_pool_health{pool=\"spot-a\",state=\"healthy\"}",
    );
    assert_eq!(health.first().map(|s| s.1), Some(1.0), "{health:?}");
    let table = fleet.spotenc(&["capacity"]);
    assert_ok(&table, "capacity");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("spot-a") && text.contains("healthy") && text.contains("why"),
        "{text}"
    );
}
