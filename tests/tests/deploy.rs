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
            "tests/docker/Dockerfile",
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
        Command::new(tool("yamllint")).args([
            "-s",
            "-c",
            ".yamllint.yaml",
            "docker",
            "deploy",
            "tests/docker",
        ]),
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

/// Renders `deploy/pools.example.toml` into a fresh directory.
pub(crate) fn render_sample(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k8s");
    let mut args = vec![
        "deploy",
        "render",
        "--pools",
        "deploy/pools.example.toml",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(
        Command::new(bin("spotenc")).args(&args),
        "spotenc deploy render",
    );
    (dir, out)
}

pub(crate) fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

pub(crate) fn yaml_docs(path: &Path) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .collect()
}

/// `spotenc deploy render` on the sample catalogue: the core kinds pass
/// `kubernetes-validate --strict`; the ScaledObjects, NodePools and
/// monitoring objects pass the typed models of @kubernetes-models (generated
/// from KEDA's, Karpenter's and the Prometheus Operator's CRDs); every KEDA
/// query parses as PromQL and reads its own pool's desired workers.
#[test]
fn rendered_manifests_pass_kubernetes_validate_and_the_crd_models() {
    let (_dir, out) = render_sample(&["--with-redis"]);
    let files = yaml_files(&out);
    let pools = yaml_files(&out.join("pools"));
    assert_eq!(pools.len(), 6, "{files:?}");

    let core: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            !f.starts_with(out.join("karpenter"))
                && name != "monitoring.yaml"
                && name != "kustomization.yaml"
        })
        .collect();
    let printed = run_ok(
        Command::new(tool("kubernetes-validate"))
            .args(["--strict", "-k", "1.31.0"])
            .args(&core),
        "kubernetes-validate",
    );
    assert!(!printed.contains("ERROR"), "{printed}");
    // Namespace, ConfigMap + Deployment + Service, Redis ConfigMap + Service
    // + StatefulSet, and a Deployment and a PodDisruptionBudget per pool.
    let passed = printed.matches(" passed for resource ").count();
    assert_eq!(passed, 1 + 3 + 3 + 2 * pools.len(), "{printed}");
    for line in printed.lines().filter(|l| l.starts_with("WARN")) {
        assert!(
            line.contains("kind ScaledObject with api version keda.sh/v1alpha1"),
            "{line}"
        );
    }

    let printed = run_ok(
        Command::new(tool("validate-crs")).args(&files),
        "validate-crs",
    );
    let ok = |kind: &str| {
        printed
            .lines()
            .filter(|l| l.starts_with("ok ") && l.contains(&format!(" {kind}/")))
            .count()
    };
    assert_eq!(ok("ScaledObject"), pools.len(), "{printed}");
    assert_eq!(ok("NodePool"), 3, "{printed}");
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] {
        assert_eq!(ok(kind), 1, "{kind}: {printed}");
    }

    for path in &pools {
        let pool = path.file_stem().unwrap().to_str().unwrap();
        let docs = yaml_docs(path);
        let so = docs
            .iter()
            .find(|d| d["kind"] == "ScaledObject")
            .expect("ScaledObject");
        let trigger = &so["spec"]["triggers"][0];
        let query = trigger["metadata"]["query"].as_str().unwrap();
        assert_eq!(
            query,
            format!("max(spotenc_pool_desired_workers{{pool=\"{pool}\"}})")
        );
        let names = metric_names(query).unwrap();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["spotenc_pool_desired_workers"]
        );
        assert_eq!(trigger["metadata"]["ignoreNullValues"], "false");
        assert!(so["spec"]["fallback"]["failureThreshold"]
            .as_u64()
            .is_some());
        let deployment = docs
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("Deployment");
        let pod = &deployment["spec"]["template"];
        assert_eq!(
            pod["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"],
            "true"
        );
        let env = pod["spec"]["containers"][0]["env"].as_sequence().unwrap();
        let var = |name: &str| {
            env.iter()
                .find(|e| e["name"] == name)
                .and_then(|e| e["value"].as_str())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(var("SPOTENC_POOL"), pool);
        let deadline: u64 = var("SPOTENC_NOTICE_DEADLINE_SECONDS").parse().unwrap();
        let grace = pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap();
        assert!(
            deadline <= 90 && grace > deadline,
            "{pool}: deadline {deadline}, grace {grace}"
        );
    }
}

/// The catalogue the render gives the coordinator is the one it rendered:
/// a coordinator started on the rendered `pools.toml` (with
/// `builtin_pools = false`) plans exactly the rendered pools, so every
/// ScaledObject's query names a pool whose gauge exists.
#[test]
fn a_coordinator_on_the_rendered_catalogue_plans_exactly_the_rendered_pools() {
    let (_dir, out) = render_sample(&["--redis-url", "redis://redis.example:6379/0"]);
    let config = yaml_docs(&out.join("coordinator.yaml"));
    let map = config.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let pools_toml = out.join("pools.toml");
    std::fs::write(&pools_toml, map["data"]["pools.toml"].as_str().unwrap()).unwrap();
    let coordinator_toml = map["data"]["coordinator.toml"].as_str().unwrap();
    assert!(
        coordinator_toml.contains("builtin_pools = false"),
        "{coordinator_toml}"
    );
    assert!(
        coordinator_toml.contains("redis://redis.example:6379/0"),
        "{coordinator_toml}"
    );

    let fleet = Fleet::builder()
        .cpu_workers(0)
        .config(&format!(
            "builtin_pools = false\npools_file = {:?}\n",
            pools_toml.display().to_string()
        ))
        .start();
    let capacity = run_ok(
        Command::new(bin("spotenc")).args(["capacity", "--json", "--coordinator", &fleet.url]),
        "spotenc capacity",
    );
    let planned: BTreeSet<String> = capacity
        .lines()
        .filter(|l| l.starts_with('{') || l.starts_with('['))
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            let list = v.as_array().cloned().unwrap_or_else(|| vec![v]);
            list.into_iter()
                .map(|p| p["pool"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let rendered: BTreeSet<String> = yaml_files(&out.join("pools"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(planned, rendered, "{capacity}");
}

/// A catalogue that would render an invalid object is refused before
/// anything is written, naming the pool and the field.
#[test]
fn a_bad_catalogue_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[pools]]\nname = \"t4\"\ncapacity = \"spot\"\ninstance_type = \"g4dn.xlarge\"\nhardware = \"nvenc\"\n\
             gpu = \"T4\"\nvcpus = 4\nmemory = 16\nslots = 3\nprice_per_hour = 0.2\nmax_workers = 4\n",
            "pool \"t4\": gpus is missing",
        ),
        (
            "[[pools]]\nname = \"c6i-4xlarge-spot\"\nmin_workers = 5\nmax_workers = 2\n",
            "min_workers 5 is above max_workers 2",
        ),
        (
            "[[pools]]\nname = \"Spot.Pool\"\ncapacity = \"spot\"\ninstance_type = \"c6i.xlarge\"\nhardware = \"cpu\"\n\
             vcpus = 4\nmemory = 8\nslots = 1\nprice_per_hour = 0.1\nmax_workers = 4\n",
            "pool \"Spot.Pool\": name is not a DNS label",
        ),
    ];
    for (i, (catalogue, message)) in cases.iter().enumerate() {
        let pools = dir.path().join(format!("pools{i}.toml"));
        std::fs::write(&pools, catalogue).unwrap();
        let out = dir.path().join(format!("out{i}"));
        let o = Command::new(bin("spotenc"))
            .args(["deploy", "render", "--with-redis", "--pools"])
            .arg(&pools)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && stderr.contains(message),
            "{message}: {stderr}"
        );
        assert!(!out.exists(), "{} was written", out.display());
    }
    // A directory with something in it is refused without --force.
    let (_render, out) = render_sample(&["--with-redis"]);
    let o = Command::new(bin("spotenc"))
        .args([
            "deploy",
            "render",
            "--with-redis",
            "--pools",
            "deploy/pools.example.toml",
            "--out",
        ])
        .arg(&out)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not empty: pass --force"));
}

/// The WorkerPool CRD is generated, not written: the committed file is what
/// `spotenc operator crd` prints. It, the operator's RBAC and Deployment pass
/// `kubernetes-validate --strict`, and the example WorkerPool validates
/// against the CRD's own OpenAPI schema (check-jsonschema).
#[test]
fn the_workerpool_crd_is_generated_and_the_operator_manifests_validate() {
    let printed = run_ok(
        Command::new(bin("spotenc")).args(["operator", "crd"]),
        "spotenc operator crd",
    );
    let committed = std::fs::read_to_string(repo().join("deploy/crd/workerpool.yaml")).unwrap();
    assert_eq!(
        printed, committed,
        "deploy/crd/workerpool.yaml is stale: run `spotenc operator crd > deploy/crd/workerpool.yaml`"
    );
    let validated = run_ok(
        Command::new(tool("kubernetes-validate")).args([
            "--strict",
            "-k",
            "1.31.0",
            "deploy/crd/workerpool.yaml",
            "deploy/operator/rbac.yaml",
            "deploy/operator/deployment.yaml",
        ]),
        "kubernetes-validate",
    );
    assert_eq!(
        validated.matches(" passed for resource ").count(),
        5,
        "{validated}"
    );
    assert!(
        !validated.contains("ERROR") && !validated.contains("WARN"),
        "{validated}"
    );

    let crd = &yaml_docs(&repo().join("deploy/crd/workerpool.yaml"))[0];
    let schema: serde_json::Value =
        serde_json::to_value(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("workerpool.schema.json");
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    run_ok(
        Command::new(tool("check-jsonschema"))
            .arg("--schemafile")
            .arg(&schema_file)
            .arg("deploy/operator/workerpool.example.yaml"),
        "check-jsonschema WorkerPool",
    );
    // ... and the schema is not a formality: a wrong type is refused.
    let bad = dir.path().join("bad.yaml");
    let example =
        std::fs::read_to_string(repo().join("deploy/operator/workerpool.example.yaml")).unwrap();
    std::fs::write(&bad, example.replace("memoryGib: 16", "memoryGib: sixteen")).unwrap();
    let o = Command::new(tool("check-jsonschema"))
        .arg("--schemafile")
        .arg(&schema_file)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("'sixteen' is not of type 'number'"));
}
