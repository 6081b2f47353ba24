//! gpu-worker on a host without usable hardware encoders (this one, and CI):
//! detection degrades with reasons, the host registers as CPU capacity and
//! encodes real files, a forced NVENC without caps encodes in software, telemetry
//! is absent but well-formed, and /metrics serves Prometheus text.

use std::time::Duration;

use spotenc_proto::pb;
use spotenc_tests::{bin, free_port, Fleet};

use super::{assert_faithful, ended, keyed_clip, submit_id};

fn probe_json() -> serde_json::Value {
    let out = std::process::Command::new(bin("gpu-worker"))
        .arg("probe")
        .output()
        .expect("gpu-worker probe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe prints JSON")
}

#[test]
fn probe_reports_what_the_host_has_and_why_not() {
    let r = probe_json();
    let plan = &r["plan"];
    assert!(plan["slots"].as_u64().unwrap() >= 1, "{r}");
    for part in ["nvml", "nvenc", "qsv"] {
        let a = &r[part];
        let available = a["available"].as_bool().expect("available is a bool");
        // Every "no" says why.
        assert!(
            available || !a["reason"].as_str().unwrap_or_default().is_empty(),
            "{part} unavailable without a reason: {r}"
        );
    }
    if r["nvml"]["available"] == false {
        // No driver: no GPU, no telemetry, CPU capacity.
        assert_eq!(r["gpus"], serde_json::json!([]));
        assert_eq!(r["telemetry"], serde_json::json!([]));
        assert_eq!(plan["hardware"], "cpu", "{r}");
        assert_eq!(plan["encoder"], "libx264/libx265");
        assert!(plan["why"]
            .as_str()
            .unwrap()
            .contains("no usable hardware encoder"));
    } else {
        // A driver: every GPU shows up with a telemetry reading.
        let gpus = r["gpus"].as_array().unwrap();
        assert!(!gpus.is_empty(), "{r}");
        assert_eq!(r["telemetry"].as_array().unwrap().len(), gpus.len());
    }
}

async fn workers(url: &str) -> Vec<pb::WorkerStatus> {
    let mut c = pb::job_service_client::JobServiceClient::connect(url.to_string())
        .await
        .unwrap();
    c.list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
}

async fn scrape(port: u16) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "scrape failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_hardware_encoders_the_gpu_worker_is_cpu_capacity_and_encodes() {
    if probe_json()["nvenc"]["available"] == true {
        return; // a host with NVENC: the device check and bench cover it
    }
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 4, "640x360");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let url = fleet.url.clone();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    fleet.add_worker_bin(
        "gpu-worker",
        "g",
        &url,
        "spot",
        &["--metrics-listen", &listen],
    );
    let id = submit_id(&fleet, &src, &out, &["--chunk-seconds", "1"]);
    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_faithful(&src, &out);

    // Registered as CPU capacity, with well-formed (empty) GPU fields.
    let ws = workers(&url).await;
    assert_eq!(ws.len(), 1);
    let w = &ws[0];
    let info = w.info.as_ref().unwrap();
    assert_eq!(
        (info.hardware.as_str(), info.encoder.as_str()),
        ("cpu", "libx264/libx265")
    );
    assert!(info.gpus.is_empty());
    assert!(w.last_seen_unix_ms > 0, "no heartbeat recorded: {w:?}");
    assert!(w.gpus.is_empty(), "telemetry without a GPU: {w:?}");

    // Prometheus text: task outcomes and slots, no GPU series.
    let text = scrape(port).await;
    let completed = text
        .lines()
        .find(|l| l.starts_with("spotenc_worker_tasks_total{outcome=\"completed\"}"))
        .unwrap_or_else(|| panic!("no completed counter:\n{text}"));
    let n: f64 = completed.rsplit(' ').next().unwrap().parse().unwrap();
    // probe + 4 chunks + audio + stitch.
    assert!(n >= 7.0, "{completed}");
    assert!(
        text.contains("# TYPE spotenc_worker_task_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("spotenc_worker_slots 1"), "{text}");
    assert!(
        !text.contains("spotenc_gpu_"),
        "GPU series on a host without one:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forced_nvenc_without_nvenc_caps_gets_software_chunks_it_encodes_on_the_cpu() {
    if probe_json()["nvenc"]["available"] == true {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 3, "640x360");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let url = fleet.url.clone();
    fleet.add_worker_bin(
        "gpu-worker",
        "g",
        &url,
        "on-demand",
        &["--encoder", "nvenc", "--sessions-per-gpu", "2"],
    );
    let id = submit_id(&fleet, &src, &out, &["--chunk-seconds", "1"]);
    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_faithful(&src, &out);
    let info = workers(&url).await[0].info.clone().unwrap();
    assert_eq!(
        (info.hardware.as_str(), info.encoder.as_str(), info.slots),
        ("gpu", "nvenc", 2)
    );
    // It reported no NVENC caps (no GPU here), so its leases name libx264:
    // the slots encode on the CPU from the start, and no chunk is ever
    // re-encoded with another encoder.
    assert_eq!(done.identities, ["libx264-h264-8bit"]);
    for t in done
        .tasks
        .iter()
        .filter(|t| t.kind == pb::TaskKind::Encode as i32)
    {
        let outcomes: Vec<&str> = t.history.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(outcomes, ["done"], "{t:?}");
    }
    let log = std::fs::read_to_string(fleet.data_dir.path().join("g.log")).unwrap();
    assert!(!log.contains("falls back"), "{log}");
}
