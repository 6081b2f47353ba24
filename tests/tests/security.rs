//! A coordinator serving TLS with bearer tokens: every RPC checks the
//! token's role.

use spotenc_proto::client::Connection;
use spotenc_proto::pb;
use spotenc_tests::Fleet;

use super::{assert_faithful, assert_ok, av_clip};

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
        token: Some(tokens.client.clone()),
        tls_ca: fleet.tls_ca.clone(),
    };
    let mut w = conn.workers().await.unwrap();
    let r = w
        .lease_task(pb::LeaseTaskRequest {
            worker_id: "x".into(),
            wait_ms: 0,
            gpus: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(r.code(), tonic::Code::PermissionDenied);

    // Plaintext to a TLS port fails.
    let plain = Connection {
        url: fleet.url.replace("https://", "http://"),
        token: Some(tokens.client.clone()),
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
