//! The contract every [`StateStore`] backend must meet. Each test takes a
//! fresh store from a factory, so a Redis backend can run the same suite.
//!
//! Layout: this file holds the fixtures and the core transitions' tests;
//! `faults` failures, interruptions and escalation; `placement` placement
//! and cost accounting; `differential` random operation sequences against
//! both stores; `embedded` the embedded store's own guarantees.

use std::sync::Arc;

use spotenc_proto::domain::*;
use spotenc_proto::Error;

use super::embedded::EmbeddedStore;
use super::redis::RedisStore;
use crate::StateStore;
use spotenc_core::state::{Ending, JobRecord, Limits, NewTask};
use spotenc_tests::{RedisCluster, RedisServer};

const LIMITS: Limits = Limits {
    lease_ttl_ms: 1_000,
    max_expiries: 2,
};

/// A job spec with an output of its own: a store refuses a second running
/// job writing the same path.
fn spec() -> JobSpec {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    JobSpec {
        renditions: Default::default(),
        audio_tracks: Default::default(),
        subtitle_tracks: Default::default(),
        quality: Default::default(),
        input: "/in.mp4".into(),
        output: format!("/out-{n}.mp4"),
        video: VideoSettings {
            codec: Codec::H264,
            rate: RateControl::Crf(23),
            preset: "fast".into(),
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
        chunk_seconds: 10.0,
        min_chunk_seconds: 2.0,
        priority: Priority::Cost,
        max_attempts: 2,
        escalate_after_attempts: 2,
        escalate_after_wait_seconds: 60,
    }
}

fn obj(path: &str, frames: u64) -> OutputObject {
    OutputObject {
        path: path.into(),
        size_bytes: 10,
        sha256: "00".into(),
        frames,
        ..Default::default()
    }
}

fn probe_info() -> ProbeInfo {
    ProbeInfo {
        format_name: "mp4".into(),
        duration_seconds: 2.0,
        index_source: "packet-scan".into(),
        video: VideoStreamInfo {
            stream_index: 0,
            codec: "h264".into(),
            width: 64,
            height: 64,
            pix_fmt: "yuv420p".into(),
            time_base: Rational::new(1, 25),
            avg_frame_rate: Rational::new(25, 1),
            start_pts: 0,
            end_pts: 50,
            frame_count: 50,
            keyframes: vec![
                Keyframe { frame: 0, pts: 0 },
                Keyframe { frame: 25, pts: 25 },
            ]
            .into(),
        },
        audio: None,
        streams: vec![],
        chapters: 0,
        color: Default::default(),
    }
}

/// Two encode tasks of 25 frames and a stitch that waits for both.
fn follow_ups(job: &str) -> Vec<NewTask> {
    let enc = |i: u32| NewTask {
        id: format!("{job}/encode-{i}"),
        kind: TaskKind::Encode,
        chunk: i,
        work: Work::Encode(EncodeTask {
            renditions: Default::default(),
            identities: Vec::new(),
            measure_quality: false,
            input: "/in.mp4".into(),
            output: format!("/w/{job}/chunk-{i}.nut"),
            chunk: ChunkRange {
                index: i,
                start_frame: u64::from(i) * 25,
                end_frame: u64::from(i + 1) * 25,
                start_pts: i64::from(i) * 25,
                end_pts: Some(i64::from(i + 1) * 25),
            },
            video: spec().video,
            origin_pts: 0,
            video_stream: 0,
            source_frame_rate: Rational::new(25, 1),
        }),
        deps: vec![],
        frames_total: 25,
        demand: Default::default(),
    };
    vec![
        enc(0),
        enc(1),
        NewTask {
            id: format!("{job}/stitch"),
            kind: TaskKind::Stitch,
            chunk: 0,
            work: Work::Stitch(StitchTask {
                rendition: 0,
                chunks: vec![],
                audio: None,
                more_audio: vec![],
                carry: None,
                frame_rate: None,
                autorotated: false,
                output: "/.out.mp4.part".into(),
                container: Container::Mp4,
                expected_frames: 50,
                part_urls: vec![],
                part_size_bytes: 0,
            }),
            deps: vec![format!("{job}/encode-0"), format!("{job}/encode-1")],
            frames_total: 50,
            demand: Default::default(),
        },
    ]
}

fn worker() -> super::WorkerRecord {
    worker_with("w1", Capacity::Spot)
}

fn worker_with(id: &str, capacity: Capacity) -> super::WorkerRecord {
    super::WorkerRecord {
        id: id.into(),
        info: WorkerInfo {
            name: "w".into(),
            pool: "p".into(),
            hardware: "cpu".into(),
            slots: 1,
            cores: 1,
            memory_bytes: 0,
            codecs: vec![],
            instance_type: "c6i.large".into(),
            zone: "eu-west-1a".into(),
            capacity,
            gpus: vec![],
            encoder: String::new(),
            encoder_params: Default::default(),
        },
        registered_unix_ms: 0,
        strikes: Vec::new(),
    }
}

/// Opens the embedded store in `dir`, which an opener may just have
/// dropped. Run beside the other tests, a reopen was refused as "in use"
/// (never when run alone); the likely cause, not proven, is a process
/// another test spawns, which holds a forked copy of the lock file's
/// descriptor (and so the lock) until it execs. Wait that out, briefly.
fn open_embedded(dir: &std::path::Path) -> EmbeddedStore {
    let started = std::time::Instant::now();
    loop {
        match EmbeddedStore::open(dir, LIMITS) {
            Err(e) if e.to_string().contains("in use") && started.elapsed().as_secs() < 5 => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r.unwrap(),
        }
    }
}

async fn embedded() -> (Arc<dyn StateStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path(), LIMITS).unwrap();
    s.register_worker(worker()).await.unwrap();
    (Arc::new(s), dir)
}

/// A fresh redis-server per test: a static one would outlive the test
/// binary (statics are never dropped) and hold its output pipes open.
async fn redis() -> (Arc<dyn StateStore>, RedisServer) {
    let server = RedisServer::start_volatile();
    let s = RedisStore::connect(&server.url(), "spotenc", "/w", LIMITS)
        .await
        .unwrap();
    s.register_worker(worker()).await.unwrap();
    (Arc::new(s), server)
}

/// The same store on a fresh three-node Redis Cluster.
async fn redis_cluster() -> (Arc<dyn StateStore>, RedisCluster) {
    let cluster = RedisCluster::start();
    let s = RedisStore::connect(&cluster.url(), "spotenc", "/w", LIMITS)
        .await
        .unwrap();
    s.register_worker(worker()).await.unwrap();
    (Arc::new(s), cluster)
}

/// Submits a job and completes its probe; returns the job id.
async fn planned_job(s: &dyn StateStore) -> String {
    let job = s.submit(spec(), "", 0).await.unwrap();
    let t = s.lease_next("w1", 0).await.unwrap().unwrap();
    assert_eq!(t.work.kind(), TaskKind::Probe);
    s.complete(
        &t.task_id,
        t.attempt,
        TaskOutcome::Probe(probe_info()),
        follow_ups(&job.id),
        1,
    )
    .await
    .unwrap();
    job.id
}

/// A probe's follow-up tasks file pending since the completion, behind
/// their dependencies, and in the index: both encodes lease next, oldest
/// first.
#[test]
fn follow_ups_file_into_the_index() {
    use spotenc_core::cost::Lease;
    use spotenc_core::state::machine::State;
    let mut s = State::default();
    s.register_worker(worker());
    s.submit(spec(), "", "j1".into(), "/w", 0).unwrap();
    let (id, attempt) = s
        .lease_id("w1", &Lease::fifo(), 1, LIMITS)
        .unwrap()
        .unwrap();
    s.complete(
        &id,
        attempt,
        TaskOutcome::Probe(probe_info()),
        follow_ups("j1"),
        7,
    )
    .unwrap();
    assert_eq!(s.tasks["j1/encode-0"].pending_since_ms, 7);
    assert_eq!(s.tasks["j1/stitch"].state, TaskState::Blocked);
    for want in ["j1/encode-0", "j1/encode-1"] {
        let (got, _) = s
            .lease_id("w1", &Lease::fifo(), 8, LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!(got, want);
    }
    assert_eq!(s.lease_id("w1", &Lease::fifo(), 8, LIMITS).unwrap(), None);
}

/// Submission stamps the job's number and times, and refuses, changing
/// nothing, a client over its quota and a job writing a running job's
/// output; the same key and spec give back the first job.
#[test]
fn submission_checks_change_nothing_when_they_refuse() {
    use spotenc_core::state::machine::State;
    let sp = spec();
    let mut s = State::default();
    s.submit_as(sp.clone(), "k", "c", 1, "j1".into(), "/w", 5)
        .unwrap();
    assert_eq!(s.jobs["j1"].created_unix_ms, 5);
    assert_eq!(s.tasks["j1/probe"].pending_since_ms, 5);
    assert_eq!(s.next_seq, 1);
    let before = s.clone();
    let e = s
        .submit_as(spec(), "", "c", 1, "j2".into(), "/w", 6)
        .unwrap_err()
        .to_string();
    assert!(e.contains("client \"c\" has 1 jobs"), "{e}");
    assert_eq!(s, before);
    assert_eq!(
        s.submit_as(sp, "k", "c", 1, "j3".into(), "/w", 7)
            .unwrap()
            .id,
        "j1"
    );
    let mut clash = spec();
    clash.output = s.jobs["j1"].spec.output.clone();
    let e = s
        .submit_as(clash, "", "d", 0, "j4".into(), "/w", 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("running job j1"), "{e}");
    assert_eq!(s, before);
}

async fn submit_is_idempotent_by_key(s: Arc<dyn StateStore>) {
    let sp = spec();
    let a = s.submit(sp.clone(), "k1", 0).await.unwrap();
    let b = s.submit(sp, "k1", 5).await.unwrap();
    let c = s.submit(spec(), "k2", 5).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_ne!(a.id, c.id);
    // The same key for a different job is refused, not answered with the
    // first job (before: the old job came back as if it were the new one).
    let mut other = spec();
    other.output = "/elsewhere/out.mp4".into();
    let e = s.submit(other, "k1", 6).await.unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("different spec") && m.contains(&a.id)),
        "{e:?}"
    );
}

async fn retention_purges_ended_jobs_and_silent_workers(s: Arc<dyn StateStore>) {
    // Job A: its probe handed back with a log, then cancelled at 3.
    let sp = spec();
    let a = s.submit(sp.clone(), "ka", 0).await.unwrap().id;
    let t = s.lease_next("w1", 1).await.unwrap().unwrap();
    s.hand_back(&t.task_id, t.attempt, &notice("n", "x264 said"), 2)
        .await
        .unwrap();
    s.cancel(&a, 3).await.unwrap();
    // Job B still runs; worker w2 asked for work at 10.
    let b = s.submit(spec(), "kb", 4).await.unwrap().id;
    s.register_worker(worker_with("w2", Capacity::Spot))
        .await
        .unwrap();
    s.lease_next("w2", 10).await.unwrap().unwrap();

    // Nothing ended before 3; w1 (registered at 0, and its last lease
    // handed back) has been silent since 0.
    let p = s.purge(3, 100).await.unwrap();
    assert_eq!((p.jobs, p.workers), (0, 1));
    // A is gone with its tasks, log and key; w2 is kept.
    let p = s.purge(4, 100).await.unwrap();
    assert_eq!((p.jobs, p.workers), (1, 0));
    assert!(matches!(s.job(&a).await, Err(Error::NotFound(_))));
    assert!(s.task_logs(&a, "").await.unwrap_or_default().is_empty());
    assert!(matches!(s.worker("w1").await, Err(Error::NotFound(_))));
    assert!(s.worker("w2").await.is_ok());
    assert_eq!(s.job(&b).await.unwrap().0.state, JobState::Running);
    // The key is free again: the same key now makes a new job.
    let again = s.submit(sp, "ka", 11).await.unwrap().id;
    assert_ne!(again, a);
    // A second pass finds nothing more.
    assert_eq!(s.purge(4, 100).await.unwrap(), super::Purged::default());
}

async fn a_client_quota_bounds_its_jobs_not_ended(s: Arc<dyn StateStore>) {
    let a1 = s.submit_as(spec(), "a-1", "a", 2, 0).await.unwrap();
    s.submit_as(spec(), "", "a", 2, 0).await.unwrap();
    let e = s.submit_as(spec(), "", "a", 2, 1).await.unwrap_err();
    assert!(
        matches!(&e, Error::Exhausted(m) if m.contains("\"a\" has 2 jobs") && m.contains("queued_jobs_per_client")),
        "{e:?}"
    );
    // Another client, and no limit, are unaffected.
    s.submit_as(spec(), "", "b", 2, 1).await.unwrap();
    s.submit_as(spec(), "", "a", 0, 1).await.unwrap();
    // A retry of an accepted submission is answered, not refused.
    assert_eq!(
        s.submit_as(a1.spec.clone(), "a-1", "a", 2, 2)
            .await
            .unwrap()
            .id,
        a1.id
    );
    assert_eq!(s.job(&a1.id).await.unwrap().0.client, "a");
    // An ended job frees its place.
    s.cancel(&a1.id, 3).await.unwrap();
    s.submit_as(spec(), "", "a", 3, 4).await.unwrap();
    assert!(s.submit_as(spec(), "", "a", 3, 5).await.is_err());
}

/// Found by the differential test: when one expiry fails the job, another
/// task of that job expiring in the same pass was requeued by the embedded
/// store (a cancelled task back in the queue, one more expiry counted).
async fn an_expiry_that_fails_the_job_leaves_its_other_tasks_cancelled(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    // On-demand: it serves the tasks once expiries escalate them.
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    let mut now = 2;
    // max_expiries is 2: encode-0 expires twice alone, then again with
    // encode-1 beside it; its third expiry fails the job.
    for round in 1..=3 {
        let a = s.lease_next("od1", now).await.unwrap().unwrap();
        assert_eq!((a.task_id.ends_with("encode-0"), a.attempt), (true, round));
        if round == 3 {
            let b = s.lease_next("od1", now).await.unwrap().unwrap();
            assert!(b.task_id.ends_with("encode-1"), "{}", b.task_id);
        }
        now += i64::from(LIMITS.lease_ttl_ms) + 1;
        s.expire_leases(now).await.unwrap();
    }
    let (j, tasks) = s.job(&job).await.unwrap();
    assert_eq!(j.state, JobState::Failed);
    for t in &tasks {
        assert_ne!(t.state, TaskState::Pending, "{}", t.id);
        assert!(t.expiries <= 3, "{} {}", t.id, t.expiries);
    }
    assert_eq!(s.queue_depth().await.unwrap(), (0, 0));
    assert!(s.lease_next("od1", now + 1).await.unwrap().is_none());
}

/// Found by the differential test: expired leases are reaped oldest
/// deadline first in both stores (the embedded store went by a hash map's
/// order), so which tasks expired before one failed the job is the same.
async fn leases_expire_oldest_deadline_first(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    let mut now = 2;
    // encode-0 expires twice alone.
    for _ in 0..2 {
        let a = s.lease_next("od1", now).await.unwrap().unwrap();
        assert!(a.task_id.ends_with("encode-0"));
        now += i64::from(LIMITS.lease_ttl_ms) + 1;
        s.expire_leases(now).await.unwrap();
    }
    // Both leased; encode-0's heartbeat puts its deadline after encode-1's.
    let a = s.lease_next("od1", now).await.unwrap().unwrap();
    let b = s.lease_next("od1", now).await.unwrap().unwrap();
    assert!(b.task_id.ends_with("encode-1"), "{}", b.task_id);
    assert!(s
        .heartbeat("od1", &a.task_id, a.attempt, 1, now + 500)
        .await
        .unwrap());
    now += i64::from(LIMITS.lease_ttl_ms) + 600;
    s.expire_leases(now).await.unwrap();
    let (j, tasks) = s.job(&job).await.unwrap();
    assert_eq!(j.state, JobState::Failed);
    // encode-1's lease ran out first: it expired (and was requeued)
    // before encode-0's third expiry failed the job.
    let e1 = tasks.iter().find(|t| t.id == b.task_id).unwrap();
    assert_eq!(e1.expiries, 1);
    assert_eq!(e1.history.last().unwrap().outcome, AttemptOutcome::Expired);
    assert_eq!(e1.state, TaskState::Cancelled);
}

async fn unknown_worker_cannot_lease(s: Arc<dyn StateStore>) {
    s.submit(spec(), "", 0).await.unwrap();
    assert!(matches!(
        s.lease_next("ghost", 0).await,
        Err(Error::NotFound(_))
    ));
}

async fn stale_fencing_token_is_refused_after_expiry(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let first = s.lease_next("w1", 10).await.unwrap().unwrap();
    assert_eq!(first.attempt, 1);
    // The lease runs out, the task is requeued and leased again.
    assert_eq!(s.expire_leases(10 + 1_001).await.unwrap().len(), 1);
    assert!(!s
        .heartbeat("w1", &first.task_id, 1, 5, 1_100)
        .await
        .unwrap());
    let second = s.lease_next("w1", 1_100).await.unwrap().unwrap();
    assert_eq!(second.task_id, first.task_id);
    assert_eq!(second.attempt, 2);
    let Work::Encode(e1) = &first.work else {
        panic!()
    };
    let Work::Encode(e2) = &second.work else {
        panic!()
    };
    assert_ne!(e1.output, e2.output, "each attempt writes its own object");

    let zombie = s
        .complete(
            &first.task_id,
            1,
            TaskOutcome::Encode(obj(&e1.output, 25)),
            vec![],
            1_200,
        )
        .await;
    assert!(matches!(zombie, Err(Error::Stale(_))), "{zombie:?}");
    s.complete(
        &second.task_id,
        2,
        TaskOutcome::Encode(obj(&e2.output, 25)),
        vec![],
        1_300,
    )
    .await
    .unwrap();
    let (_, tasks) = s.job(&job).await.unwrap();
    let t = tasks.iter().find(|t| t.id == first.task_id).unwrap();
    assert_eq!(t.state, TaskState::Done);
    let outcomes: Vec<&str> = t.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["expired", "done"]);
}

/// A job with a further rendition: each encode returns both chunks, and a
/// second stitch takes rendition 1's.
async fn every_rendition_is_stitched_before_the_job_commits(s: Arc<dyn StateStore>) {
    let job = s.submit(spec(), "", 0).await.unwrap();
    let probe = s.lease_next("w1", 0).await.unwrap().unwrap();
    let mut tasks = follow_ups(&job.id);
    let mut second = tasks[2].clone();
    second.id = format!("{}/stitch-r1", job.id);
    if let Work::Stitch(st) = &mut second.work {
        st.rendition = 1;
        st.output = "/.out-r1.mkv.part".into();
    }
    tasks.push(second);
    s.complete(
        &probe.task_id,
        probe.attempt,
        TaskOutcome::Probe(probe_info()),
        tasks,
        1,
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let t = s.lease_next("w1", 2).await.unwrap().unwrap();
        let Work::Encode(e) = &t.work else { panic!() };
        let mut o = obj(&e.output, 25);
        o.renditions = vec![obj(&format!("{}.r1", e.output), 25)];
        s.complete(&t.task_id, t.attempt, TaskOutcome::Encode(o), vec![], 3)
            .await
            .unwrap();
    }
    let a = s.lease_next("w1", 4).await.unwrap().unwrap();
    let b = s.lease_next("w1", 4).await.unwrap().unwrap();
    let mut states = Vec::new();
    for t in [&a, &b] {
        let Work::Stitch(st) = &t.work else {
            panic!("{t:?}")
        };
        let r1 = st.chunks.iter().all(|c| c.path.ends_with(".r1"));
        assert_eq!(
            r1,
            st.rendition == 1,
            "rendition {} got {:?}",
            st.rendition,
            st.chunks
        );
        let tr = s
            .complete(
                &t.task_id,
                t.attempt,
                TaskOutcome::Stitch(obj(&st.output, 50)),
                vec![],
                5,
            )
            .await
            .unwrap();
        states.push(tr.state);
    }
    assert_eq!(states, vec![JobState::Running, JobState::Committing]);
}

async fn queue_depth_counts_pending_tasks_by_partition(s: Arc<dyn StateStore>) {
    assert_eq!(s.queue_depth().await.unwrap(), (0, 0));
    planned_job(&*s).await;
    // Two chunks wait on spot; the stitch is blocked.
    assert_eq!(s.queue_depth().await.unwrap(), (2, 0));
    let mut latency = spec();
    latency.priority = Priority::Latency;
    let other = s.submit(latency, "", 3).await.unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), (2, 1));
    s.lease_next("w1", 4).await.unwrap().unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), (1, 1));
    s.cancel(&other.id, 5).await.unwrap();
    assert_eq!(s.queue_depth().await.unwrap(), (1, 0));
}

async fn capacity_inputs_sum_pending_work_and_count_leases(s: Arc<dyn StateStore>) {
    let (backlog, leases) = s.capacity_inputs().await.unwrap();
    assert!(backlog.is_empty() && leases.is_empty());
    planned_job(&*s).await;
    let mut latency = spec();
    latency.priority = Priority::Latency;
    s.submit(latency, "", 3).await.unwrap();
    let (backlog, leases) = s.capacity_inputs().await.unwrap();
    // Two spot chunks alike in one item; the latency job's probe in another.
    let chunks: Vec<_> = backlog.iter().filter(|b| !b.latency).collect();
    assert_eq!(chunks.len(), 1, "{backlog:?}");
    assert_eq!(chunks[0].count, 2);
    assert!(!chunks[0].on_demand);
    let probe: Vec<_> = backlog.iter().filter(|b| b.latency).collect();
    assert_eq!(probe.len(), 1, "{backlog:?}");
    assert!(probe[0].on_demand && probe[0].count == 1 && probe[0].demand.outputs.is_empty());
    assert!(leases.is_empty());
    s.lease_next("w1", 4).await.unwrap().unwrap();
    let (backlog, leases) = s.capacity_inputs().await.unwrap();
    assert_eq!(leases.get("w1"), Some(&1));
    let count = |running: bool| {
        backlog
            .iter()
            .filter(|b| b.running == running)
            .map(|b| b.count)
            .sum::<u32>()
    };
    assert_eq!((count(false), count(true)), (2, 1), "{backlog:?}");
}

async fn stitch_waits_for_every_chunk_and_gets_them_in_order(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let a = s.lease_next("w1", 2).await.unwrap().unwrap();
    let b = s.lease_next("w1", 2).await.unwrap().unwrap();
    assert!(
        s.lease_next("w1", 2).await.unwrap().is_none(),
        "stitch is blocked"
    );
    // Finish out of order.
    for t in [&b, &a] {
        let Work::Encode(e) = &t.work else { panic!() };
        s.complete(
            &t.task_id,
            t.attempt,
            TaskOutcome::Encode(obj(&e.output, 25)),
            vec![],
            3,
        )
        .await
        .unwrap();
    }
    let stitch = s.lease_next("w1", 4).await.unwrap().unwrap();
    let Work::Stitch(st) = &stitch.work else {
        panic!("{stitch:?}")
    };
    let paths: Vec<&str> = st.chunks.iter().map(|c| c.path.as_str()).collect();
    assert!(
        paths[0].contains("chunk-0") && paths[1].contains("chunk-1"),
        "{paths:?}"
    );
    let t = s
        .complete(
            &stitch.task_id,
            1,
            TaskOutcome::Stitch(obj(&st.output, 50)),
            vec![],
            5,
        )
        .await
        .unwrap();
    assert_eq!(t.state, JobState::Committing);
    // Outputs may be moving into place: a cancel now is refused.
    let e = s.cancel(&job, 6).await.unwrap_err();
    assert!(
        matches!(&e, Error::Stale(m) if m.contains("committing")),
        "{e:?}"
    );
    let t = s.finish_commit(&job, Ok(()), 6).await.unwrap();
    assert_eq!(t.state, JobState::Succeeded);
}

fn notice(msg: &str, log: &str) -> Ending {
    Ending {
        message: msg.into(),
        retryable: true,
        log: log.into(),
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (s, _dir) = super::embedded().await;
                    super::$name(s).await
                }
            )*
        }
        mod redis_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (s, _server) = super::redis().await;
                    super::$name(s).await
                }
            )*
        }
        mod redis_cluster_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let (s, _cluster) = super::redis_cluster().await;
                    super::$name(s).await
                }
            )*
        }
    };
}

contract!(
    submit_is_idempotent_by_key,
    retention_purges_ended_jobs_and_silent_workers,
    a_client_quota_bounds_its_jobs_not_ended,
    an_expiry_that_fails_the_job_leaves_its_other_tasks_cancelled,
    leases_expire_oldest_deadline_first,
    unknown_worker_cannot_lease,
    stale_fencing_token_is_refused_after_expiry,
    stitch_waits_for_every_chunk_and_gets_them_in_order,
    every_rendition_is_stitched_before_the_job_commits,
    queue_depth_counts_pending_tasks_by_partition,
    capacity_inputs_sum_pending_work_and_count_leases
);

// With AOF on, an accepted job survives a Redis restart.
#[tokio::test]
async fn redis_store_survives_a_redis_restart() {
    let mut server = RedisServer::start();
    let s = RedisStore::connect(&server.url(), "aof", "/w", LIMITS)
        .await
        .unwrap();
    let sp = spec();
    let job = s.submit(sp.clone(), "key", 0).await.unwrap().id;
    server.restart();
    let s = RedisStore::connect(&server.url(), "aof", "/w", LIMITS)
        .await
        .unwrap();
    let (j, tasks) = s.job(&job).await.unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(tasks.len(), 1);
    assert_eq!(s.submit(sp, "key", 1).await.unwrap().id, job);
}

mod affinity;
mod differential;
mod embedded;
mod faults;
mod placement;
mod quality;
mod tracks;
