//! Coordinator replicas sharing Redis: one is killed and Redis restarts
//! mid-job, and the job still completes correctly through the other.

use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::{Fleet, RedisServer};

use super::{assert_faithful, assert_ok, ended, job, keyed_clip};

#[tokio::test(flavor = "multi_thread")]
async fn replicas_survive_a_coordinator_kill_and_a_redis_restart() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 8, "1280x720");
    let out = dir.path().join("out.mp4");
    let mut redis = RedisServer::start();
    let mut fleet = Fleet::builder()
        .redis(redis.url())
        .coordinators(2)
        .cpu_workers(2)
        .lease_ttl_ms(2_000)
        .start();
    let sub = fleet.spotenc_at(
        0,
        &[
            "submit",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
            "--chunk-seconds",
            "2",
            "--preset",
            "slow",
        ],
    );
    assert_ok(&sub, "submit");
    let id = String::from_utf8_lossy(&sub.stdout).trim().to_string();

    // The other replica sees the job; wait for the first finished chunk.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let j = job(&fleet.urls[1], &id).await;
        if j.chunks_done >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no chunk finished: {j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fleet.coordinators[0].kill();
    redis.restart();

    let done = ended(&fleet.urls[1], &id, Duration::from_secs(90), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert!(
        done.tasks.iter().any(|t| t.worker_id.starts_with("w1-")),
        "the surviving replica's worker did no work"
    );
    assert_faithful(&src, &out);
    assert!(fleet.coordinators[1].is_running());
}
