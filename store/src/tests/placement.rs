//! Placement and cost accounting, on both stores: the contract suite's
//! placement half.

use super::*;
use spotenc_core::cost::catalogue::nvenc_caps;
use spotenc_core::cost::catalogue::Catalogue;
use spotenc_core::cost::model::{Key, Model, Observation};
use spotenc_core::cost::place::{Fleet, Policy, Worker};
use spotenc_core::cost::Lease;
use spotenc_core::graph;

/// A registered worker of a built-in pool and its placement view.
pub(super) async fn pool_worker(
    s: &dyn StateStore,
    id: &str,
    pool: &str,
    codecs: &[Codec],
) -> Worker {
    let p = Catalogue::builtin().get(pool).unwrap().clone();
    let gpu = p.hardware == spotenc_core::cost::catalogue::Hardware::Nvenc;
    let mut w = worker_with(id, p.capacity);
    w.info.pool = pool.into();
    w.info.instance_type = p.instance_type.clone();
    w.info.codecs = codecs.to_vec();
    w.info.slots = p.slots;
    w.info.encoder = if gpu {
        "nvenc".into()
    } else {
        "libx264/libx265".into()
    };
    s.register_worker(w).await.unwrap();
    Worker {
        class: p.instance_type.clone(),
        codecs: codecs.to_vec(),
        nvenc: if gpu {
            nvenc_caps(&[Codec::H264, Codec::Hevc], 4096)
        } else {
            vec![]
        },
        sessions_held: 0,
        encoder_saturated: false,
        params: Default::default(),
        hardware_down: false,
        delivered_price_per_gb: 0.0,
        pool: p,
    }
}

pub(super) fn lease_for(w: &Worker, fleet: &[&Worker]) -> Lease {
    Lease {
        worker: Some(w.clone()),
        fleet: Fleet {
            pools: fleet.iter().map(|w| (*w).clone()).collect(),
        },
        model: Model::default(),
        policy: Policy {
            max_placement_delay_ms: 60_000,
            max_wait_for_cheaper_ms: 600_000,
            max_cost_ratio: 1000.0,
            on_demand_declines_spot: true,
            spot_closed: false,
            avoid_rejected_ms: 300_000,
        },
        placement: true,
        pricer: None,
    }
}

fn hd_probe() -> ProbeInfo {
    let mut p = probe_info();
    p.video.width = 1920;
    p.video.height = 1080;
    p
}

/// Submits jobs of (codec, further outputs) in order and completes their
/// probes through the real graph (all probes are leased before any
/// completes, so none queues behind a chunk); returns the job ids.
pub(super) async fn encode_jobs(s: &dyn StateStore, jobs: &[(Codec, usize)]) -> Vec<String> {
    let mut submitted = Vec::new();
    for (i, (codec, renditions)) in jobs.iter().enumerate() {
        let mut sp = spec();
        sp.video.codec = *codec;
        for r in 0..*renditions {
            sp.renditions.push(Rendition {
                video: sp.video.clone(),
                output: format!("/out-{i}.r{r}.mp4"),
                container: Container::Mp4,
            });
        }
        submitted.push(s.submit(sp, "", i as i64).await.unwrap());
    }
    let mut probes = Vec::new();
    for _ in &submitted {
        let t = s.lease_next("w1", 0).await.unwrap().unwrap();
        assert_eq!(t.work.kind(), TaskKind::Probe);
        probes.push(t);
    }
    for t in probes {
        let job = submitted.iter().find(|j| j.id == t.job_id).unwrap();
        let follow = graph::expand(job, &hd_probe(), "/w").unwrap();
        s.complete(
            &t.task_id,
            t.attempt,
            TaskOutcome::Probe(hd_probe()),
            follow,
            0,
        )
        .await
        .unwrap();
    }
    submitted.into_iter().map(|j| j.id).collect()
}

async fn gpu_worker_gets_hevc_before_older_h264(s: Arc<dyn StateStore>) {
    let ids = encode_jobs(&*s, &[(Codec::H264, 0), (Codec::Hevc, 0)]).await;
    let (h264, hevc) = (ids[0].clone(), ids[1].clone());
    let gpu = pool_worker(&*s, "gpu", "g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    let cpu = pool_worker(&*s, "cpu", "c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    let t = s
        .lease("gpu", &lease_for(&gpu, &[&gpu, &cpu]), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.job_id, hevc, "the GPU took {}", t.task_id);
    assert_eq!(t.work.kind(), TaskKind::Encode);
    let t = s
        .lease("cpu", &lease_for(&cpu, &[&gpu, &cpu]), 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.job_id, h264, "the CPU took {}", t.task_id);
}

async fn a_worker_never_gets_what_it_cannot_encode(s: Arc<dyn StateStore>) {
    encode_jobs(&*s, &[(Codec::Hevc, 0)]).await;
    let cpu = pool_worker(&*s, "cpu", "c6i-4xlarge-spot", &[Codec::H264]).await;
    assert!(s
        .lease("cpu", &lease_for(&cpu, &[&cpu]), 1)
        .await
        .unwrap()
        .is_none());
    // Not even once the task has waited past the placement delay.
    assert!(s
        .lease("cpu", &lease_for(&cpu, &[&cpu]), 3_600_000)
        .await
        .unwrap()
        .is_none());
}

async fn nvenc_sessions_count_every_rendition(s: Arc<dyn StateStore>) {
    // Two jobs of two outputs each: 2 + 2 sessions pass a 3-session GPU.
    encode_jobs(&*s, &[(Codec::H264, 1), (Codec::H264, 1)]).await;
    let gpu = pool_worker(&*s, "gpu", "g4dn-xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    assert_eq!(gpu.pool.slots, 3);
    let l = lease_for(&gpu, &[&gpu]);
    let first = s.lease("gpu", &l, 2).await.unwrap().unwrap();
    assert_eq!(first.work.kind(), TaskKind::Encode);
    let second = s.lease("gpu", &l, 3).await.unwrap();
    assert!(second.is_none(), "a fourth session was leased: {second:?}");
    let (_, tasks) = s.job(&first.job_id).await.unwrap();
    let a = &tasks
        .iter()
        .find(|t| t.id == first.task_id)
        .unwrap()
        .history[0];
    assert_eq!(a.sessions, 2);
    s.complete(
        &first.task_id,
        first.attempt,
        TaskOutcome::Encode(OutputObject {
            renditions: vec![obj("/w/r1", 50)],
            ..obj("/w/c", 50)
        }),
        vec![],
        4,
    )
    .await
    .unwrap();
    // The freed sessions take the other job's chunk (after the first
    // job's stitches, which need no session).
    let mut encodes = 0;
    while let Some(t) = s.lease("gpu", &l, 5).await.unwrap() {
        if t.work.kind() == TaskKind::Encode {
            assert_ne!(t.job_id, first.job_id);
            encodes += 1;
        }
    }
    assert_eq!(encodes, 1);
}

async fn attempts_are_priced_and_jobs_add_them_up(s: Arc<dyn StateStore>) {
    let job = encode_jobs(&*s, &[(Codec::H264, 0)]).await.remove(0);
    let cpu = pool_worker(&*s, "cpu", "c6i-4xlarge-spot", &[Codec::H264]).await;
    let l = lease_for(&cpu, &[&cpu]);
    let t = s.lease("cpu", &l, 0).await.unwrap().unwrap();
    // Handed back after half an hour, then done in another half hour.
    s.hand_back(&t.task_id, t.attempt, &notice("spot notice", ""), 1_800_000)
        .await
        .unwrap();
    let t = s.lease("cpu", &l, 1_800_000).await.unwrap().unwrap();
    s.complete(
        &t.task_id,
        t.attempt,
        TaskOutcome::Encode(obj("/w/c", 50)),
        vec![],
        3_600_000,
    )
    .await
    .unwrap();
    let (j, tasks) = s.job(&job).await.unwrap();
    let view = spotenc_core::state::job_view(&j, &tasks, 3_600_000);
    // c6i.4xlarge spot: $0.2924/h over 2 slots; one slot for one hour.
    let half_hour = 0.2924 / 2.0 / 2.0;
    assert!(
        (view.cost.spot_dollars - 2.0 * half_hour).abs() < 1e-9,
        "{:?}",
        view.cost
    );
    assert!(
        (view.cost.wasted_dollars - half_hour).abs() < 1e-9,
        "{:?}",
        view.cost
    );
    assert_eq!(view.cost.on_demand_dollars, 0.0);
    // Two outputs seconds of source (the probe says 2 s, one output).
    assert!((view.cost.dollars_per_output_minute - 2.0 * half_hour / (2.0 / 60.0)).abs() < 1e-9);
    let stats = s.pool_stats().await.unwrap();
    let p = stats["c6i-4xlarge-spot"];
    assert_eq!(p.interruptions, 1);
    assert!((p.attempt_seconds - 3600.0).abs() < 1e-6, "{p:?}");
}

async fn the_model_learns_in_the_store(s: Arc<dyn StateStore>) {
    let key = Key {
        class: "c6i.4xlarge".into(),
        family: "libx264".into(),
        codec: Codec::H264,
        preset: "medium".into(),
        band: "hd1080".into(),
    };
    let obs = |pps: f64| Observation {
        delivered: None,
        key: key.clone(),
        pixels_per_second: pps,
    };
    s.learn(&[obs(1e6), obs(3e6)]).await.unwrap();
    s.learn(&[obs(2e6)]).await.unwrap();
    let m = s.model().await.unwrap();
    let got = m.samples[&key.encode()];
    assert_eq!(got.n, 3);
    assert!((got.sum - 6e6).abs() < 1e-3, "{got:?}");
}

async fn replicas_never_lease_one_task_twice(s: Arc<dyn StateStore>) {
    encode_jobs(&*s, &[(Codec::H264, 0); 3]).await;
    concurrent_leases_are_unique(&[s], 8, 3).await;
}

/// `n` workers, spread over `stores`, lease at once: every task they get is
/// a different one, and `expected` of them get one.
async fn concurrent_leases_are_unique(stores: &[Arc<dyn StateStore>], n: usize, expected: usize) {
    let mut calls = Vec::new();
    for i in 0..n {
        let s = stores[i % stores.len()].clone();
        let w = pool_worker(&*s, &format!("c{i}"), "c6i-4xlarge-spot", &[Codec::H264]).await;
        calls.push(async move {
            let l = lease_for(&w, &[&w]);
            s.lease(&format!("c{i}"), &l, 10).await.unwrap()
        });
    }
    let got: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .map(|t| t.task_id)
        .collect();
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "a task was leased twice: {got:?}");
    assert_eq!(got.len(), expected, "{got:?}");
}

async fn workers_are_live_until_they_hand_back(s: Arc<dyn StateStore>) {
    encode_jobs(&*s, &[(Codec::H264, 0)]).await;
    let cpu = pool_worker(&*s, "cpu", "c6i-4xlarge-spot", &[Codec::H264]).await;
    let live = |v: Vec<super::super::WorkerRecord>| v.iter().any(|w| w.id == "cpu");
    assert!(
        live(s.live_workers(0).await.unwrap()),
        "registered counts as seen"
    );
    let t = s
        .lease("cpu", &lease_for(&cpu, &[&cpu]), 5_000)
        .await
        .unwrap()
        .unwrap();
    assert!(s
        .heartbeat("cpu", &t.task_id, t.attempt, 1, 9_000)
        .await
        .unwrap());
    assert!(
        live(s.live_workers(8_000).await.unwrap()),
        "a heartbeat counts"
    );
    s.hand_back(&t.task_id, t.attempt, &notice("spot notice", ""), 9_500)
        .await
        .unwrap();
    assert!(
        !live(s.live_workers(0).await.unwrap()),
        "a handed-back worker is leaving"
    );
}

// On Redis the candidate window is read without a write (one fsync per
// lease under `appendfsync always`), and the claim records the poll: an
// idle poll, with nothing to claim, must still count as a sign of life.
async fn an_idle_poll_counts_as_alive(s: Arc<dyn StateStore>) {
    let cpu = pool_worker(&*s, "cpu", "c6i-4xlarge-spot", &[Codec::H264]).await;
    let live = |v: Vec<super::super::WorkerRecord>| v.iter().any(|w| w.id == "cpu");
    assert!(!live(s.live_workers(10_000).await.unwrap()));
    let got = s.lease("cpu", &lease_for(&cpu, &[&cpu]), 20_000).await;
    assert!(got.unwrap().is_none(), "nothing is pending");
    assert!(
        live(s.live_workers(15_000).await.unwrap()),
        "the idle poll at 20 s counts"
    );
    // With work pending, the lease records the poll too.
    encode_jobs(&*s, &[(Codec::H264, 0)]).await;
    let t = s.lease("cpu", &lease_for(&cpu, &[&cpu]), 30_000).await;
    assert!(t.unwrap().is_some());
    assert!(live(s.live_workers(25_000).await.unwrap()));
}

// Regression: a job could write onto the input or the output of another
// job still running.
async fn a_running_jobs_paths_are_not_reused(s: Arc<dyn StateStore>) {
    let a = s.submit(spec(), "", 0).await.unwrap();
    let mut b = spec();
    b.output = a.spec.output.clone();
    let e = s.submit(b.clone(), "", 1).await.unwrap_err().to_string();
    assert!(e.contains("running job"), "{e}");
    let mut c = spec();
    c.output = a.spec.input.clone();
    let e = s.submit(c, "", 1).await.unwrap_err().to_string();
    assert!(e.contains("running job"), "{e}");
    let mut d = spec();
    d.input = a.spec.output.clone();
    let e = s.submit(d, "", 1).await.unwrap_err().to_string();
    assert!(e.contains("is an output of running job"), "{e}");
    // Reading the same input is fine; once A ends, its output is free.
    s.submit(spec(), "", 2).await.unwrap();
    s.cancel(&a.id, 3).await.unwrap();
    s.submit(b, "", 4).await.unwrap();
}

// Regression: any worker knowing a task id and attempt could keep another
// worker's lease alive.
async fn a_heartbeat_from_another_worker_is_refused(s: Arc<dyn StateStore>) {
    s.submit(spec(), "", 0).await.unwrap();
    let t = s.lease_next("w1", 1).await.unwrap().unwrap();
    let e = s
        .heartbeat("thief", &t.task_id, t.attempt, 1, 2)
        .await
        .unwrap_err();
    assert!(
        matches!(e, spotenc_proto::Error::PermissionDenied(_)),
        "{e}"
    );
    let e = s
        .heartbeat("w1", &t.task_id, t.attempt + 1, 1, 2)
        .await
        .unwrap_err();
    assert!(
        matches!(e, spotenc_proto::Error::PermissionDenied(_)),
        "{e}"
    );
    let e = s.heartbeat("w1", "nope/probe", 1, 1, 2).await.unwrap_err();
    assert!(matches!(e, spotenc_proto::Error::NotFound(_)), "{e}");
    assert!(s
        .heartbeat("w1", &t.task_id, t.attempt, 1, 2)
        .await
        .unwrap());
}

contract!(
    a_heartbeat_from_another_worker_is_refused,
    a_running_jobs_paths_are_not_reused,
    workers_are_live_until_they_hand_back,
    an_idle_poll_counts_as_alive,
    gpu_worker_gets_hevc_before_older_h264,
    a_worker_never_gets_what_it_cannot_encode,
    nvenc_sessions_count_every_rendition,
    attempts_are_priced_and_jobs_add_them_up,
    the_model_learns_in_the_store,
    replicas_never_lease_one_task_twice,
);

// Two coordinator replicas are two RedisStore connections to one Redis:
// concurrent leases through both never hand out one task twice.
#[tokio::test]
async fn two_redis_replicas_never_double_lease() {
    let server = RedisServer::start_volatile();
    let url = server.url();
    let a: Arc<dyn StateStore> = Arc::new(
        RedisStore::connect(&url, "spotenc", "/w", LIMITS)
            .await
            .unwrap(),
    );
    let b: Arc<dyn StateStore> = Arc::new(
        RedisStore::connect(&url, "spotenc", "/w", LIMITS)
            .await
            .unwrap(),
    );
    a.register_worker(worker()).await.unwrap();
    encode_jobs(&*a, &[(Codec::H264, 0); 4]).await;
    concurrent_leases_are_unique(&[a, b], 16, 4).await;
}
