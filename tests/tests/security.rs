//! A coordinator serving TLS with bearer tokens: every RPC checks the
//! token's role.

use spotenc_proto::client::Connection;
use spotenc_proto::pb;
use spotenc_tests::Fleet;

use super::{assert_faithful, assert_ok, av_clip};

/// Two seconds of 320x240 H.264 with AAC.
fn small_clip(dir: &std::path::Path) -> std::path::PathBuf {
    av_clip(
        dir,
        "src.mp4",
        2,
        "320x240",
        &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
    )
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_roles_are_checked_on_every_call_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let src = av_clip(
        dir.path(),
        "src.mp4",
        3,
        "320x240",
        &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
    );
    let out = dir.path().join("out.mp4");
    let fleet = Fleet::builder().secure().cpu_workers(1).start();
    let tokens = fleet.tokens.clone().unwrap();
    let (i, o) = (src.to_str().unwrap(), out.to_str().unwrap());

    let anonymous = fleet.spotenc(&["status"]);
    assert!(!anonymous.status.success());
    assert!(
        stderr(&anonymous).contains("unauthenticated"),
        "{}",
        stderr(&anonymous)
    );

    let wrong = fleet.spotenc(&["status", "--token", "not-a-token-at-all"]);
    assert!(
        stderr(&wrong).contains("unknown token"),
        "{}",
        stderr(&wrong)
    );

    let as_worker = fleet.spotenc(&["submit", i, o, "--token", &tokens.worker]);
    assert!(!as_worker.status.success());
    assert!(
        stderr(&as_worker).contains("permission denied"),
        "{}",
        stderr(&as_worker)
    );

    // A client token cannot act as a worker.
    let conn = Connection {
        url: fleet.url.clone(),
        token: Some(tokens.client.as_str().into()),
        tls_ca: fleet.tls_ca.clone(),
    };
    let mut w = conn.workers().await.unwrap();
    let r = w
        .lease_task(pb::LeaseTaskRequest {
            worker_id: "x".into(),
            wait_ms: 0,
            gpus: vec![],
            withdrawn: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(r.code(), tonic::Code::PermissionDenied);

    // Plaintext to a TLS port fails.
    let plain = Connection {
        url: fleet.url.replace("https://", "http://"),
        token: Some(tokens.client.as_str().into()),
        tls_ca: None,
    };
    let mut p = plain.jobs().await.unwrap();
    assert!(p.list_jobs(pb::ListJobsRequest::default()).await.is_err());

    // The right tokens: the job runs on a worker authenticated as such.
    let ok = fleet.spotenc(&[
        "submit",
        i,
        o,
        "--wait",
        "--preset",
        "ultrafast",
        "--token",
        &tokens.client,
    ]);
    assert_ok(&ok, "submit with a client token");
    assert_faithful(&src, &out);
    let admin = fleet.spotenc(&["status", "--token", &tokens.admin]);
    assert_ok(&admin, "status with the admin token");
}

/// Regression: `spotenc submit in.mp4 /anywhere/keep.txt` made the
/// coordinator rename a stitched MP4 onto any path the service could write,
/// and `spotenc transcode a.mp4 a.mp4` replaced its own source.
#[test]
fn paths_outside_the_roots_and_aliases_are_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let src = small_clip(dir.path());
    let before = std::fs::read(&src).unwrap();
    let same = std::process::Command::new(spotenc_tests::bin("spotenc"))
        .arg("transcode")
        .arg(&src)
        .arg(&src)
        .output()
        .unwrap();
    assert!(!same.status.success());
    assert!(
        stderr(&same).contains("is the job's input"),
        "{}",
        stderr(&same)
    );
    assert_eq!(std::fs::read(&src).unwrap(), before, "the source changed");

    // A fleet confined to the temp dir: a file outside it stays untouched.
    let mut fleet = Fleet::builder().cpu_workers(1).start();
    // Somewhere outside the temp dir the fleet is confined to (the
    // checkout itself may be under it).
    let tmp = std::env::temp_dir().canonicalize().unwrap();
    let keep = [
        std::env::current_dir().unwrap(),
        "/var/tmp".into(),
        std::env::var("HOME").unwrap_or_default().into(),
    ]
    .into_iter()
    .filter_map(|d: std::path::PathBuf| d.canonicalize().ok())
    .find(|d| !d.starts_with(&tmp))
    .expect("a directory outside the temp dir")
    .join(format!("spotenc-keep-test-{}.txt", std::process::id()));
    let outside = fleet.spotenc(&[
        "submit",
        src.to_str().unwrap(),
        keep.to_str().unwrap(),
        "--container",
        "mp4",
    ]);
    assert!(!outside.status.success());
    assert!(
        stderr(&outside).contains("outside the output_roots"),
        "{}",
        stderr(&outside)
    );
    assert!(!keep.exists());
    let etc = fleet.spotenc(&[
        "submit",
        "/etc/hostname",
        dir.path().join("o.mp4").to_str().unwrap(),
    ]);
    assert!(
        stderr(&etc).contains("outside the input_roots"),
        "{}",
        stderr(&etc)
    );
    let proc = fleet.spotenc(&[
        "submit",
        "/proc/self/environ",
        dir.path().join("o.mp4").to_str().unwrap(),
    ]);
    assert!(!proc.status.success(), "{}", stderr(&proc));
    let data = fleet.data_dir.path().join("state").join("o.mp4");
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    let into_data = fleet.spotenc(&["submit", src.to_str().unwrap(), data.to_str().unwrap()]);
    assert!(
        stderr(&into_data).contains("data directory"),
        "{}",
        stderr(&into_data)
    );
    // Two spellings of one output.
    let o = dir.path().join("o.mp4");
    let twice = fleet.spotenc(&[
        "submit",
        src.to_str().unwrap(),
        o.to_str().unwrap(),
        "--rendition",
        &format!("file://{}/./o.mp4,scale=160x120", dir.path().display()),
    ]);
    assert!(stderr(&twice).contains("used twice"), "{}", stderr(&twice));
    assert!(fleet.coordinators[0].is_running());
    assert!(!o.exists());
}

/// A coordinator that would serve a non-loopback address with no tokens
/// refuses to start, unless told `--insecure-no-auth`.
#[test]
fn no_tokens_off_loopback_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = spotenc_tests::free_port();
    let start = |extra: &[&str]| {
        std::process::Command::new(spotenc_tests::bin("spotenc"))
            .args(["coordinator", "--listen", &format!("0.0.0.0:{port}")])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = start(&[]).wait_with_output().unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refusing to serve"),
        "{}",
        stderr(&refused)
    );
    let mut open = spotenc_tests::Proc {
        child: start(&["--insecure-no-auth"]),
        name: "insecure".into(),
    };
    spotenc_tests::wait_for_port(port);
    assert!(open.is_running());
}

fn denied<T>(r: Result<T, tonic::Status>) {
    match r {
        Err(s) => assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}"),
        Ok(_) => panic!("a call on another worker's lease was accepted"),
    }
}

/// Regression: any worker that knew a task id and attempt number could
/// complete, fail, hand back or heartbeat another worker's lease.
#[tokio::test(flavor = "multi_thread")]
async fn worker_calls_are_bound_to_the_lease_holder() {
    let dir = tempfile::tempdir().unwrap();
    let src = small_clip(dir.path());
    let fleet = Fleet::builder().cpu_workers(0).start();
    let out = dir.path().join("o.mp4");
    assert_ok(
        &fleet.spotenc(&["submit", src.to_str().unwrap(), out.to_str().unwrap()]),
        "submit",
    );
    let conn = Connection {
        url: fleet.url.clone(),
        ..Default::default()
    };
    let mut w = conn.workers().await.unwrap();
    let register = |name: &str| {
        let info = spotenc_tests::cpu_worker_info(name, "p", spotenc_proto::domain::Capacity::Spot);
        pb::RegisterWorkerRequest {
            info: Some(info.into()),
        }
    };
    let holder = w
        .register_worker(register("holder"))
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let thief = w
        .register_worker(register("thief"))
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let task = w
        .lease_task(pb::LeaseTaskRequest {
            worker_id: holder.clone(),
            wait_ms: 5_000,
            gpus: vec![],
            withdrawn: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .task
        .expect("a probe task");
    denied(
        w.heartbeat(pb::HeartbeatRequest {
            worker_id: thief.clone(),
            task_id: task.task_id.clone(),
            attempt: task.attempt,
            frames_done: 0,
            gpus: vec![],
        })
        .await,
    );
    denied(
        w.fail_task(pb::FailTaskRequest {
            worker_id: thief.clone(),
            task_id: task.task_id.clone(),
            attempt: task.attempt,
            error: "stolen".into(),
            retryable: false,
            log: String::new(),
        })
        .await,
    );
    for encoder_unavailable in [false, true] {
        denied(
            w.hand_back_task(pb::HandBackTaskRequest {
                worker_id: thief.clone(),
                task_id: task.task_id.clone(),
                attempt: task.attempt,
                reason: "stolen".into(),
                log: String::new(),
                encoder_unavailable,
            })
            .await,
        );
    }
    // The holder's own heartbeat still works, and the job is unharmed.
    let hb = w
        .heartbeat(pb::HeartbeatRequest {
            worker_id: holder.clone(),
            task_id: task.task_id.clone(),
            attempt: task.attempt,
            frames_done: 0,
            gpus: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(hb.keep_going);
    let mut jobs = conn.jobs().await.unwrap();
    let job = jobs
        .get_job(pb::GetJobRequest {
            job_id: task.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(job.state, pb::JobState::Running as i32, "{}", job.error);
}
