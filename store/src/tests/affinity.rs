//! Encoder affinity on both stores: a job is pinned by its first leased
//! encode chunk, its other chunks go only to workers of those identities,
//! and a restart under another identity discards what the old one made.

use super::placement::{lease_for, pool_worker};
use super::*;
use spotenc_core::cost::place::Worker;
use spotenc_core::graph;

/// A 1080p H.264 job with a second rendition, planned into four chunks
/// (its probe leased by `w1` and completed); returns its id.
pub(super) async fn four_chunk_job(s: &dyn StateStore) -> String {
    let mut sp = spec();
    sp.chunk_seconds = 1.0;
    sp.min_chunk_seconds = 0.5;
    sp.renditions.push(Rendition {
        video: sp.video.clone(),
        output: "/out-affinity.r1.mp4".into(),
        container: Container::Mp4,
    });
    let job = s.submit(sp, "", 0).await.unwrap();
    let mut probe = probe_info();
    (probe.video.width, probe.video.height) = (1920, 1080);
    probe.duration_seconds = 4.0;
    probe.video.end_pts = 100;
    probe.video.frame_count = 100;
    probe.video.keyframes = (0..4)
        .map(|i| Keyframe {
            frame: i * 25,
            pts: i as i64 * 25,
        })
        .collect();
    let t = s.lease_next("w1", 0).await.unwrap().unwrap();
    let follow = graph::expand(&job, &probe, "/w").unwrap();
    s.complete(&t.task_id, t.attempt, TaskOutcome::Probe(probe), follow, 0)
        .await
        .unwrap();
    job.id
}

/// Leases for `w` until it gets an encode chunk or nothing; the other
/// kinds it gets are left leased.
pub(super) async fn next_encode(
    s: &dyn StateStore,
    (id, w): (&str, &Worker),
    fleet: &[&Worker],
    now: i64,
) -> Option<LeasedTask> {
    loop {
        let t = s.lease(id, &lease_for(w, fleet), now).await.unwrap()?;
        if t.work.kind() == TaskKind::Encode {
            return Some(t);
        }
    }
}

async fn a_job_keeps_the_identity_of_its_first_chunk(s: Arc<dyn StateStore>) {
    s.register_worker(worker()).await.unwrap();
    let job = four_chunk_job(&*s).await;
    let mut a = pool_worker(&*s, "a", "c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    a.params.insert("libx264".into(), "ref=1".into());
    let b = pool_worker(&*s, "b", "c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    let fleet = [&a, &b];
    let chunks = s.job(&job).await.unwrap().1;
    let chunks: Vec<_> = chunks
        .iter()
        .filter(|t| t.kind == TaskKind::Encode)
        .collect();
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    let names_a = a.identity_names(&chunks[0].demand);
    let names_b = b.identity_names(&chunks[0].demand);
    assert_ne!(names_a, names_b);
    assert!(
        names_a.iter().all(|n| n.starts_with("libx264-h264-8bit+")),
        "{names_a:?}"
    );

    // The first chunk pins the job to a's identities, one per rendition.
    let t1 = next_encode(&*s, ("a", &a), &fleet, 1)
        .await
        .expect("a chunk for a");
    let Work::Encode(e) = &t1.work else {
        unreachable!()
    };
    let named: Vec<String> = e.identities.iter().map(|i| i.name()).collect();
    assert_eq!(named, names_a);
    assert_eq!(e.identities[0].params, "ref=1");
    assert_eq!(s.job(&job).await.unwrap().0.identities, names_a);
    // b, whose parameter sets differ, gets none of its chunks; a does.
    assert!(next_encode(&*s, ("b", &b), &fleet, 2).await.is_none());
    let t2 = next_encode(&*s, ("a", &a), &fleet, 3)
        .await
        .expect("a's second chunk");
    let rec = s.task(&t2.task_id).await.unwrap();
    assert_eq!(rec.history.last().unwrap().identities, names_a);
    let frames = s.task(&t1.task_id).await.unwrap().frames_total;
    s.complete(
        &t1.task_id,
        t1.attempt,
        TaskOutcome::Encode(OutputObject {
            renditions: vec![obj("/w/r1", frames)],
            ..obj("/w/c", frames)
        }),
        vec![],
        4,
    )
    .await
    .unwrap();

    // Waiting chunks of a pinned job are listed for the affinity check.
    let pinned = s.pinned_waiting().await.unwrap();
    assert_eq!(pinned.len(), 1);
    assert_eq!(
        (pinned[0].job_id.as_str(), &pinned[0].identities),
        (job.as_str(), &names_a)
    );

    // Restart: the done chunk and the running one go back, discarded.
    let reason = "no live worker encodes with a's identity";
    assert!(s
        .restart_identity(&job, &names_a, reason, 10)
        .await
        .unwrap()
        .is_some());
    assert!(
        s.restart_identity(&job, &names_a, reason, 11)
            .await
            .unwrap()
            .is_none(),
        "a second replica's restart of the same pin does nothing"
    );
    let late = s
        .complete(
            &t2.task_id,
            t2.attempt,
            TaskOutcome::Encode(obj("/w/c2", frames)),
            vec![],
            12,
        )
        .await;
    assert!(late.is_err(), "a chunk of the old identity was accepted");
    let (rec, tasks) = s.job(&job).await.unwrap();
    assert!(rec.identities.is_empty());
    assert_eq!(rec.restarts.len(), 1);
    assert!(rec.restarts[0].starts_with(reason), "{}", rec.restarts[0]);
    assert!(
        rec.restarts[0].contains("discarding 2"),
        "{}",
        rec.restarts[0]
    );
    for id in [&t1.task_id, &t2.task_id] {
        let t = tasks.iter().find(|t| &t.id == id).unwrap();
        assert_eq!(t.state, TaskState::Pending, "{id}");
        let a = t.history.last().unwrap();
        assert_eq!(
            (a.outcome, a.error.as_str()),
            (AttemptOutcome::Discarded, reason),
            "{id}"
        );
    }
    let view = spotenc_core::state::job_view(&rec, &tasks, 20);
    assert_eq!(view.restarts, rec.restarts);
    assert_eq!(view.chunks_done, 0);

    // Now b may take it, and pins it to its own identities.
    let t3 = next_encode(&*s, ("b", &b), &fleet, 20)
        .await
        .expect("b takes it now");
    assert_eq!(t3.job_id, job);
    assert_eq!(s.job(&job).await.unwrap().0.identities, names_b);

    // The pin binds encode chunks only: once b has made them all, a
    // (another identity) may stitch.
    let mut chunk = Some(t3);
    let mut now = 21;
    while let Some(t) = chunk {
        let frames = s.task(&t.task_id).await.unwrap().frames_total;
        let made = OutputObject {
            renditions: vec![obj(&format!("/w/{}.r1", t.task_id), frames)],
            ..obj(&format!("/w/{}", t.task_id), frames)
        };
        s.complete(
            &t.task_id,
            t.attempt,
            TaskOutcome::Encode(made),
            vec![],
            now,
        )
        .await
        .unwrap();
        now += 1;
        let (_, tasks) = s.job(&job).await.unwrap();
        let waiting = tasks
            .iter()
            .any(|t| t.kind == TaskKind::Encode && t.state == TaskState::Pending);
        chunk = if waiting {
            next_encode(&*s, ("b", &b), &fleet, now).await
        } else {
            None
        };
    }
    // With every chunk made and the stitches pending, a restart that a
    // replica decided on earlier does nothing.
    assert!(s
        .restart_identity(&job, &names_b, reason, now)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.job(&job).await.unwrap().0.identities, names_b);
    let stitch = s
        .lease("a", &lease_for(&a, &fleet), now)
        .await
        .unwrap()
        .expect("a stitch for a");
    assert_eq!(stitch.work.kind(), TaskKind::Stitch, "{}", stitch.task_id);
}

contract!(a_job_keeps_the_identity_of_its_first_chunk);
