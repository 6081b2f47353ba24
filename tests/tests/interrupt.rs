//! Spot interruption: real workers mid-encode get a notice from a local
//! server speaking each cloud's metadata protocol (or SIGTERM), hand the
//! chunk back with its encoder log, and exit before the deadline; another
//! worker picks the chunk up at once and the job completes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use spotenc_proto::pb;
use spotenc_tests::metadata::{self, Cloud, FakeMetadata, VM_NAME};
use spotenc_tests::{Fleet, RedisServer};

use super::{assert_faithful, ended, job, leased_encode, submit_id};

/// Poll interval the notice tests use, so that detection (up to one poll)
/// plus the hand-back fits the 2 s requeue bound with margin; the default
/// is 2000 ms.
const POLL_MS: &str = "200";

/// A video-only clip (one task per chunk, no audio task to race for).
fn video_clip(dir: &Path, seconds: u32) -> PathBuf {
    spotenc_tests::media::video_clip(dir, seconds, "960x540")
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn worker_log(fleet: &Fleet, name: &str) -> String {
    std::fs::read_to_string(fleet.data_dir.path().join(format!("{name}.log"))).unwrap_or_default()
}

/// Waits until the worker's log has `needle`.
async fn log_has(fleet: &Fleet, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !worker_log(fleet, name).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "{name} never logged {needle:?}: {}",
            worker_log(fleet, name)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the task has made progress (frames reported by heartbeat).
async fn progressing(url: &str, id: &str, task: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = job(url, id).await;
        let t = j.tasks.iter().find(|t| t.task_id == task).unwrap();
        if t.frames_done > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no progress: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metadata_flags(meta: &FakeMetadata) -> Vec<String> {
    [
        "--cloud",
        "auto",
        "--aws-metadata-url",
        &meta.url,
        "--gcp-metadata-url",
        &meta.url,
        "--azure-metadata-url",
        &meta.url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts spot worker "a", polling every [`POLL_MS`] and pointed at `meta`
/// for every cloud (so it must detect which one it is on).
fn add_watched_worker(fleet: &mut Fleet, meta: &FakeMetadata, extra: &[&str]) {
    let mut flags: Vec<String> = vec!["--notice-poll-ms".into(), POLL_MS.into()];
    flags.extend(metadata_flags(meta));
    flags.extend(extra.iter().map(|f| f.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let url = fleet.url.clone();
    fleet.add_worker_args("a", &url, "spot", &flags);
}

/// What one interruption cost, as measured.
struct Measured {
    requeue_ms: i64,
    relet_ms: i64,
    exit_ms: u128,
}

/// Runs a one-chunk job on spot worker "a" (pool spot-a), interrupts it
/// mid-encode with `notify`, and checks everything the issue asks: the
/// worker exits 0 before `deadline_s` (short enough that the chunk never
/// "fits" and is always handed back), the chunk is requeued within 2 s and
/// finished by worker "b", the job completes and is faithful to the
/// source, the interruption is counted for the pool, and the interrupted
/// attempt's encoder log can be read with `spotenc logs`.
async fn interrupt_mid_encode(
    label: &str,
    a_flags: &[String],
    deadline_s: u64,
    expect_reason: &str,
    notify: impl FnOnce(&Fleet),
) -> Measured {
    interrupt_mid_encode_on(
        None,
        label,
        "h264",
        a_flags,
        deadline_s,
        expect_reason,
        notify,
    )
    .await
}

/// [`interrupt_mid_encode`] with the coordinator's state in `redis`, in
/// `codec` (`h264` or `hevc`).
async fn interrupt_mid_encode_on(
    redis: Option<&RedisServer>,
    label: &str,
    codec: &str,
    a_flags: &[String],
    deadline_s: u64,
    expect_reason: &str,
    notify: impl FnOnce(&Fleet),
) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 8);
    let out = dir.path().join("out.mp4");
    let mut builder = Fleet::builder().cpu_workers(0);
    if let Some(r) = redis {
        builder = builder.redis(r.url());
    }
    let mut fleet = builder.start();
    let mut flags: Vec<&str> = vec!["--pool", "spot-a", "--notice-poll-ms", POLL_MS];
    let deadline = deadline_s.to_string();
    flags.extend(["--notice-deadline-seconds", &deadline]);
    flags.extend(a_flags.iter().map(String::as_str));
    let url = fleet.url.clone();
    fleet.add_worker_args("a", &url, "spot", &flags);
    // Slow enough that the chunk is still encoding at the notice.
    let preset = if codec == "hevc" { "medium" } else { "slower" };
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &[
            "--chunk-seconds",
            "10",
            "--preset",
            preset,
            "--codec",
            codec,
        ],
    );
    let victim = leased_encode(&fleet.url, &id).await;
    progressing(&fleet.url, &id, &victim).await;
    if a_flags.iter().any(|f| f == "auto") {
        log_has(&fleet, "a", "watching for interruption notices").await;
    }
    // An idle worker ready to take the chunk back.
    fleet.add_worker_args("b", &url, "on-demand", &["--pool", "od-b"]);
    log_has(&fleet, "b", "worker registered").await;
    // Worker a reported the instance type and zone its cloud gave it.
    let identity = match label {
        "aws" => Some((metadata::AWS_INSTANCE_TYPE, metadata::AWS_ZONE)),
        "gcp" => Some(("n2-standard-8", "us-central1-a")),
        "azure" => Some((metadata::AZURE_VM_SIZE, metadata::AZURE_ZONE)),
        _ => None,
    };
    if let Some((instance_type, zone)) = identity {
        let out = fleet.spotenc(&["workers", "--json"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let a: serde_json::Value = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("worker json"))
            .find(|w| {
                w["worker_id"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("a-"))
            })
            .unwrap_or_else(|| panic!("{label}: worker a not listed: {text}"));
        assert_eq!(a["instance_type"], instance_type, "{label}: {a}");
        assert_eq!(a["zone"], zone, "{label}: {a}");
    }

    let t0 = unix_ms();
    let noticed = Instant::now();
    notify(&fleet);
    let status = fleet
        .worker("a")
        .wait_exit(Duration::from_secs(deadline_s))
        .unwrap_or_else(|| panic!("{label}: worker a still running after the deadline"));
    let exit_ms = noticed.elapsed().as_millis();
    assert!(status.success(), "{label}: worker a exited with {status}");

    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_faithful(&src, &out);
    let t = done.tasks.iter().find(|t| t.task_id == victim).unwrap();
    let first = &t.history[0];
    assert_eq!(first.outcome, "interrupted", "{label}: {t:?}");
    assert!(
        first.error.contains(expect_reason),
        "{label}: {}",
        first.error
    );
    assert_eq!(first.pool, "spot-a");
    assert!(first.log_bytes > 0, "{label}: no log kept: {first:?}");
    let second = &t.history[1];
    assert_eq!(
        (second.outcome.as_str(), second.pool.as_str()),
        ("done", "od-b")
    );
    assert_eq!(t.interruptions.len(), 1);
    assert_eq!(
        (t.interruptions[0].pool.as_str(), t.interruptions[0].count),
        ("spot-a", 1)
    );
    assert_eq!(done.interruptions, t.interruptions, "job-level count");

    let logs = fleet.spotenc(&["logs", &id, "--task", &victim]);
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(
        text.contains("attempt 1") && text.contains("interrupted"),
        "{text}"
    );
    if codec == "hevc" {
        // libx265 prints to stderr instead of logging through FFmpeg
        // (before: none of its lines reached the audit log): its banner at
        // open and its summary at close, when the cancelled encode ended.
        // The summary's per-type lines ("frame I: ...") appear only when a
        // frame came out before the cancel; its last line ("encoded N
        // frames ...") appears either way (CI once cancelled at 27 frames
        // in with 0 out of the lookahead).
        let summary = text.lines().any(|l| {
            l.strip_prefix("encoded ")
                .and_then(|rest| rest.split_once(" frames"))
                .is_some_and(|(n, _)| n.parse::<u64>().is_ok())
        });
        assert!(
            text.contains("x265 [info]: HEVC encoder version") && summary,
            "no libx265 lines in the audit log: {text}"
        );
    } else {
        assert!(
            text.contains("libx264"),
            "no encoder lines in the audit log: {text}"
        );
    }
    // The worker's own log lines go to its stderr, not into the audit log.
    assert!(!text.contains("spotenc_worker"), "{text}");

    // The coordinator's metrics count the interruption against the pool.
    let text = spotenc_tests::promql::scrape(&fleet.metrics[0]);
    assert!(
        text.contains("spotenc_task_interruptions_total{pool=\"spot-a\"} 1"),
        "{label}: {text}"
    );
    assert!(
        text.contains("spotenc_jobs_ended_total{state=\"succeeded\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("spotenc_tasks_pending{partition=\"spot\"}"),
        "{text}"
    );

    let m = Measured {
        requeue_ms: first.ended_unix_ms - t0,
        relet_ms: second.started_unix_ms - t0,
        exit_ms,
    };
    println!(
        "{label}: notice -> requeued {} ms, -> leased by another worker {} ms, -> worker exited {} ms (poll {POLL_MS} ms)",
        m.requeue_ms, m.relet_ms, m.exit_ms
    );
    assert!(
        m.requeue_ms < 2_000,
        "{label}: requeued {} ms after the notice",
        m.requeue_ms
    );
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_spot_notice_hands_the_chunk_back_and_renews_imds_tokens() {
    let meta = FakeMetadata::start(Cloud::Aws).await;
    let mut flags = metadata_flags(&meta);
    // Tokens live 2 s, so the worker must renew them during the test.
    flags.extend(["--aws-token-ttl-seconds".into(), "2".into()]);
    interrupt_mid_encode(
        "aws",
        &flags,
        4,
        "aws spot instance-action terminate",
        |_| meta.aws_instance_action("terminate", 120),
    )
    .await;
    let (tokens, unauthorized, missing) =
        meta.with(|s| (s.tokens.len(), s.unauthorized, s.missing_header));
    assert!(tokens >= 2, "IMDSv2 token never renewed ({tokens} issued)");
    assert_eq!(missing, 0, "a token PUT without its TTL header");
    assert_eq!(unauthorized, 0, "a metadata GET without a valid token");
}

#[tokio::test(flavor = "multi_thread")]
async fn gcp_preemption_hands_the_chunk_back() {
    let meta = FakeMetadata::start(Cloud::Gcp).await;
    let flags = metadata_flags(&meta);
    interrupt_mid_encode("gcp", &flags, 4, "gcp preempted", |_| meta.gcp_preempt()).await;
    let (long_polls, missing) = meta.with(|s| (s.long_polls, s.missing_header));
    assert!(
        long_polls >= 1,
        "never long-polled with wait_for_change and last_etag"
    );
    assert_eq!(missing, 0, "a request without Metadata-Flavor: Google");
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_preempt_event_hands_the_chunk_back_and_is_acknowledged() {
    let meta = FakeMetadata::start(Cloud::Azure).await;
    // An event for another VM first: it must be ignored.
    meta.azure_event("other-vm-event", "Preempt", &["spotenc-vm-2"], 30);
    let flags = metadata_flags(&meta);
    interrupt_mid_encode("azure", &flags, 4, "azure scheduled event Preempt", |_| {
        meta.azure_event("evt-1", "Preempt", &[VM_NAME], 30)
    })
    .await;
    let (acks, queries, missing) =
        meta.with(|s| (s.acks.clone(), s.scheduled_event_queries, s.missing_header));
    assert_eq!(
        acks,
        vec!["evt-1".to_string()],
        "StartRequests for our event only"
    );
    assert!(queries >= 2);
    assert_eq!(missing, 0, "a request without Metadata: true");
}

/// The first Scheduled Events query is made at start-up, not at the first
/// poll, and a first answer that takes seconds (the real service can take
/// up to two minutes) is waited for, not treated as a failure.
#[tokio::test(flavor = "multi_thread")]
async fn azure_first_query_is_made_at_start_up_and_may_answer_slowly() {
    let meta = FakeMetadata::start(Cloud::Azure).await;
    meta.with(|s| s.first_answer_delay = Duration::from_secs(3));
    // Already scheduled: the slow first answer carries it.
    meta.azure_event("evt-early", "Preempt", &[VM_NAME], 30);
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    let started = Instant::now();
    add_watched_worker(&mut fleet, &meta, &[]);
    let status = fleet
        .worker("a")
        .wait_exit(Duration::from_secs(20))
        .expect("the worker exits after the slow first answer");
    assert!(status.success());
    let first = meta.with(|s| s.first_query_at).expect("a first query");
    let asked_after = first - started;
    let exited_after = started.elapsed();
    println!("azure: first query {asked_after:?} after start, exit {exited_after:?} after start (answer held 3 s)");
    assert!(
        asked_after < Duration::from_secs(2),
        "first query {asked_after:?} after start"
    );
    assert!(
        exited_after >= Duration::from_secs(3),
        "did not wait for the answer"
    );
    assert_eq!(meta.with(|s| s.acks.clone()), vec!["evt-early".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_hands_the_chunk_back_like_a_notice() {
    let flags = vec!["--cloud".to_string(), "none".to_string()];
    // On the Redis store: the Lua hand-back, interruption counts and logs
    // end to end.
    let redis = RedisServer::start();
    // In HEVC: libx265's own output reaches the attempt's audit log.
    interrupt_mid_encode_on(
        Some(&redis),
        "sigterm",
        "hevc",
        &flags,
        4,
        "SIGTERM",
        |fleet| fleet.proc("a").signal("-TERM"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_that_fits_well_inside_the_deadline_is_finished_not_handed_back() {
    let meta = FakeMetadata::start(Cloud::Aws).await;
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 4);
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    add_watched_worker(&mut fleet, &meta, &["--pool", "spot-a"]);
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &["--chunk-seconds", "10", "--preset", "slow"],
    );
    let victim = leased_encode(&fleet.url, &id).await;
    progressing(&fleet.url, &id, &victim).await;
    // The default deadline (90 s) leaves plenty for a 4 s chunk.
    meta.aws_instance_action("terminate", 120);
    let status = fleet
        .worker("a")
        .wait_exit(Duration::from_secs(90))
        .expect("worker a exits");
    assert!(status.success());
    let j = job(&fleet.url, &id).await;
    let t = j.tasks.iter().find(|t| t.task_id == victim).unwrap();
    assert_eq!(t.history.len(), 1, "{t:?}");
    assert_eq!(t.history[0].outcome, "done", "{t:?}");
    assert!(t.interruptions.is_empty());
    assert!(worker_log(&fleet, "a").contains("notice: finishing"));
    // The stitch is left for another worker.
    fleet.add_worker("b");
    let done = ended(&fleet.url, &id, Duration::from_secs(60), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_faithful(&src, &out);
}

#[tokio::test(flavor = "multi_thread")]
async fn rebalance_recommendation_stops_leasing_but_finishes_the_current_chunk() {
    let meta = FakeMetadata::start(Cloud::Aws).await;
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 6);
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    add_watched_worker(&mut fleet, &meta, &[]);
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &["--chunk-seconds", "3", "--preset", "slow"],
    );
    let first = leased_encode(&fleet.url, &id).await;
    meta.aws_rebalance();
    log_has(&fleet, "a", "rebalance recommendation").await;
    // The chunk in hand is finished ...
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(&fleet.url, &id).await;
        let t = j.tasks.iter().find(|t| t.task_id == first).unwrap();
        if t.state == pb::TaskState::Done as i32 {
            break;
        }
        assert_eq!(t.history.len(), 1, "{t:?}");
        assert!(
            Instant::now() < deadline,
            "first chunk never finished: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and nothing else is leased while the worker stays up.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let j = job(&fleet.url, &id).await;
    let leased: Vec<&pb::TaskSummary> = j
        .tasks
        .iter()
        .filter(|t| t.attempts > 0 && t.task_id != first && !t.task_id.ends_with("/probe"))
        .collect();
    assert!(leased.is_empty(), "leased after the rebalance: {leased:?}");
    assert!(fleet.worker("a").is_running());
    fleet.add_worker("b");
    let done = ended(&fleet.url, &id, Duration::from_secs(90), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_faithful(&src, &out);
    // The spot notice that follows finds it idle: it exits at once.
    let noticed = Instant::now();
    meta.aws_instance_action("terminate", 120);
    let status = fleet
        .worker("a")
        .wait_exit(Duration::from_secs(5))
        .expect("idle worker exits");
    assert!(status.success());
    println!(
        "rebalance then notice while idle: exited {} ms after the notice",
        noticed.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notice_while_idle_exits_promptly() {
    let meta = FakeMetadata::start(Cloud::Gcp).await;
    let mut fleet = Fleet::builder().cpu_workers(0).start();
    add_watched_worker(&mut fleet, &meta, &[]);
    log_has(&fleet, "a", "watching for interruption notices").await;
    let noticed = Instant::now();
    meta.gcp_preempt();
    let status = fleet
        .worker("a")
        .wait_exit(Duration::from_secs(5))
        .expect("idle worker exits");
    assert!(status.success());
    let ms = noticed.elapsed().as_millis();
    println!("idle: exited {ms} ms after the notice");
    assert!(ms < 2_000, "idle worker took {ms} ms to exit");
}
