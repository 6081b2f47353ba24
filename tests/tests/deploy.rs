//! Deployment and operations tooling, checked by independent tools: an
//! external gRPC client (Python grpcio) for health and reflection.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spotenc_tests::{bin, free_port, tool, Fleet};

use super::assert_ok;

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
