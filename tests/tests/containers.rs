//! The images and the compose fleet, run in a real Docker engine: the images
//! scripts/images.sh built from the test build's binaries (scripts/test.sh),
//! docker/compose.yaml's spotenc services as users get them, with stand-ins
//! for Redis, S3 (Garage) and Prometheus (tests/docker/). Clients stay
//! outside the containers: the host's `spotenc` CLI, `curl` for S3 and
//! Prometheus, and the ffmpeg/ffprobe oracle. The worker Deployment that
//! `spotenc deploy render` writes is checked against the compose workers,
//! both in the files and in the running containers.
//!
//! Without an engine these tests fail with the reason; they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use spotenc_proto::auth::BearerToken;
use spotenc_proto::pb::{self, job_service_client::JobServiceClient};
use spotenc_tests::docker::{docker, docker_ok, engine, repo, Compose, Container, TAG};
use spotenc_tests::garage::S3Client;
use spotenc_tests::{bin, free_port};

use super::capacity::{keda_agrees_with, plan_of, query};
use super::deploy::{render_sample, yaml_docs, yaml_files};
use super::{assert_faithful, assert_ok, keyed_clip};

fn image(name: &str) -> String {
    format!("spotenc/{name}:{TAG}")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The job through replica a's published port, over gRPC with the client
/// token.
async fn job(fleet: &Compose, id: &str) -> pb::Job {
    let channel = tonic::transport::Endpoint::from_shared(fleet.url(0))
        .unwrap()
        .connect()
        .await
        .expect("coordinator-a answers");
    let auth = BearerToken::new(Some(&fleet.client_token)).unwrap();
    JobServiceClient::with_interceptor(channel, auth)
        .get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .expect("GetJob")
        .into_inner()
}

/// Waits for the job to end; panics unless it succeeded.
async fn succeeded(fleet: &Compose, id: &str, limit: Duration) -> pb::Job {
    let deadline = Instant::now() + limit;
    loop {
        let j = job(fleet, id).await;
        if j.state >= pb::JobState::Succeeded as i32 {
            assert_eq!(j.state, pb::JobState::Succeeded as i32, "{}", j.error);
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job stuck: {j:?}\n{}",
            fleet.logs("coordinator-a")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn submit(fleet: &Compose, replica: usize, input: &str, output: &str, extra: &[&str]) -> String {
    let mut args = vec!["submit", input, output];
    args.extend_from_slice(extra);
    let out = fleet.spotenc(replica, &fleet.client_token, &args);
    assert_ok(&out, "submit");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Downloads an output with an independent S3 client and judges it against
/// its source: every frame, no decode error.
fn assert_output(s3: &S3Client, dir: &Path, src: &Path, key: &str) {
    let local = dir.join(key.replace('/', "_"));
    assert!(s3.download(key, &local), "no object at {key}");
    assert_faithful(src, &local);
}

fn subdir(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every task's attempts, as (task, worker, outcome).
fn attempts(j: &pb::Job) -> Vec<(String, String, String)> {
    j.tasks
        .iter()
        .flat_map(|t| {
            t.history
                .iter()
                .map(|a| (t.task_id.clone(), a.worker_id.clone(), a.outcome.clone()))
        })
        .collect()
}

/// Waits until a worker has held an encode task for `at_least`; returns
/// the task and the worker's id.
async fn leased_encode(fleet: &Compose, id: &str, at_least: Duration) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut since: Option<(String, Instant)> = None;
    loop {
        let j = job(fleet, id).await;
        let held = j.tasks.iter().find(|t| {
            t.kind == pb::TaskKind::Encode as i32 && t.state == pb::TaskState::Leased as i32
        });
        match (held, &since) {
            (Some(t), Some((task, at))) if *task == t.task_id && at.elapsed() >= at_least => {
                return (t.task_id.clone(), t.worker_id.clone());
            }
            (Some(t), Some((task, _))) if *task == t.task_id => {}
            (Some(t), _) => since = Some((t.task_id.clone(), Instant::now())),
            (None, _) => since = None,
        }
        assert!(Instant::now() < deadline, "no worker held a chunk: {j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A compose service's stop_grace_period, as `docker-compose config`
/// resolves it.
fn grace_period(fleet: &Compose, service: &str) -> Duration {
    let config: serde_yaml::Value = serde_yaml::from_str(&fleet.ok(&["config"])).unwrap();
    let grace = config["services"][service]["stop_grace_period"]
        .as_str()
        .unwrap_or_else(|| panic!("{service} has no stop_grace_period"));
    Duration::from_secs(seconds(grace))
}

/// Stops a container with `docker stop`, giving it `grace` before SIGKILL
/// (the Go CLI, so that the stop follows at once); checks that it exited 0
/// inside it, and returns its log.
fn stop_within_grace(container: &str, grace: Duration) -> String {
    let started = Instant::now();
    docker_ok(&["stop", "-t", &grace.as_secs().to_string(), container]);
    let took = started.elapsed();
    let code = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", container]);
    let log = String::from_utf8_lossy(&docker(&["logs", container]).stderr).to_string();
    assert_eq!(code, "0", "{container} exited with {code}: {log}");
    assert!(took < grace, "stopping {container} took {took:?}");
    log
}

/// Prometheus's targets: (job, instance, up).
fn targets(prom: &str) -> Vec<(String, String, f64)> {
    query(prom, "up")
        .into_iter()
        .map(|(m, v)| {
            (
                m["job"].as_str().unwrap_or("").to_string(),
                m["instance"].as_str().unwrap_or("").to_string(),
                v,
            )
        })
        .collect()
}

/// How the rendered Deployment of a CPU pool runs its worker container:
/// what docker/compose.yaml and the image must match.
struct WorkerContract {
    user: String,
    read_only: bool,
    writable: Vec<String>,
    cap_drop: Vec<String>,
    no_new_privileges: bool,
    grace_seconds: u64,
    probe: Vec<String>,
    probe_period_seconds: u64,
    probe_timeout_seconds: u64,
}

fn rendered_worker() -> WorkerContract {
    let (_dir, out) = render_sample(&["--with-redis", "--image-tag", TAG]);
    let d = yaml_files(&out.join("pools"))
        .iter()
        .flat_map(|f| yaml_docs(f))
        .map(|d| serde_json::to_value(d).unwrap())
        .find(|o| {
            o["kind"] == "Deployment"
                && o["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("/cpu-worker:"))
        })
        .expect("a cpu-worker Deployment");
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    let strings = |v: &Value| -> Vec<String> { serde_json::from_value(v.clone()).unwrap() };
    WorkerContract {
        user: format!("{}:{}", sc["runAsUser"], sc["runAsGroup"]),
        read_only: sc["readOnlyRootFilesystem"] == true,
        writable: c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().to_string())
            .collect(),
        cap_drop: strings(&sc["capabilities"]["drop"]),
        no_new_privileges: sc["allowPrivilegeEscalation"] == false,
        grace_seconds: pod["terminationGracePeriodSeconds"].as_u64().unwrap(),
        probe: strings(&c["livenessProbe"]["exec"]["command"]),
        probe_period_seconds: c["livenessProbe"]["periodSeconds"].as_u64().unwrap(),
        probe_timeout_seconds: c["livenessProbe"]["timeoutSeconds"].as_u64().unwrap(),
    }
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s')
        .parse()
        .unwrap_or_else(|_| panic!("seconds: {text}"))
}

/// The files agree with the render: compose's worker services (read-only,
/// scratch volume, capabilities, privileges, grace period) and the cpu-worker
/// image's user and health check in docker/Dockerfile. No engine needed.
#[test]
fn compose_workers_and_image_match_the_rendered_deployment() {
    let want = rendered_worker();
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("docker/compose.yaml")).unwrap())
            .unwrap();
    let compose = serde_json::to_value(compose).unwrap();
    for service in ["cpu-worker-a", "cpu-worker-b", "gpu-worker"] {
        // Anchors are merged by serde_yaml's `<<` only on request: read the
        // service with its anchor's keys.
        let mut s = compose["x-cpu-worker"].clone();
        for (k, v) in compose["services"][service].as_object().unwrap() {
            s[k] = v.clone();
        }
        assert_eq!(
            s["read_only"] == true,
            want.read_only,
            "{service} read_only"
        );
        let volumes: Vec<String> = s["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().split(':').nth(1).unwrap().to_string())
            .collect();
        assert_eq!(volumes, want.writable, "{service} volumes");
        let caps: Vec<String> = serde_json::from_value(s["cap_drop"].clone()).unwrap();
        assert_eq!(caps, want.cap_drop, "{service} cap_drop");
        assert_eq!(
            s["security_opt"][0] == "no-new-privileges:true",
            want.no_new_privileges,
            "{service} security_opt"
        );
        assert_eq!(
            seconds(s["stop_grace_period"].as_str().unwrap()),
            want.grace_seconds,
            "{service} stop_grace_period"
        );
    }
    let dockerfile = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let stage = &dockerfile[dockerfile.find("AS cpu-worker\n").unwrap()..];
    let stage = &stage[..stage.find("\nFROM ").unwrap_or(stage.len())];
    assert!(stage.contains(&format!("USER {}\n", want.user)), "{stage}");
    let probe = format!("CMD {:?}", want.probe);
    assert!(stage.contains(&probe), "{probe} in {stage}");
    assert!(
        stage.contains(&format!(
            "--interval={}s --timeout={}s",
            want.probe_period_seconds, want.probe_timeout_seconds
        )),
        "{stage}"
    );
}

/// The running worker container agrees with the render.
fn assert_runs_as_rendered(container: &str, want: &WorkerContract) {
    let inspect = json(&docker_ok(&["inspect", container]));
    let i = &inspect[0];
    assert_eq!(i["Config"]["User"], want.user.as_str(), "user");
    assert_eq!(
        i["HostConfig"]["ReadonlyRootfs"], want.read_only,
        "read-only root"
    );
    let writable: Vec<&str> = i["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["RW"] == true)
        .map(|m| m["Destination"].as_str().unwrap())
        .collect();
    assert_eq!(writable, want.writable, "writable mounts");
    let caps: Vec<String> = serde_json::from_value(i["HostConfig"]["CapDrop"].clone()).unwrap();
    assert_eq!(caps, want.cap_drop, "dropped capabilities");
    assert_eq!(
        i["HostConfig"]["SecurityOpt"][0] == "no-new-privileges:true",
        want.no_new_privileges
    );
    let check: Vec<String> =
        serde_json::from_value(i["Config"]["Healthcheck"]["Test"].clone()).unwrap();
    assert_eq!(
        (check[0].as_str(), &check[1..]),
        ("CMD", &want.probe[..]),
        "health check"
    );
}

#[test]
fn both_image_builds_lay_out_the_same_binaries() {
    let full = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let generated = Command::new(repo().join("scripts/images.sh"))
        .arg("--print-dockerfile")
        .output()
        .unwrap();
    assert_ok(&generated, "images.sh --print-dockerfile");
    let generated = String::from_utf8(generated.stdout).unwrap();
    let marker = "# --- runtime stages ---\n";
    let at = full.find(marker).expect("the marker in docker/Dockerfile");
    let (builder, runtime) = full.split_at(at);
    assert!(
        generated.ends_with(runtime),
        "--from-binaries builds other runtime stages than docker/Dockerfile"
    );
    assert!(generated.contains("FROM scratch AS builder\nCOPY out/ /\n"));
    assert!(builder.contains("RUN sh docker/build-binaries.sh --cook\n"));
    assert!(builder.contains("RUN sh docker/build-binaries.sh / release\n"));
    // What the runtime stages copy is exactly what build-binaries.sh lays
    // out, for both builders.
    let listed = Command::new(repo().join("docker/build-binaries.sh"))
        .arg("--list")
        .output()
        .unwrap();
    assert_ok(&listed, "build-binaries.sh --list");
    let mut listed: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(String::from)
        .collect();
    let mut copied: Vec<String> = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=builder "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    listed.sort();
    copied.sort();
    copied.dedup();
    assert_eq!(copied, listed);
    // Nothing that needs BuildKit: Debian's engine has none.
    for text in [&full, &generated] {
        assert!(!text.contains("# syntax=") && !text.contains("--mount"));
    }
}

/// What each image is and holds: user 10001, every library resolved, no
/// FFmpeg in the coordinator, nothing of the base bootstrap, and the health
/// commands and `gpu-worker probe` answering as they do on the host.
#[test]
fn images_run_as_10001_resolve_their_libraries_and_answer_as_on_the_host() {
    engine();
    for (name, binary) in [
        ("coordinator", "spotenc"),
        ("cpu-worker", "cpu-worker"),
        ("gpu-worker", "gpu-worker"),
    ] {
        let img = image(name);
        let run = |entrypoint: &str, args: &[&str]| {
            offline_ok(&[&["--entrypoint", entrypoint, &img][..], args].concat())
        };
        let id = run("id", &[]);
        assert!(
            id.starts_with("uid=10001(") && id.contains(" gid=10001("),
            "{img}: {id}"
        );
        let ldd = run("ldd", &[&format!("/usr/local/bin/{binary}")]);
        assert!(!ldd.contains("not found"), "{img}: {ldd}");
        let env = docker_ok(&["inspect", "--format", "{{json .Config.Env}}", &img]);
        assert!(
            !env.contains("SSL_CERT_FILE") && !env.contains("CARGO"),
            "{img} carries the build's environment: {env}"
        );
        let libav = run(
            "sh",
            &[
                "-c",
                "dpkg-query -W -f '${Package}\\n' 'libav*' 2>/dev/null || true",
            ],
        );
        if name == "coordinator" {
            assert!(!ldd.contains("libav"), "{ldd}");
            assert!(
                libav.is_empty(),
                "the coordinator image has FFmpeg: {libav}"
            );
        } else {
            assert!(ldd.contains("libavcodec.so.59"), "{ldd}");
            assert!(libav.contains("libavcodec59"), "{libav}");
        }
    }
    health_commands_exit_as_on_the_host();
    gpu_probe_says_why_as_on_the_host();
}

/// `docker run` of a container of its own, with no network but the loopback.
const OFFLINE: &[&str] = &["run", "--rm", "--network", "none"];

/// `docker run --rm --network none <args>`.
fn offline(args: &[&str]) -> std::process::Output {
    docker(&[OFFLINE, args].concat())
}

/// [`offline`], asserting success; its stdout.
fn offline_ok(args: &[&str]) -> String {
    docker_ok(&[OFFLINE, args].concat())
}

/// With nothing to check, the health commands fail in the image as on the
/// host (that they pass against live services, the fleet test's health
/// checks show).
fn health_commands_exit_as_on_the_host() {
    let port = free_port().to_string();
    let nowhere = format!("http://127.0.0.1:{port}");
    let host = Command::new(bin("spotenc"))
        .args(["health", "--coordinator", &nowhere])
        .output()
        .unwrap();
    let inside = offline(&[
        "--entrypoint",
        "spotenc",
        &image("coordinator"),
        "health",
        "--coordinator",
        &nowhere,
    ]);
    assert_eq!(host.status.code(), Some(1));
    assert_eq!(inside.status.code(), host.status.code());
    assert!(String::from_utf8_lossy(&inside.stderr).contains("cannot reach coordinator"));
    for worker in ["cpu-worker", "gpu-worker"] {
        let listen = format!("127.0.0.1:{port}");
        let host = Command::new(bin(worker))
            .arg("--health")
            .env("SPOTENC_METRICS_LISTEN", &listen)
            .output()
            .unwrap();
        let inside = offline(&[
            "-e",
            &format!("SPOTENC_METRICS_LISTEN={listen}"),
            &image(worker),
            "--health",
        ]);
        assert!(!host.status.success());
        assert_eq!(
            inside.status.code(),
            host.status.code(),
            "{worker} --health"
        );
    }
}

/// The GPU image on a machine without a GPU says why it has no NVENC and
/// plans CPU work, as the host's build does.
fn gpu_probe_says_why_as_on_the_host() {
    let probe = json(&offline_ok(&[&image("gpu-worker"), "probe"]));
    assert_eq!(probe["nvenc"]["available"], false);
    assert!(
        probe["nvenc"]["reason"]
            .as_str()
            .unwrap()
            .contains("no NVIDIA driver"),
        "{probe}"
    );
    assert_eq!(probe["plan"]["hardware"], "cpu");
    let host = Command::new(bin("gpu-worker"))
        .arg("probe")
        .output()
        .unwrap();
    let host = json(&String::from_utf8_lossy(&host.stdout));
    assert_eq!(probe["nvenc"]["reason"], host["nvenc"]["reason"]);
}

/// The compose fleet: two coordinator replicas on Redis, two read-only
/// cpu-workers, S3 and Prometheus. An S3 job through the host's CLI; a
/// worker stopped mid-chunk hands its chunk back and exits 0; health checks
/// and Prometheus targets; the gpu-worker image serves as a CPU worker;
/// KEDA's queries agree with the planner; a queued job survives a killed
/// Redis and `down` and `up`.
#[tokio::test(flavor = "multi_thread")]
async fn compose_fleet_runs_s3_jobs_through_stops_and_restarts() {
    let t0 = Instant::now();
    // Printed when the test fails: where the time went.
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", t0.elapsed().as_secs_f64());
    let fleet = Compose::new();
    let dir = tempfile::tempdir().unwrap();
    fleet.up();
    let healthy = fleet.wait_healthy(Duration::from_secs(120));
    for service in [
        "redis",
        "coordinator-a",
        "coordinator-b",
        "cpu-worker-a",
        "cpu-worker-b",
    ] {
        assert!(
            healthy.iter().any(|n| n.contains(service)),
            "{service}: {healthy:?}"
        );
    }
    let want = rendered_worker();
    for worker in ["cpu-worker-a", "cpu-worker-b"] {
        assert_runs_as_rendered(&fleet.container(worker), &want);
    }
    step("fleet healthy");

    stop_mid_chunk(&fleet, dir.path()).await;
    step("a worker stopped mid-chunk; its job committed");
    prometheus_scrapes_every_spotenc_target(&fleet);
    step("prometheus targets up");

    // Smaller jobs from here on.
    let src = keyed_clip(&subdir(dir.path(), "short"), 6, "640x360");
    fleet.upload(&src, "media/in/src.mp4");
    gpu_image_serves_as_a_cpu_worker(&fleet, dir.path(), &src).await;
    step("the gpu-worker image encoded a job");
    queued_job_survives_down_and_up(&fleet, dir.path(), &src).await;
    step("a queued job completed after down and up");
}

/// An S3 job, submitted to replica b, in one chunk of 600 frames. Half a
/// second after a worker leases it, that worker is frozen (`docker pause`)
/// for 10 s, so that little of the chunk is done for the time it has held
/// it (its lease lasts 15 s without a heartbeat); stopped right after it
/// thaws (`docker stop` with its compose stop_grace_period), it hands the
/// chunk back (a worker keeps only what it expects to
/// finish well inside its 90 s notice deadline) and exits 0, and the other
/// worker encodes the chunk.
async fn stop_mid_chunk(fleet: &Compose, dir: &Path) {
    // Asked of compose first: its CLI takes a second or more to answer.
    let workers = ["cpu-worker-a", "cpu-worker-b"].map(|s| (s, fleet.container(s)));
    let grace = grace_period(fleet, "cpu-worker-a");
    let src = keyed_clip(&subdir(dir, "long"), 24, "1280x720");
    fleet.upload(&src, "media/in/long.mp4");
    let id = submit(
        fleet,
        1,
        "s3://media/in/long.mp4",
        "s3://media/out/movie.mp4",
        &["--chunk-seconds", "24"],
    );
    let (chunk, holder) = leased_encode(fleet, &id, Duration::from_millis(500)).await;
    let (service, container) = workers
        .iter()
        .find(|(s, _)| holder.starts_with(&format!("{s}-")))
        .expect("a compose worker holds the chunk");
    docker_ok(&["pause", container]);
    std::thread::sleep(Duration::from_secs(10));
    docker_ok(&["unpause", container]);
    let log = stop_within_grace(container, grace);
    let done = succeeded(fleet, &id, Duration::from_secs(300)).await;
    assert_output(&fleet.s3_client(), dir, &src, "media/out/movie.mp4");
    let outcome = attempts(&done)
        .into_iter()
        .find(|(task, worker, _)| *task == chunk && *worker == holder)
        .expect("the stopped worker's attempt");
    assert_eq!(outcome.2, "interrupted", "{outcome:?}\n{log}");
    assert!(log.contains("task handed back"), "{log}");
    fleet.ok(&["start", service]);
}

/// Prometheus reports `up == 1` for the two coordinators and the two
/// workers; the gpu-worker's target is down without its profile.
fn prometheus_scrapes_every_spotenc_target(fleet: &Compose) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let t = targets(&fleet.prometheus());
        let spotenc: Vec<_> = t
            .iter()
            .filter(|(job, _, _)| job.starts_with("spotenc"))
            .collect();
        let up: Vec<_> = spotenc
            .iter()
            .filter(|(_, _, v)| *v == 1.0)
            .map(|(_, i, _)| i.as_str())
            .collect();
        if spotenc.len() == 5 && up.len() == 4 && !up.iter().any(|i| i.starts_with("gpu-worker")) {
            return;
        }
        assert!(Instant::now() < deadline, "Prometheus targets: {t:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// With the cpu-workers stopped, a container of the gpu-worker image on the
/// fleet's network, without a GPU, becomes healthy and encodes a whole job.
async fn gpu_image_serves_as_a_cpu_worker(fleet: &Compose, dir: &Path, src: &Path) {
    fleet.ok(&["stop", "cpu-worker-a", "cpu-worker-b"]);
    let gpu = Container(docker_ok(&[
        "run",
        "-d",
        "--read-only",
        "-v",
        "/tmp",
        "--network",
        &fleet.network(),
        "-e",
        "SPOTENC_COORDINATOR=http://coordinator-a:50051",
        "-e",
        &format!("SPOTENC_TOKEN={}", fleet.worker_token),
        "-e",
        "SPOTENC_POOL=local-cpu",
        "-e",
        "SPOTENC_CAPACITY=spot",
        "-e",
        "SPOTENC_CLOUD=none",
        "-e",
        "SPOTENC_WORKER_NAME=gpu-image",
        &image("gpu-worker"),
    ]));
    let id = submit(
        fleet,
        0,
        "s3://media/in/src.mp4",
        "s3://media/out/gpu.mp4",
        &["--chunk-seconds", "2", "--preset", "veryfast"],
    );
    let done = succeeded(fleet, &id, Duration::from_secs(180)).await;
    assert_output(&fleet.s3_client(), dir, src, "media/out/gpu.mp4");
    let all = attempts(&done);
    assert!(
        all.iter().all(|(_, w, _)| w.starts_with("gpu-image-")),
        "{all:?}"
    );
    // Its health check passes too (the first runs 15 s after start).
    let deadline = Instant::now() + Duration::from_secs(60);
    while docker_ok(&["inspect", "--format", "{{.State.Health.Status}}", &gpu.0]) != "healthy" {
        assert!(
            Instant::now() < deadline,
            "the gpu-worker container never became healthy"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    stop_within_grace(&gpu.0, Duration::from_secs(105));
}

/// With no worker running, a job waits; KEDA's query for each pool returns
/// what `spotenc capacity --json` plans for it. Redis is killed (SIGKILL: no
/// snapshot on the way down), the fleet goes `down` and `up`, and the job,
/// kept by the append-only file, completes.
async fn queued_job_survives_down_and_up(fleet: &Compose, dir: &Path, src: &Path) {
    let id = submit(
        fleet,
        0,
        "s3://media/in/src.mp4",
        "s3://media/out/after.mp4",
        &["--chunk-seconds", "2", "--preset", "veryfast"],
    );
    assert_eq!(job(fleet, &id).await.state, pb::JobState::Queued as i32);
    let plan = keda_agrees_with(
        || plan_of(fleet.spotenc(0, &fleet.admin_token, &["capacity", "--json"])),
        &fleet.prometheus(),
        Duration::from_secs(60),
    );
    assert!(plan.iter().any(|(_, desired)| *desired > 0.0), "{plan:?}");

    let redis = fleet.container("redis");
    let aof = docker_ok(&["exec", &redis, "redis-cli", "config", "get", "appendonly"]);
    assert_eq!(aof.lines().last(), Some("yes"));
    // appendfsync everysec: a second for the job's writes to reach the disk.
    std::thread::sleep(Duration::from_secs(2));
    docker_ok(&["kill", &redis]);
    fleet.ok(&["down", "-t", "105"]);
    fleet.up();
    fleet.wait_healthy(Duration::from_secs(120));
    succeeded(fleet, &id, Duration::from_secs(180)).await;
    assert_output(&fleet.s3_client(), dir, src, "media/out/after.mp4");
}
