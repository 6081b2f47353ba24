//! Deployment and operations tooling, checked by independent tools: an
//! external gRPC client (Python grpcio) for health and reflection, the
//! containers' health checks, and the Grafana dashboard against a live
//! scrape.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::media::video_clip;
use spotenc_tests::promql::{exposed_names, metric_names, scrape};
use spotenc_tests::{bin, free_port, tool, Fleet};

use super::{assert_ok, ended, leased_encode, submit_id};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Health and reflection (v1 and v1alpha) answer Python grpcio's own
/// health and reflection clients, as `grpc_health_probe`, `grpcurl` and
/// Kubernetes' gRPC probes would ask.
#[test]
fn health_and_reflection_answer_an_independent_grpc_client() {
    let fleet = Fleet::builder().cpu_workers(0).start();
    let target = fleet.url.trim_start_matches("http://").to_string();
    let out = Command::new(tool("python"))
        .arg(repo().join("tests/clients/grpc_check.py"))
        .arg(&target)
        .output()
        .expect("run python");
    assert_ok(&out, "grpc_check.py");
    let printed = String::from_utf8_lossy(&out.stdout);
    for line in [
        "health spotenc.v1.JobService: SERVING",
        "health spotenc.v1.WorkerService: SERVING",
        "v1alpha services: grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection spotenc.v1.JobService spotenc.v1.WorkerService",
        "v1 services: grpc.health.v1.Health grpc.reflection.v1.ServerReflection spotenc.v1.JobService spotenc.v1.WorkerService",
    ] {
        assert!(printed.contains(line), "missing {line:?} in:\n{printed}");
    }
}

/// The images' health checks: `spotenc health` (gRPC health) and a worker's
/// `--health` (its /metrics on the loopback) succeed against live processes
/// and fail, with the reason, once they are gone.
#[test]
fn container_health_checks_tell_a_live_process_from_a_dead_one() {
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let listen = format!("127.0.0.1:{}", free_port());
    let url = fleet.url.clone();
    fleet.add_worker_args("w", &url, "spot", &["--metrics-listen", &listen]);
    let coordinator_health = || {
        Command::new(bin("spotenc"))
            .args(["health", "--coordinator", &url])
            .output()
            .expect("run spotenc health")
    };
    let worker_health = || {
        Command::new(bin("cpu-worker"))
            .arg("--health")
            .env("SPOTENC_METRICS_LISTEN", &listen)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run cpu-worker --health")
    };
    let out = coordinator_health();
    assert_ok(&out, "spotenc health");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "server: SERVING\n");
    let start = Instant::now();
    while !worker_health().status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "worker never healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    fleet.worker("w").kill();
    let out = worker_health();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{listen}/metrics")),
        "{out:?}"
    );
    fleet.coordinators[0].kill();
    let out = coordinator_health();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach coordinator"),
        "{out:?}"
    );
}

/// Every PromQL expression in a Grafana dashboard, with its panel's title.
fn dashboard_exprs(dash: &serde_json::Value) -> Vec<(String, String)> {
    let panels = dash["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            p["targets"].as_array().into_iter().flatten().map(move |t| {
                let expr = t["expr"].as_str().expect("target expr").to_string();
                (title.clone(), expr)
            })
        })
        .collect()
}

/// The shipped Grafana dashboard: unique uid and panel ids, a datasource
/// variable every panel uses, every expression parses as PromQL, and every
/// metric it reads is one a live coordinator or worker exposes. The live
/// fleet runs a job whose chunk is handed back on SIGTERM, so interruption,
/// cost and output counters exist. GPU gauges need an NVIDIA GPU to appear;
/// for them the check is the names `worker/src/prom.rs` records.
#[tokio::test(flavor = "multi_thread")]
async fn grafana_dashboard_reads_only_metrics_spotenc_exports() {
    let path = repo().join("docker/grafana/dashboards/spotenc.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("json");
    assert_eq!(dash["uid"], "spotenc-fleet");
    let panels = dash["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), panels.len(), "panel ids repeat");
    let vars = dash["templating"]["list"].as_array().expect("templating");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().expect("targets") {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
    let mut wanted = BTreeSet::new();
    for (title, expr) in dashboard_exprs(&dash) {
        let names = metric_names(&expr).unwrap_or_else(|e| panic!("panel {title:?}: {e}"));
        wanted.extend(names);
    }

    // A live fleet: worker a takes a chunk and is stopped mid-encode (it
    // hands the chunk back), worker b finishes the job.
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 8, "640x360");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let url = fleet.url.clone();
    let metrics_a = format!("127.0.0.1:{}", free_port());
    let metrics_b = format!("127.0.0.1:{}", free_port());
    // A 2 s notice deadline: the chunk cannot finish in it, so it is handed back.
    fleet.add_worker_args(
        "a",
        &url,
        "spot",
        &[
            "--metrics-listen",
            &metrics_a,
            "--notice-deadline-seconds",
            "2",
        ],
    );
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &["--chunk-seconds", "10", "--preset", "slower"],
    );
    leased_encode(&url, &id).await;
    fleet.worker("a").signal("-TERM");
    fleet.add_worker_args("b", &url, "on-demand", &["--metrics-listen", &metrics_b]);
    let j = ended(&url, &id, Duration::from_secs(120), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");

    let mut exposed = exposed_names(&scrape(&fleet.metrics[0]));
    exposed.extend(exposed_names(&scrape(&format!(
        "http://{metrics_b}/metrics"
    ))));
    assert!(
        exposed.contains("spotenc_task_interruptions_total"),
        "the hand-back was not counted: {exposed:?}"
    );
    let prom = std::fs::read_to_string(repo().join("worker/src/prom.rs")).expect("prom.rs");
    let (_, record_gpus) = prom
        .split_once("pub fn record_gpus")
        .expect("worker/src/prom.rs records GPU gauges in record_gpus");
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|name| {
            if name.starts_with("spotenc_gpu_") {
                !record_gpus.contains(&format!("\"{name}\""))
            } else {
                !exposed.contains(*name)
            }
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard reads metrics nothing exports: {missing:?}\nexposed: {exposed:?}"
    );
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The image and compose files pass their validators: hadolint, Debian's
/// docker-compose 1.29 `config -q` (no daemon needed), the compose-spec JSON
/// schema, promtool on the compose Prometheus config, and yamllint.
#[test]
fn dockerfile_and_compose_pass_their_validators() {
    run_ok(
        Command::new(tool("hadolint")).args([
            "--config",
            "docker/.hadolint.yaml",
            "docker/Dockerfile",
        ]),
        "hadolint",
    );
    let env = "docker/spotenc.env.example";
    run_ok(
        Command::new("docker-compose").args([
            "-f",
            "docker/compose.yaml",
            "--env-file",
            env,
            "config",
            "-q",
        ]),
        "docker-compose config",
    );
    // With the gpu profile too, and the resolved file for the checks below.
    let resolved = run_ok(
        Command::new("docker-compose").args([
            "-f",
            "docker/compose.yaml",
            "--env-file",
            env,
            "--profile",
            "gpu",
            "config",
        ]),
        "docker-compose config --profile gpu",
    );
    for needle in [
        "--maxmemory-policy",
        "noeviction",
        "--appendonly",
        "NVIDIA_DRIVER_CAPABILITIES: compute,video,utility",
        "driver: nvidia",
        "coordinator-b:",
        "cpu-worker-b:",
    ] {
        assert!(
            resolved.contains(needle),
            "compose lacks {needle:?}:\n{resolved}"
        );
    }
    // Nothing secret is committed: every value comes from the env file.
    let compose = std::fs::read_to_string(repo().join("docker/compose.yaml")).unwrap();
    let example = std::fs::read_to_string(repo().join(env)).unwrap();
    for line in example.lines().filter(|l| !l.starts_with('#')) {
        if let Some((_, value)) = line.split_once('=') {
            assert!(
                !compose.contains(value),
                "compose.yaml holds the secret {value:?}"
            );
        }
    }
    run_ok(
        Command::new(tool("check-jsonschema")).args([
            "--builtin-schema",
            "vendor.compose-spec",
            "docker/compose.yaml",
        ]),
        "check-jsonschema compose-spec",
    );
    run_ok(
        Command::new("promtool").args([
            "check",
            "config",
            "--syntax-only",
            "docker/prometheus/prometheus.yml",
        ]),
        "promtool check config",
    );
    run_ok(
        Command::new(tool("yamllint")).args(["-s", "-c", ".yamllint.yaml", "docker", "deploy"]),
        "yamllint",
    );
}

/// The shipped Prometheus rules parse with a second, independent PromQL
/// parser, and read only spotenc's metrics, Prometheus's `up`, and their own
/// recording rules.
#[test]
fn prometheus_rules_parse_as_promql() {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/spotenc-rules.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("rules yaml");
    let mut recorded = BTreeSet::new();
    let mut read = BTreeSet::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            if let Some(r) = rule["record"].as_str() {
                recorded.insert(r.to_string());
            }
            let expr = rule["expr"].as_str().expect("expr");
            read.extend(metric_names(expr).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    for name in &read {
        assert!(
            name.starts_with("spotenc_") || name == "up" || recorded.contains(name),
            "rules read {name}, which nothing records or exports"
        );
    }
    assert!(read.contains("spotenc_pool_desired_workers"), "{read:?}");
}
