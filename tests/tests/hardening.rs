//! Reliability findings of the security read, each reproduced against the
//! built binaries and a real redis-server: the Redis prefix survives
//! `--redis`, an evicting Redis is refused at start-up, and a multi-rendition
//! commit is all or nothing, a dropped lease call leaves nothing leased,
//! retention empties Redis of ended jobs and silent workers, and a Redis
//! Cluster serves two coordinators with every key in one slot.

use std::process::Command;
use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::media::{frame_count, psnr, video_clip};
use spotenc_tests::{bin, free_port, Fleet, RedisCluster, RedisServer};

use super::{ended, submit_id};

fn redis_keys(port: u16) -> Vec<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--scan"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Before: `--redis URL` replaced the configured `[redis] prefix` with
/// "spotenc", so two tenants sharing a Redis by prefix collided. (The
/// prefix is a hash tag, `{tenant-a}:`, so Redis Cluster keeps a tenant's
/// keys in one slot.)
#[tokio::test(flavor = "multi_thread")]
async fn the_redis_flag_keeps_the_configured_prefix() {
    let redis = RedisServer::start_volatile();
    let fleet = Fleet::builder()
        .redis(redis.url())
        .config("[redis]\nurl = \"redis://127.0.0.1:1/\"\nprefix = \"tenant-a\"\n")
        .cpu_workers(1)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let out = dir.path().join("out.mp4");
    let id = submit_id(&fleet, &src, &out, &[]);
    let j = ended(&fleet.url, &id, Duration::from_secs(60), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
    let keys = redis_keys(redis.port);
    assert!(!keys.is_empty());
    let stray: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with("{tenant-a}:"))
        .collect();
    assert!(
        stray.is_empty(),
        "keys outside the configured prefix: {stray:?}"
    );
}

/// Before: a `redis+cluster://` URL was refused, and keys of one job hashed
/// to different slots, so scripts and pipelines would have failed with
/// CROSSSLOT on Redis Cluster or a managed cluster-mode service. Now two
/// coordinator replicas share a real three-node cluster that
/// `redis-cli --cluster create` built, a job runs through it faithfully, and
/// every key is under the `{spotenc}` hash tag, on the one node that owns
/// its slot.
#[tokio::test(flavor = "multi_thread")]
async fn two_coordinators_share_a_three_node_redis_cluster() {
    let cluster = RedisCluster::start();
    let fleet = Fleet::builder()
        .redis(cluster.url())
        .coordinators(2)
        .cpu_workers(1)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 4, "320x240");
    let out = dir.path().join("out.mp4");
    let id = submit_id(&fleet, &src, &out, &["--chunk-seconds", "1"]);
    let j = ended(&fleet.url, &id, Duration::from_secs(90), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
    assert_eq!(frame_count(&out), frame_count(&src));
    let p = psnr(&out, &src);
    assert!(p > 30.0, "PSNR {p}");
    let by_node = cluster.keys_by_node();
    let holding: Vec<&(u16, Vec<String>)> = by_node
        .iter()
        .filter(|(_, keys)| !keys.is_empty())
        .collect();
    assert_eq!(holding.len(), 1, "keys on more than one node: {by_node:?}");
    let keys = &holding[0].1;
    assert!(keys.iter().any(|k| k.contains(":job:")), "{keys:?}");
    let untagged: Vec<&String> = keys
        .iter()
        .filter(|k| !k.starts_with("{spotenc}:"))
        .collect();
    assert!(
        untagged.is_empty(),
        "keys without the hash tag: {untagged:?}"
    );
}

/// Before: a plain `redis://` URL to one node of a cluster was accepted, and
/// every script whose keys that node did not own failed ("Script attempted
/// to access a non local key in a cluster node") in a loop. Now the
/// coordinator refuses to start and names the `redis+cluster://` form.
#[test]
fn a_plain_url_to_a_cluster_node_is_refused_with_the_cluster_form_named() {
    let cluster = RedisCluster::start();
    let stderr = refused_at_start_up(&format!("redis://127.0.0.1:{}/", cluster.ports[0]));
    assert!(
        stderr.contains("is a Redis Cluster node") && stderr.contains("redis+cluster://"),
        "{stderr}"
    );
}

/// Starts a coordinator on `redis_url`; it must exit, failing, within
/// 20 s. Returns what it wrote on stderr.
fn refused_at_start_up(redis_url: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin("spotenc"))
        .args([
            "coordinator",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--redis",
            redis_url,
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().ok();
            panic!("the coordinator started on {redis_url}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

/// Before: a Redis with `maxmemory-policy allkeys-lru` was accepted, and
/// under memory pressure it would evict job and lease records. Now the
/// coordinator refuses to start and names the policy.
#[test]
fn an_evicting_redis_is_refused_at_start_up() {
    let redis = RedisServer::start_volatile();
    let set = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "CONFIG",
            "SET",
            "maxmemory-policy",
            "allkeys-lru",
        ])
        .output()
        .unwrap();
    assert!(set.status.success());
    let stderr = refused_at_start_up(&redis.url());
    assert!(
        stderr.contains("maxmemory-policy allkeys-lru") && stderr.contains("noeviction"),
        "{stderr}"
    );
}

/// Before: with rendition `b.mp4` turned into a directory after submission,
/// the job failed but `a.mp4` had already been replaced. Now every target is
/// checked before the first rename: the job fails naming `b.mp4`, the old
/// `a.mp4` is untouched, and no temporaries are left.
#[tokio::test(flavor = "multi_thread")]
async fn a_multi_rendition_commit_replaces_all_outputs_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let outputs = dir.path().join("o");
    std::fs::create_dir(&outputs).unwrap();
    let a = outputs.join("a.mp4");
    let b = outputs.join("b.mp4");
    std::fs::write(&a, b"the old a.mp4").unwrap();
    let fleet = Fleet::builder().cpu_workers(1).start();
    let id = submit_id(
        &fleet,
        &src,
        &a,
        &["--rendition", &format!("{},scale=160x120", b.display())],
    );
    std::fs::create_dir(&b).unwrap();
    let j = ended(&fleet.url, &id, Duration::from_secs(60), None).await;
    assert_eq!(j.state, pb::JobState::Failed as i32, "{j:?}");
    assert!(
        std::fs::read(&a).unwrap() == b"the old a.mp4",
        "a.mp4 was replaced by a job that failed ({})",
        j.error
    );
    assert!(j.error.contains("b.mp4 is a directory"), "{}", j.error);
    let left: Vec<String> = std::fs::read_dir(&outputs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "a.mp4" && n != "b.mp4")
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

/// A worker's failure message and encoder log may carry the presigned URLs
/// it was given (FFmpeg and HTTP clients print URLs). The coordinator
/// redacts the query string of every URL a worker reports before it stores
/// or logs it, so `spotenc status`, `spotenc logs` and the coordinator's log
/// never show a credential or signature. Driven over raw gRPC as a worker.
/// (The worker's media layer already names inputs without their query, so a
/// real S3 failure cannot show the difference; this reports one.)
#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_a_worker_reports_never_reach_status_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 1, "160x120");
    let fleet = Fleet::builder().cpu_workers(0).start();
    let id = submit_id(&fleet, &src, &dir.path().join("o.mp4"), &[]);
    let mut raw = spotenc_tests::RawWorker::register(&fleet.url, "w").await;
    let worker_id = raw.id.clone();
    let task = raw.lease().await.expect("the probe");
    let url = "https://media.s3.example/in/src.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256\
               &X-Amz-Credential=AKIAEXAMPLESECRET%2F20261130&X-Amz-Signature=deadbeefsecret";
    raw.client
        .fail_task(pb::FailTaskRequest {
            worker_id,
            task_id: task.task_id.clone(),
            attempt: task.attempt,
            error: format!("bad input {url}: Server returned 403 Forbidden"),
            retryable: false,
            log: format!("[https @ 0x1] Opening '{url}' for reading\nHTTP error 403"),
        })
        .await
        .unwrap();
    let j = ended(&fleet.url, &id, Duration::from_secs(30), None).await;
    assert_eq!(j.state, pb::JobState::Failed as i32);
    let mut seen = j.error.clone();
    for args in [["status", id.as_str()], ["logs", id.as_str()]] {
        let o = fleet.spotenc(&args);
        seen.push_str(&String::from_utf8_lossy(&o.stdout));
        seen.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    seen.push_str(
        &std::fs::read_to_string(fleet.data_dir.path().join("coordinator0.log")).unwrap(),
    );
    for secret in ["AKIAEXAMPLESECRET", "deadbeefsecret", "X-Amz-"] {
        assert!(!seen.contains(secret), "{secret} leaked:\n{seen}");
    }
    // What is left still says what failed, and where.
    assert!(
        j.error
            .contains("https://media.s3.example/in/src.mp4?<redacted>"),
        "{}",
        j.error
    );
    assert!(
        seen.contains("Opening 'https://media.s3.example/in/src.mp4?<redacted>' for reading"),
        "{seen}"
    );
}

/// Before: a `WatchJob` stream whose client went away kept polling the store
/// every 200 ms until the job ended, which for a queued job could be never.
/// Now it ends at once; `spotenc_watch_streams` counts the open ones.
#[tokio::test(flavor = "multi_thread")]
async fn a_watch_stream_ends_when_its_client_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 1, "160x120");
    // No workers: the job stays queued.
    let fleet = Fleet::builder().cpu_workers(0).start();
    let id = submit_id(&fleet, &src, &dir.path().join("o.mp4"), &[]);
    let open = || {
        let text = spotenc_tests::promql::scrape(&fleet.metrics[0]);
        text.lines()
            .find_map(|l| l.strip_prefix("spotenc_watch_streams "))
            .map(|v| v.trim().parse::<f64>().unwrap())
            .unwrap_or(0.0)
    };
    let mut c = pb::job_service_client::JobServiceClient::connect(fleet.url.clone())
        .await
        .unwrap();
    let mut stream = c
        .watch_job(pb::WatchJobRequest { job_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    assert_eq!(open(), 1.0);
    drop(stream);
    drop(c);
    let start = Instant::now();
    while open() != 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the stream kept running after its client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Before: an output path with a newline or ESC was accepted (and a name
/// could forge log lines). Now submission refuses it, naming the field, and
/// nothing runs.
#[test]
fn paths_with_control_characters_are_refused_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 1, "160x120");
    let fleet = Fleet::builder().cpu_workers(0).start();
    let bad = dir.path().join("o\nINFO job committed.mp4");
    let o = fleet.spotenc(&["submit", src.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("output has a control character U+000A"),
        "{stderr}"
    );
    let listed = fleet.spotenc(&["status"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "{listed:?}"
    );
}

/// Before: a LeaseTask call dropped while the store was leasing (a worker
/// whose notice came mid-call, a broken connection) left the task leased
/// to nobody until the lease TTL, then counted an expiry against it. Now
/// the lease runs to its end on its own task and is released at once.
/// A proxy in front of Redis holds back the answer to the claim script.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_lease_call_leaves_no_task_leased_to_nobody() {
    let redis = RedisServer::start_volatile();
    let proxy = spotenc_tests::proxy::Proxy::start(&format!("127.0.0.1:{}", redis.port));
    let fleet = Fleet::builder()
        .redis(format!("redis://127.0.0.1:{}/", proxy.port))
        .lease_ttl_ms(30_000)
        .cpu_workers(0)
        .start();
    // The claim script, loaded so the coordinator calls it by its SHA.
    let lua = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../store/lua/{name}.lua",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let claim = format!("{}\n{}", lua("lib"), lua("claim"));
    let sha = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "SCRIPT", "LOAD", &claim])
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout).trim().to_string();
    assert_eq!(sha.len(), 40, "{sha}");
    // Late, but inside the coordinator's 500 ms Redis response timeout.
    proxy.delay(sha.as_bytes(), Duration::from_millis(400));

    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 1, "160x120");
    let mut raw = spotenc_tests::RawWorker::register(&fleet.url, "w").await;
    // A first call with nothing to lease warms the coordinator's view of
    // the worker, so the next one goes straight to the claim.
    let warm = raw.client.lease_task(raw.lease_request(0)).await.unwrap();
    assert!(warm.into_inner().task.is_none());
    let id = submit_id(&fleet, &src, &dir.path().join("o.mp4"), &[]);
    // The worker gives up on the call while the claim's answer is late.
    let req = raw.lease_request(5_000);
    let dropped =
        tokio::time::timeout(Duration::from_millis(200), raw.client.lease_task(req)).await;
    assert!(dropped.is_err(), "the lease answered in time: {dropped:?}");

    let deadline = Instant::now() + Duration::from_secs(8);
    let probe = loop {
        let j = super::job(&fleet.url, &id).await;
        let t = j.tasks[0].clone();
        if t.state == pb::TaskState::Pending as i32 && !t.history.is_empty() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the task stayed leased to nobody: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(probe.history[0].outcome, "released", "{probe:?}");
    assert!(probe.interruptions.is_empty(), "{probe:?}");
    // The next call gets it, with a new fence.
    let task = raw.lease().await.expect("the probe again");
    assert_eq!((task.task_id, task.attempt), (probe.task_id, 2));
}

/// Before: finished jobs, their tasks, attempts, logs and idempotency keys,
/// and every worker that ever registered stayed in Redis for ever, so a
/// busy fleet's Redis grew without bound. Now `retention_hours` (default
/// 168; here 3.6 s) forgets them.
#[tokio::test(flavor = "multi_thread")]
async fn ended_jobs_and_silent_workers_leave_redis_after_the_retention() {
    let redis = RedisServer::start_volatile();
    let mut fleet = Fleet::builder()
        .redis(redis.url())
        .config("retention_hours = 0.001\n")
        .cpu_workers(1)
        .start();
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let out = dir.path().join("out.mp4");
    let id = submit_id(&fleet, &src, &out, &["--idempotency-key", "nightly-42"]);
    let j = ended(&fleet.url, &id, Duration::from_secs(60), None).await;
    assert_eq!(j.state, pb::JobState::Succeeded as i32, "{j:?}");
    let records = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| [":job:", ":task:", ":idem:"].iter().any(|m| k.contains(m)))
            .cloned()
            .collect()
    };
    assert!(!records(&redis_keys(redis.port)).is_empty());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = records(&redis_keys(redis.port));
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still in Redis: {left:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = fleet.spotenc(&["status", &id]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("not found"),
        "{r:?}"
    );
    // The output is the user's: retention never touches it.
    assert!(out.exists());
    // The live worker is kept; a worker that went silent is forgotten.
    fleet.worker("w0").kill();
    let deadline = Instant::now() + Duration::from_secs(20);
    while redis_keys(redis.port)
        .iter()
        .any(|k| k.contains(":worker:"))
    {
        assert!(
            Instant::now() < deadline,
            "the dead worker is still in Redis"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Before: one client could queue jobs and open WatchJob streams without
/// bound. Now `[quotas]` limits both per client (token name, `anonymous`
/// without authentication), with RESOURCE_EXHAUSTED naming the setting,
/// and an ended job or a closed stream frees its place.
#[tokio::test(flavor = "multi_thread")]
async fn per_client_quotas_bound_queued_jobs_and_watch_streams() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 1, "160x120");
    // No workers: jobs stay queued.
    let fleet = Fleet::builder()
        .config("[quotas]\nqueued_jobs_per_client = 2\nwatch_streams_per_client = 1\n")
        .cpu_workers(0)
        .start();
    let a = submit_id(&fleet, &src, &dir.path().join("a.mp4"), &[]);
    let b = submit_id(&fleet, &src, &dir.path().join("b.mp4"), &[]);
    let r = super::submit(&fleet, &src, &dir.path().join("c.mp4"), &[]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("\"anonymous\" has 2 jobs") && err.contains("queued_jobs_per_client"),
        "{err}"
    );
    super::assert_ok(&fleet.spotenc(&["cancel", &a]), "cancel");
    submit_id(&fleet, &src, &dir.path().join("c.mp4"), &[]);

    let mut c = pb::job_service_client::JobServiceClient::connect(fleet.url.clone())
        .await
        .unwrap();
    // A queued job: its stream stays open.
    let watch = pb::WatchJobRequest { job_id: b };
    let mut first = c.watch_job(watch.clone()).await.unwrap().into_inner();
    assert!(first.message().await.unwrap().is_some());
    let second = c.watch_job(watch.clone()).await.unwrap_err();
    assert_eq!(second.code(), tonic::Code::ResourceExhausted, "{second:?}");
    assert!(
        second.message().contains("watch_streams_per_client"),
        "{second:?}"
    );
    drop(first);
    // The closed stream's place comes back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.watch_job(watch.clone()).await {
            Ok(_) => break,
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                assert!(Instant::now() < deadline, "the closed stream still counts");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("{s:?}"),
        }
    }
}

/// Before: a probe result over tonic's 4 MiB default (a long all-intra
/// source lists every frame as a keyframe) was refused with OutOfRange
/// ("decoded message length too large: found 4967111 bytes"), so the probe
/// ran again after each lease expiry until its job failed. Now the limit is
/// 64 MiB on both sides (beyond it the worker fails the task naming the
/// size), and a 500,000-keyframe probe plans its job.
#[tokio::test(flavor = "multi_thread")]
async fn a_probe_result_over_four_mib_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 1, "160x120");
    let fleet = Fleet::builder().cpu_workers(0).start();
    let id = submit_id(
        &fleet,
        &src,
        &dir.path().join("o.mp4"),
        &["--chunk-seconds", "600"],
    );
    let mut raw = spotenc_tests::RawWorker::register(&fleet.url, "w").await;
    let worker_id = raw.id.clone();
    let task = raw.lease().await.expect("the probe");
    // 500,000 frames at 25 fps, every one a keyframe: 20,000 s.
    let n: u64 = 500_000;
    let probe = pb::ProbeResult {
        format_name: "mov,mp4".into(),
        duration_seconds: n as f64 / 25.0,
        index_source: "container-index".into(),
        video: Some(pb::VideoStreamInfo {
            codec: "h264".into(),
            width: 160,
            height: 120,
            pix_fmt: "yuv420p".into(),
            time_base: Some(pb::Rational { num: 1, den: 25 }),
            avg_frame_rate: Some(pb::Rational { num: 25, den: 1 }),
            start_pts: 0,
            end_pts: n as i64,
            frame_count: n,
            keyframes: (0..n)
                .map(|i| pb::Keyframe {
                    frame: i,
                    pts: i as i64,
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let req = pb::CompleteTaskRequest {
        worker_id,
        task_id: task.task_id.clone(),
        attempt: task.attempt,
        result: Some(pb::complete_task_request::Result::Probe(probe)),
    };
    assert!(prost::Message::encoded_len(&req) > 4 << 20);
    raw.client.complete_task(req).await.unwrap();
    // Planned: 20,000 s in 600 s chunks.
    let j = super::job(&fleet.url, &id).await;
    assert_eq!(j.chunks_total, 34, "{}", j.error);
    assert_eq!(j.frames_total, n);
}
