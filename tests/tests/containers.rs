//! The images and the compose fleet, run in a real Docker engine: the images
//! scripts/images.sh built from the test build's binaries (scripts/test.sh),
//! docker/compose.yaml's spotenc services as users get them, with stand-ins
//! for Redis, S3 (Garage) and Prometheus (tests/docker/). Clients stay
//! outside the containers: the host's `spotenc` CLI, `curl` for S3 and
//! Prometheus, and the ffmpeg/ffprobe oracle.
//!
//! Without an engine these tests fail with the reason; they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spotenc_proto::auth::BearerToken;
use spotenc_proto::pb::{self, job_service_client::JobServiceClient};
use spotenc_tests::docker::{docker, docker_ok, engine, Compose, TAG};
use spotenc_tests::garage::S3Client;
use spotenc_tests::{bin, free_port};

use super::capacity::{keda_agrees_with, plan_of, query};
use super::deploy::{render_sample, yaml_docs, yaml_files};
use super::{assert_faithful, assert_ok, keyed_clip};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn image(name: &str) -> String {
    format!("spotenc/{name}:{TAG}")
}

/// The compose services a fleet runs here (Grafana's image and the GPU
/// profile are left out: no registry, no GPU).
const SERVICES: &[&str] = &[
    "redis",
    "s3",
    "buckets",
    "coordinator-a",
    "coordinator-b",
    "cpu-worker-a",
    "cpu-worker-b",
    "prometheus",
];

/// The job through a replica's published port, over gRPC with the client
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

async fn ended(fleet: &Compose, id: &str, limit: Duration) -> pb::Job {
    let deadline = Instant::now() + limit;
    loop {
        let j = job(fleet, id).await;
        if j.state >= pb::JobState::Succeeded as i32 {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job stuck: {j:?}\n{}\n{}",
            fleet.logs("coordinator-a"),
            fleet.logs("cpu-worker-a")
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

/// Downloads an output and judges it against its source.
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

/// Waits until a worker holds a chunk for `at_least`; returns the chunk's
/// task and the worker's id.
async fn holding_a_chunk(fleet: &Compose, id: &str, at_least: Duration) -> (String, String) {
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

/// `docker stop` a worker mid-chunk: it exits 0 inside its grace period.
fn stop_within_grace(container: &str) -> Duration {
    let started = Instant::now();
    docker_ok(&["stop", "-t", "100", container]);
    let took = started.elapsed();
    let code = docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", container]);
    assert_eq!(
        code,
        "0",
        "{}",
        docker_ok(&["logs", "--tail", "30", container])
    );
    assert!(took < Duration::from_secs(100), "stopping took {took:?}");
    took
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

/// The rendered Deployment of a CPU pool in the sample catalogue.
fn rendered_worker() -> serde_json::Value {
    let (_dir, out) = render_sample(&["--with-redis", "--image-tag", TAG]);
    yaml_files(&out.join("pools"))
        .iter()
        .flat_map(|f| yaml_docs(f))
        .map(|d| serde_json::to_value(d).unwrap())
        .find(|o| {
            o["kind"] == "Deployment"
                && o["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .is_some_and(|i| i.contains("/cpu-worker:"))
        })
        .expect("a cpu-worker Deployment")
}

/// The Deployment's worker runs as the container did: the user, the
/// read-only root, the scratch volume's path, and the probe's command.
fn assert_matches_deployment(container: &str) {
    let d = rendered_worker();
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let inspect: serde_json::Value =
        serde_json::from_str(&docker_ok(&["inspect", container])).unwrap();
    let inspect = &inspect[0];
    let user = inspect["Config"]["User"].as_str().unwrap();
    assert_eq!(
        user,
        format!(
            "{}:{}",
            c["securityContext"]["runAsUser"], c["securityContext"]["runAsGroup"]
        ),
        "the image's user against the Deployment's"
    );
    assert_eq!(
        inspect["HostConfig"]["ReadonlyRootfs"], c["securityContext"]["readOnlyRootFilesystem"],
        "read-only root"
    );
    let mounts: Vec<&str> = inspect["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["RW"] == true)
        .map(|m| m["Destination"].as_str().unwrap())
        .collect();
    let rendered: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert_eq!(mounts, rendered, "writable mounts");
    let check: Vec<String> =
        serde_json::from_value(inspect["Config"]["Healthcheck"]["Test"].clone()).unwrap();
    let probe: Vec<String> =
        serde_json::from_value(c["livenessProbe"]["exec"]["command"].clone()).unwrap();
    assert_eq!(check[0], "CMD");
    assert_eq!(check[1..], probe[..], "health check against liveness probe");
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
    let runtime = &full[full.find(marker).expect("the marker in docker/Dockerfile")..];
    assert!(
        generated.ends_with(runtime),
        "--from-binaries builds other runtime stages than docker/Dockerfile"
    );
    // Both builder stages produce exactly what the runtime stages copy.
    let laid_out = Command::new(repo().join("docker/build-binaries.sh"))
        .arg("--list")
        .output()
        .unwrap();
    let laid_out: Vec<String> = String::from_utf8_lossy(&laid_out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let mut copied: Vec<String> = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=builder "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    copied.sort();
    copied.dedup();
    let mut listed = laid_out.clone();
    listed.sort();
    assert_eq!(
        copied, listed,
        "the runtime stages copy what build-binaries.sh lays out"
    );
    let builder = &full[..full.find(marker).unwrap()];
    assert!(builder.contains("RUN sh docker/build-binaries.sh / release"));
    assert!(generated.starts_with("# Generated by scripts/images.sh --from-binaries"));
    assert!(generated.contains("FROM scratch AS builder\nCOPY out/ /\n"));
    // Neither the classic builder nor the images may need BuildKit.
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
        let id = docker_ok(&["run", "--rm", "--entrypoint", "id", &img]);
        assert!(
            id.starts_with("uid=10001(") && id.contains(" gid=10001("),
            "{img}: {id}"
        );
        let ldd = docker_ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "ldd",
            &img,
            &format!("/usr/local/bin/{binary}"),
        ]);
        assert!(!ldd.contains("not found"), "{img}: {ldd}");
        let env = docker_ok(&["inspect", "--format", "{{json .Config.Env}}", &img]);
        assert!(
            !env.contains("SSL_CERT_FILE") && !env.contains("CARGO"),
            "{img} carries the build's environment: {env}"
        );
        if name == "coordinator" {
            assert!(!ldd.contains("libav"), "{ldd}");
            let libs = docker_ok(&[
                "run",
                "--rm",
                "--entrypoint",
                "sh",
                &img,
                "-c",
                "ls /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu",
            ]);
            assert!(
                !libs.contains("libav"),
                "the coordinator image has FFmpeg: {libs}"
            );
        } else {
            assert!(ldd.contains("libavcodec.so.59"), "{ldd}");
        }
    }

    // Health checks with nothing to check fail in the image as on the host.
    let port = free_port().to_string();
    let nowhere = format!("http://127.0.0.1:{port}");
    let host = Command::new(bin("spotenc"))
        .args(["health", "--coordinator", &nowhere])
        .output()
        .unwrap();
    let inside = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
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
        let inside = docker(&[
            "run",
            "--rm",
            "--network",
            "none",
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

    // The GPU image on a machine without a GPU says why it has no NVENC and
    // plans CPU work, as the host's build does.
    let probe = docker_ok(&["run", "--rm", &image("gpu-worker"), "probe"]);
    let probe: serde_json::Value = serde_json::from_str(&probe).unwrap();
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
    let host: serde_json::Value = serde_json::from_slice(&host.stdout).unwrap();
    assert_eq!(probe["nvenc"]["reason"], host["nvenc"]["reason"]);
}

/// The compose fleet: two coordinator replicas on Redis, two read-only
/// cpu-workers, S3 and Prometheus. An S3 job through the host's CLI; a
/// worker stopped mid-chunk hands its chunk back and exits 0; the
/// gpu-worker image serves as a CPU worker; health checks, Prometheus
/// targets and KEDA's queries agree; `down` and `up` keep a queued job.
#[tokio::test(flavor = "multi_thread")]
async fn compose_fleet_runs_s3_jobs_through_stops_and_restarts() {
    let t0 = Instant::now();
    // Printed when the test fails: where the time went.
    let step = |what: &str| eprintln!("[{:>6.1} s] {what}", t0.elapsed().as_secs_f64());
    let fleet = Compose::new();
    let dir = tempfile::tempdir().unwrap();
    step("stand-ins built");
    let mut up = vec!["up", "-d", "--no-build"];
    up.extend_from_slice(SERVICES);
    fleet.ok(&up);
    let healthy = fleet.wait_healthy(Duration::from_secs(120));
    step("fleet healthy");
    for service in [
        "redis",
        "coordinator-a",
        "coordinator-b",
        "cpu-worker-a",
        "cpu-worker-b",
    ] {
        assert!(
            healthy.iter().any(|n| n.contains(service)),
            "{service} has no healthy check: {healthy:?}"
        );
    }
    for worker in ["cpu-worker-a", "cpu-worker-b"] {
        assert_matches_deployment(&fleet.container(worker));
    }

    // An S3 job, submitted to replica b, in one chunk. The worker that
    // leases it is frozen (`docker pause`) for a while a second in, so that
    // little of the chunk is done for the time it has held it; `docker stop`
    // right after it thaws makes it hand the chunk back (a worker keeps only
    // what will finish well inside its 90 s notice deadline).
    let s3 = fleet.s3_client();
    let src = keyed_clip(&subdir(dir.path(), "long"), 16, "1280x720");
    fleet.upload(&src, "media/in/long.mp4");
    let id = submit(
        &fleet,
        1,
        "s3://media/in/long.mp4",
        "s3://media/out/movie.mp4",
        &["--chunk-seconds", "16"],
    );
    let (victim, holder) = holding_a_chunk(&fleet, &id, Duration::from_secs(1)).await;
    step("chunk leased");
    let service = ["cpu-worker-a", "cpu-worker-b"]
        .into_iter()
        .find(|s| holder.starts_with(&format!("{s}-")))
        .expect("a compose worker holds the chunk");
    let stopped = fleet.container(service);
    docker_ok(&["pause", &stopped]);
    std::thread::sleep(Duration::from_secs(8));
    docker_ok(&["unpause", &stopped]);
    stop_within_grace(&stopped);
    step("holder stopped");
    let log = String::from_utf8_lossy(&docker(&["logs", &stopped]).stderr).to_string();
    let done = ended(&fleet, &id, Duration::from_secs(300)).await;
    step("job 1 ended");
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_output(&s3, dir.path(), &src, "media/out/movie.mp4");
    let handed_back = attempts(&done)
        .into_iter()
        .find(|(task, worker, _)| *task == victim && *worker == holder)
        .expect("the stopped worker's attempt");
    assert_eq!(handed_back.2, "interrupted", "{handed_back:?}\n{log}");
    assert!(log.contains("handed back"), "{log}");
    fleet.ok(&["start", service]);

    // Smaller jobs from here on.
    let src = keyed_clip(&subdir(dir.path(), "short"), 6, "640x360");
    fleet.upload(&src, "media/in/src.mp4");

    // Prometheus scrapes every running spotenc endpoint; the gpu-worker's
    // target is down because its profile is not up.
    let prom = fleet.prometheus();
    step("prometheus");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let t = targets(&prom);
        let spotenc: Vec<_> = t
            .iter()
            .filter(|(job, _, _)| job.starts_with("spotenc"))
            .collect();
        let up = spotenc
            .iter()
            .filter(|(_, i, v)| *v == 1.0 && !i.starts_with("gpu-worker"))
            .count();
        if up == 4 && spotenc.len() == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus targets: {t:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    keda_agrees_with(
        || plan_of(fleet.spotenc(0, &fleet.admin_token, &["capacity", "--json"])),
        &prom,
        Duration::from_secs(60),
    );
    step("KEDA agrees");

    // The gpu-worker image, without a GPU, serves as a CPU worker: with the
    // cpu-workers stopped, it encodes a whole job.
    fleet.ok(&["stop", "cpu-worker-a", "cpu-worker-b"]);
    let gpu = docker_ok(&[
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
    ]);
    let id = submit(
        &fleet,
        0,
        "s3://media/in/src.mp4",
        "s3://media/out/gpu.mp4",
        &["--chunk-seconds", "4", "--preset", "veryfast"],
    );
    let done = ended(&fleet, &id, Duration::from_secs(180)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_output(&s3, dir.path(), &src, "media/out/gpu.mp4");
    assert!(
        attempts(&done)
            .iter()
            .all(|(_, w, _)| w.starts_with("gpu-image")),
        "{:?}",
        attempts(&done)
    );
    stop_within_grace(&gpu);
    step("gpu-image job done");
    docker_ok(&["rm", &gpu]);

    // A job queued with no worker survives `down` and `up` in Redis's
    // append-only file, and completes.
    let id = submit(
        &fleet,
        0,
        "s3://media/in/src.mp4",
        "s3://media/out/after.mp4",
        &["--chunk-seconds", "4", "--preset", "veryfast"],
    );
    assert_eq!(job(&fleet, &id).await.state, pb::JobState::Queued as i32);
    fleet.ok(&["down", "-t", "100"]);
    step("down");
    fleet.ok(&up);
    fleet.wait_healthy(Duration::from_secs(120));
    let done = ended(&fleet, &id, Duration::from_secs(180)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_output(&s3, dir.path(), &src, "media/out/after.mp4");
    step("the queued job completed after up");
}
