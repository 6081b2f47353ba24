//! Deployment and operations tooling, checked by independent tools: an
//! external gRPC client (Python grpcio) for health and reflection.

use std::path::{Path, PathBuf};
use std::process::Command;

use spotenc_tests::{tool, Fleet};

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
