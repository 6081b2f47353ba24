//! The outlier guard on both stores: chunks judged short go back to
//! pending before any stitch, avoiding the worker that made them, with
//! their rejected attempts kept as waste; the guard waits when another
//! stitch is ahead; a worker's strikes count once each.

use super::affinity::{four_chunk_job, next_encode};
use super::placement::{lease_for, pool_worker};
use super::*;
use spotenc_core::cost::place::Worker;
use spotenc_core::quality::{judge, Verdict};
use spotenc_core::state::WorkerRecord;

/// An encoded chunk (and its second rendition) measured at `psnr`.
fn measured(path: &str, frames: u64, psnr: f64) -> OutputObject {
    let quality = Some(Box::new(ChunkQuality {
        frames,
        seconds: 1.0,
        psnr,
        psnr_first: psnr,
        psnr_last: psnr,
        ssim: 0.9,
        ..Default::default()
    }));
    OutputObject {
        renditions: vec![OutputObject {
            quality: quality.clone(),
            ..obj(&format!("{path}.r1"), frames)
        }],
        quality,
        ..obj(path, frames)
    }
}

/// Leases `worker`'s next stitch.
async fn stitch(s: &dyn StateStore, worker: &str, now: i64) -> LeasedTask {
    let t = s.lease_next(worker, now).await.unwrap().expect("a stitch");
    assert_eq!(t.work.kind(), TaskKind::Stitch);
    t
}

async fn a_short_chunk_goes_back_before_the_stitch_and_avoids_its_worker(s: Arc<dyn StateStore>) {
    s.register_worker(worker()).await.unwrap();
    let job = four_chunk_job(&*s).await;
    let a = pool_worker(&*s, "a", "c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    let b = pool_worker(&*s, "b", "c6i-4xlarge-spot", &[Codec::H264, Codec::Hevc]).await;
    let fleet = [&a, &b];
    let now = encode_every_chunk(&*s, &a, &fleet).await;
    let (record, tasks) = s.job(&job).await.unwrap();
    let Verdict::Reencode(outliers) = judge(&record.spec, &tasks).verdict else {
        panic!("chunk 1 is short")
    };
    assert_eq!(outliers.len(), 1);
    assert_eq!(
        (outliers[0].chunk, outliers[0].worker_id.as_str()),
        (1, "a")
    );
    assert_eq!(outliers[0].psnr, vec![10.0, 10.0]);

    // Both stitches leased at once (two replicas): the first guard's
    // reject releases both; the second's is then stale. A stale attempt is
    // refused.
    let s1 = stitch(&*s, "w1", now).await;
    let s2 = stitch(&*s, "w1", now).await;
    assert!(s
        .reject_chunks(&s1.task_id, s1.attempt + 1, &outliers, now)
        .await
        .is_err());
    assert!(s
        .reject_chunks(&s1.task_id, s1.attempt, &outliers, now)
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        s.reject_chunks(&s2.task_id, s2.attempt, &outliers, now)
            .await,
        Err(Error::Stale(_))
    ));
    for t in [&s1, &s2] {
        let rec = s.task(&t.task_id).await.unwrap();
        assert_eq!(
            rec.history.last().unwrap().outcome,
            AttemptOutcome::Released
        );
    }
    assert_eq!(s.queue_depth().await.unwrap(), (1, 0), "only chunk 1 waits");

    // Chunk 1 is pending, its attempt rejected with its PSNR; every stitch
    // waits for it again.
    let (_, tasks) = s.job(&job).await.unwrap();
    let chunk1 = tasks
        .iter()
        .find(|t| t.kind == TaskKind::Encode && t.chunk == 1)
        .unwrap();
    assert_eq!(chunk1.state, TaskState::Pending);
    assert_eq!(chunk1.avoid_worker, "a");
    assert!(chunk1.result.is_none());
    let rejected = &chunk1.history[0];
    assert_eq!(rejected.outcome, AttemptOutcome::Rejected);
    assert_eq!(rejected.rejected_psnr, vec![10.0, 10.0]);
    assert!(rejected.error.contains("chunk 1 of"), "{}", rejected.error);
    for t in tasks.iter().filter(|t| t.kind == TaskKind::Stitch) {
        assert_eq!(t.state, TaskState::Blocked, "{}", t.id);
    }

    // a does not get it back while b could take it; b does.
    assert!(next_encode(&*s, ("a", &a), &fleet, now + 1).await.is_none());
    let again = next_encode(&*s, ("b", &b), &fleet, now + 2)
        .await
        .expect("b takes chunk 1");
    let frames = chunk1.frames_total;
    s.complete(
        &again.task_id,
        again.attempt,
        TaskOutcome::Encode(measured("/w/c1-again", frames, 40.0)),
        vec![],
        now + 3,
    )
    .await
    .unwrap();

    // Judged again: clean, with one strike against a.
    let _ = stitch(&*s, "w1", now + 4).await;
    let (record, tasks) = s.job(&job).await.unwrap();
    let judged = judge(&record.spec, &tasks);
    assert_eq!(judged.verdict, Verdict::Clean);
    assert_eq!(judged.strikes.len(), 1);
    assert_eq!(judged.strikes[0].worker_id, "a");
    let q = spotenc_core::quality::report(&record.spec, &tasks);
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].reencoded.len(), 1);
    assert!(q[0].reencoded[0].reason.contains("faulty"), "{:?}", q[0]);

    // Strikes count once each; two and the worker is refused.
    let (key, reason) = (&judged.strikes[0].key, &judged.strikes[0].reason);
    assert!(reason.starts_with(key.as_str()), "{reason}");
    assert_eq!(s.strike_worker("a", key, reason).await.unwrap().len(), 1);
    assert_eq!(
        s.strike_worker("a", key, "said again").await.unwrap(),
        vec![reason.clone()]
    );
    assert!(s.worker("a").await.unwrap().quarantined().is_none());
    assert!(s
        .strike_worker("nobody", "k", "k: r")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.strike_worker("a", "k2", "k2: another")
            .await
            .unwrap()
            .len(),
        2
    );
    let refused = s.worker("a").await.unwrap().quarantined().expect("refused");
    assert!(refused.contains("2 of its chunks"), "{refused}");
    assert_eq!(WorkerRecord::MAX_STRIKES, 2);
}

/// `a` makes every chunk of the only job, chunk 1 30 dB under its
/// siblings; returns the time after.
async fn encode_every_chunk(s: &dyn StateStore, a: &Worker, fleet: &[&Worker]) -> i64 {
    let mut now = 10;
    while let Some(t) = s.lease("a", &lease_for(a, fleet), now).await.unwrap() {
        if t.work.kind() == TaskKind::Stitch {
            // Every chunk is made: leave the stitches for later.
            s.release(&t.task_id, t.attempt, "later", now)
                .await
                .unwrap();
            return now;
        }
        let rec = s.task(&t.task_id).await.unwrap();
        let psnr = if rec.chunk == 1 { 10.0 } else { 40.0 };
        let out = measured(&format!("/w/c{}", rec.chunk), rec.frames_total, psnr);
        s.complete(&t.task_id, t.attempt, TaskOutcome::Encode(out), vec![], now)
            .await
            .unwrap();
        now += 1;
    }
    now
}

/// The embedded store rebuilds its index from the records when it
/// restarts: a stitch pending then still waits for a chunk sent back.
#[tokio::test]
async fn after_a_restart_a_chunk_sent_back_still_blocks_the_stitch() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Arc<dyn StateStore> {
        Arc::new(super::EmbeddedStore::open(dir.path(), LIMITS).unwrap())
    };
    let (job, now) = {
        let s = open();
        s.register_worker(worker()).await.unwrap();
        let job = four_chunk_job(&*s).await;
        let a = pool_worker(&*s, "a", "c6i-4xlarge-spot", &[Codec::H264]).await;
        let b = pool_worker(&*s, "b", "c6i-4xlarge-spot", &[Codec::H264]).await;
        (job, encode_every_chunk(&*s, &a, &[&a, &b]).await)
    };
    let s = open();
    let a = pool_worker(&*s, "a", "c6i-4xlarge-spot", &[Codec::H264]).await;
    let b = pool_worker(&*s, "b", "c6i-4xlarge-spot", &[Codec::H264]).await;
    let s1 = stitch(&*s, "w1", now).await;
    let (record, tasks) = s.job(&job).await.unwrap();
    let Verdict::Reencode(outliers) = judge(&record.spec, &tasks).verdict else {
        panic!("chunk 1 is short")
    };
    assert!(s
        .reject_chunks(&s1.task_id, s1.attempt, &outliers, now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.queue_depth().await.unwrap(), (1, 0), "only chunk 1 waits");
    let again = next_encode(&*s, ("b", &b), &[&a, &b], now + 1)
        .await
        .expect("b takes chunk 1");
    let frames = s.task(&again.task_id).await.unwrap().frames_total;
    s.complete(
        &again.task_id,
        again.attempt,
        TaskOutcome::Encode(measured("/w/c1-again", frames, 40.0)),
        vec![],
        now + 2,
    )
    .await
    .unwrap();
    let _ = stitch(&*s, "w1", now + 3).await;
}

contract!(a_short_chunk_goes_back_before_the_stitch_and_avoids_its_worker);
