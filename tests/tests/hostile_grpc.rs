//! The raw-gRPC half of the hostile-input table (`hostile.rs` has the
//! CLI half): calls a client could make without the CLI's help, each
//! refused with the right code and a message naming the problem.

use std::path::PathBuf;

use spotenc_proto::client::Connection;
use spotenc_proto::pb;
use spotenc_tests::media::video_clip;
use spotenc_tests::Fleet;

use super::assert_faithful;
use super::hostile::entries;

/// A job spec as a raw gRPC client would send it.
fn raw_spec(input: &str, output: &str) -> pb::JobSpec {
    use spotenc_proto::domain::{
        AudioSettings, Codec, Container, JobSpec, Priority, RateControl, VideoSettings,
    };
    JobSpec {
        renditions: Default::default(),
        audio_tracks: Default::default(),
        subtitle_tracks: Default::default(),
        quality: Default::default(),
        input: input.into(),
        output: output.into(),
        video: VideoSettings {
            codec: Codec::H264,
            rate: RateControl::Crf(23),
            preset: "ultrafast".into(),
            profile: None,
            keyint: None,
            max_size: None,
            allow_upscale: false,
            bit_depth: None,
            tonemap: false,
            autorotate: false,
        },
        audio: AudioSettings {
            copy_if_aac: true,
            bitrate_bps: 128_000,
        },
        container: Container::Mp4,
        chunk_seconds: 2.0,
        min_chunk_seconds: 0.5,
        priority: Priority::Cost,
        max_attempts: 2,
        escalate_after_attempts: 2,
        escalate_after_wait_seconds: 600,
    }
    .into()
}

/// One refused call: its code, and a message that names the problem.
fn check<T: std::fmt::Debug>(
    failures: &mut Vec<String>,
    name: &str,
    r: Result<T, tonic::Status>,
    code: tonic::Code,
    says: &str,
) {
    println!(
        "{name:<52} {:?}",
        r.as_ref()
            .map_err(|s| (s.code(), s.message().to_string()))
            .err()
    );
    match r {
        Ok(v) => failures.push(format!("{name}: accepted: {v:?}")),
        Err(s) if s.code() != code || !s.message().contains(says) => failures.push(format!(
            "{name}: {:?} {:?}, expected {code:?} saying {says:?}",
            s.code(),
            s.message()
        )),
        Err(_) => {}
    }
}

/// The raw-gRPC half of the table, on a coordinator with TLS and tokens and
/// one real worker: authentication and role misuse on every RPC, two
/// `authorization` headers, FFmpeg protocol names and unclean paths sent
/// without the CLI's help, a message over the size limit, and a second
/// worker acting on the real worker's lease. Every call is refused with the
/// right code and a message naming the problem; the job whose lease was
/// attacked still succeeds, faithful to its source; nothing else is written.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_grpc_calls_are_refused_and_the_fleet_serves_on() {
    use tonic::Code::{InvalidArgument, PermissionDenied, Unauthenticated};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let outputs = root.join("out");
    std::fs::create_dir(&outputs).unwrap();
    let src = video_clip(&root, 8, "640x360");
    let mut fleet = Fleet::builder().secure().cpu_workers(1).start();
    let tokens = fleet.tokens.clone().unwrap();
    let conn = |token: Option<&str>| Connection {
        url: fleet.url.clone(),
        token: token.map(Into::into),
        tls_ca: fleet.tls_ca.clone(),
    };
    let (client, worker) = (conn(Some(&tokens.client)), conn(Some(&tokens.worker)));
    let mut jobs_none = conn(None).jobs().await.unwrap();
    let mut jobs_guess = conn(Some("a-token-nobody-issued")).jobs().await.unwrap();
    let mut jobs_as_worker = worker.jobs().await.unwrap();
    let mut workers_as_client = client.workers().await.unwrap();
    let mut jobs = client.jobs().await.unwrap();
    let mut w = worker.workers().await.unwrap();
    let mut f = Vec::new();
    let out = |n: &str| outputs.join(n).display().to_string();
    let submit = |input: &str, output: &str| pb::SubmitJobRequest {
        spec: Some(raw_spec(input, output)),
        idempotency_key: String::new(),
    };

    // Authentication.
    check(
        &mut f,
        "no token",
        jobs_none.list_jobs(pb::ListJobsRequest::default()).await,
        Unauthenticated,
        "missing bearer token",
    );
    check(
        &mut f,
        "a token nobody issued",
        jobs_guess.list_jobs(pb::ListJobsRequest::default()).await,
        Unauthenticated,
        "unknown token",
    );
    let mut two = tonic::Request::new(pb::ListJobsRequest::default());
    for t in [&tokens.client, &tokens.admin] {
        two.metadata_mut()
            .append("authorization", format!("Bearer {t}").parse().unwrap());
    }
    check(
        &mut f,
        "two authorization headers",
        jobs_none.list_jobs(two).await,
        Unauthenticated,
        "more than one authorization header",
    );

    // A worker token on every job RPC.
    let role = "has role Worker";
    check(
        &mut f,
        "worker token: SubmitJob",
        jobs_as_worker
            .submit_job(submit(&src.display().to_string(), &out("w.mp4")))
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: GetJob",
        jobs_as_worker.get_job(pb::GetJobRequest::default()).await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: ListJobs",
        jobs_as_worker
            .list_jobs(pb::ListJobsRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: WatchJob",
        jobs_as_worker
            .watch_job(pb::WatchJobRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: CancelJob",
        jobs_as_worker
            .cancel_job(pb::CancelJobRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: GetTaskLogs",
        jobs_as_worker
            .get_task_logs(pb::GetTaskLogsRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: ListWorkers",
        jobs_as_worker
            .list_workers(pb::ListWorkersRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: GetPools",
        jobs_as_worker
            .get_pools(pb::GetPoolsRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: GetCosts",
        jobs_as_worker
            .get_costs(pb::GetCostsRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "worker token: GetCapacity",
        jobs_as_worker
            .get_capacity(pb::GetCapacityRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    // A client token on every worker RPC.
    let role = "has role Client";
    check(
        &mut f,
        "client token: RegisterWorker",
        workers_as_client
            .register_worker(pb::RegisterWorkerRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "client token: LeaseTask",
        workers_as_client
            .lease_task(pb::LeaseTaskRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "client token: Heartbeat",
        workers_as_client
            .heartbeat(pb::HeartbeatRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "client token: CompleteTask",
        workers_as_client
            .complete_task(pb::CompleteTaskRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "client token: FailTask",
        workers_as_client
            .fail_task(pb::FailTaskRequest::default())
            .await,
        PermissionDenied,
        role,
    );
    check(
        &mut f,
        "client token: HandBackTask",
        workers_as_client
            .hand_back_task(pb::HandBackTaskRequest::default())
            .await,
        PermissionDenied,
        role,
    );

    // Inputs the CLI would have made absolute, sent raw.
    let raw_inputs = [
        (
            "concat: protocol",
            format!("concat:{}|/etc/passwd", src.display()),
            "concat:",
        ),
        (
            "subfile protocol",
            "subfile,,start,0,end,100,,:/etc/passwd".to_string(),
            "subfile",
        ),
        ("pipe: protocol", "pipe:0".to_string(), "pipe:0"),
        (
            "data: URI",
            "data:video/mp4;base64,AAAA".to_string(),
            "data:video/mp4",
        ),
        (
            "a relative path",
            "in.mp4".to_string(),
            "not an absolute path",
        ),
        (
            "'..' in the input",
            format!("{}/../etc/passwd", root.display()),
            "contains '..'",
        ),
        (
            "file URL with '..'",
            format!("file://{}/../etc/passwd", root.display()),
            "contains '..'",
        ),
        ("an empty input", String::new(), "input"),
    ];
    for (i, (name, input, says)) in raw_inputs.iter().enumerate() {
        let r = jobs
            .submit_job(submit(input, &out(&format!("raw{i}.mp4"))))
            .await;
        check(
            &mut f,
            &format!("raw SubmitJob: {name}"),
            r,
            InvalidArgument,
            says,
        );
    }
    check(
        &mut f,
        "raw SubmitJob: no spec",
        jobs.submit_job(pb::SubmitJobRequest::default()).await,
        InvalidArgument,
        "spec",
    );
    // A request over the 64 MiB message limit.
    let mut huge = submit(&src.display().to_string(), &out("huge.mp4"));
    huge.idempotency_key = "k".repeat(65 << 20);
    let r = jobs.submit_job(huge).await;
    println!(
        "{:<52} {:?}",
        "a 65 MiB request",
        r.as_ref().err().map(|s| s.code())
    );
    match r {
        Ok(_) => f.push("a 65 MiB request: accepted".into()),
        Err(s)
            if matches!(
                s.code(),
                tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
            ) => {}
        Err(s) => f.push(format!("a 65 MiB request: {s:?}")),
    }

    // A second worker acting on the real worker's lease.
    let good = outputs.join("good.mp4");
    let id = jobs
        .submit_job(pb::SubmitJobRequest {
            spec: Some(raw_spec(
                &src.display().to_string(),
                &good.display().to_string(),
            )),
            idempotency_key: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
        .id;
    let info = spotenc_tests::cpu_worker_info("thief", "p", spotenc_proto::domain::Capacity::Spot);
    let thief = w
        .register_worker(pb::RegisterWorkerRequest {
            info: Some(info.into()),
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let leased = loop {
        let j = jobs
            .get_job(pb::GetJobRequest { job_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        if let Some(t) = j
            .tasks
            .iter()
            .find(|t| t.state == pb::TaskState::Leased as i32)
        {
            break t.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no task was ever leased: {j:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let not_holder = "does not hold task";
    let (task_id, attempt) = (leased.task_id.clone(), leased.attempts);
    check(
        &mut f,
        "another worker's lease: Heartbeat",
        w.heartbeat(pb::HeartbeatRequest {
            worker_id: thief.clone(),
            task_id: task_id.clone(),
            attempt,
            frames_done: 0,
            gpus: vec![],
        })
        .await,
        PermissionDenied,
        not_holder,
    );
    check(
        &mut f,
        "another worker's lease: FailTask",
        w.fail_task(pb::FailTaskRequest {
            worker_id: thief.clone(),
            task_id: task_id.clone(),
            attempt,
            error: "stolen".into(),
            retryable: false,
            log: String::new(),
        })
        .await,
        PermissionDenied,
        not_holder,
    );
    check(
        &mut f,
        "another worker's lease: HandBackTask",
        w.hand_back_task(pb::HandBackTaskRequest {
            worker_id: thief.clone(),
            task_id: task_id.clone(),
            attempt,
            reason: "stolen".into(),
            log: String::new(),
            encoder_unavailable: false,
        })
        .await,
        PermissionDenied,
        not_holder,
    );
    check(
        &mut f,
        "another worker's lease: CompleteTask",
        w.complete_task(pb::CompleteTaskRequest {
            worker_id: thief.clone(),
            task_id: task_id.clone(),
            attempt,
            result: Some(pb::complete_task_request::Result::Encode(
                pb::OutputObject::default(),
            )),
        })
        .await,
        PermissionDenied,
        not_holder,
    );

    assert!(
        f.is_empty(),
        "{} refusals wrong:\n{}",
        f.len(),
        f.join("\n")
    );
    assert!(fleet.coordinators[0].is_running(), "the coordinator died");
    assert!(fleet.worker("w0").is_running(), "the worker died");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let j = loop {
        let j = jobs
            .get_job(pb::GetJobRequest { job_id: id.clone() })
            .await
            .unwrap()
            .into_inner();
        let done = [
            pb::JobState::Succeeded,
            pb::JobState::Failed,
            pb::JobState::Cancelled,
        ]
        .iter()
        .any(|s| j.state == *s as i32);
        if done {
            break j;
        }
        assert!(std::time::Instant::now() < deadline, "job stuck: {j:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
    assert_faithful(&src, &good);
    let left: Vec<PathBuf> = entries(&outputs)
        .into_iter()
        .filter(|p| p != &good)
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
