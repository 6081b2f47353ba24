//! Worker faults: a frozen worker that wakes up after losing its lease
//! (fencing), and workers killed again and again during one job, with the
//! final path watched for partial outputs throughout.

use std::time::{Duration, Instant};

use spotenc_proto::pb;
use spotenc_tests::Fleet;

use super::{assert_faithful, check_final_path, ended, job, keyed_clip, leased_encode, submit_id};

#[tokio::test(flavor = "multi_thread")]
async fn frozen_worker_that_wakes_after_its_lease_expired_is_fenced_off() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 6, "1280x720");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(1).lease_ttl_ms(1_500).start();
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &["--chunk-seconds", "2", "--preset", "slow"],
    );
    let victim = leased_encode(&fleet.url, &id).await;

    // Freeze w0 mid-chunk; its lease expires and w1 redoes the chunk.
    fleet.proc("w0").signal("-STOP");
    fleet.add_worker("w1");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(&fleet.url, &id).await;
        let t = j.tasks.iter().find(|t| t.task_id == victim).unwrap();
        if t.history.iter().any(|a| a.outcome == "done") {
            break;
        }
        assert!(Instant::now() < deadline, "chunk not redone: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wake the zombie: it must not get its stale attempt accepted.
    fleet.proc("w0").signal("-CONT");
    let done = ended(&fleet.url, &id, Duration::from_secs(90), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    let t = done.tasks.iter().find(|t| t.task_id == victim).unwrap();
    assert_eq!(t.history[0].outcome, "expired", "{t:?}");
    assert!(t.history[0].worker_id.starts_with("w0-"));
    let winner = t.history.iter().find(|a| a.outcome == "done").unwrap();
    assert!(winner.worker_id.starts_with("w1-"), "{t:?}");
    assert_faithful(&src, &out);
    // The zombie is still alive and was told its lease is gone.
    assert!(fleet.worker("w0").is_running());
    let log = std::fs::read_to_string(fleet.data_dir.path().join("w0.log")).unwrap();
    assert!(
        log.contains("lease lost") || log.contains("completion refused"),
        "zombie log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_killed_five_times_mid_job_never_leave_a_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 10, "960x540");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(2).lease_ttl_ms(1_500).start();
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &[
            "--chunk-seconds",
            "1",
            "--preset",
            "slow",
            "--max-attempts",
            "5",
        ],
    );

    // Kill a busy worker at pseudo-random moments (a fixed-seed LCG keeps
    // runs comparable) and start a replacement each time.
    let mut seed: u64 = 0x5eed;
    let mut kills = 0;
    let mut next = 2;
    let deadline = Instant::now() + Duration::from_secs(120);
    while kills < 5 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(150 + (seed >> 33) % 400)).await;
        let j = check_final_path(&fleet.url, &id, &out).await;
        assert!(
            j.state < pb::JobState::Committing as i32,
            "job ended after {kills} kills: {j:?}"
        );
        let busy: Vec<String> = j
            .tasks
            .iter()
            .filter(|t| t.state == pb::TaskState::Leased as i32)
            .map(|t| {
                t.worker_id
                    .split('-')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let Some(name) = busy.get((seed as usize) % busy.len().max(1)).cloned() else {
            continue;
        };
        if fleet
            .workers
            .iter_mut()
            .any(|w| w.name == name && w.is_running())
        {
            fleet.worker(&name).kill();
            kills += 1;
            fleet.add_worker(&format!("w{next}"));
            next += 1;
        }
        assert!(Instant::now() < deadline, "could not kill 5 times");
    }
    let done = ended(&fleet.url, &id, Duration::from_secs(180), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    let expired = done
        .tasks
        .iter()
        .flat_map(|t| &t.history)
        .filter(|a| a.outcome == "expired")
        .count();
    println!("5 kills, {expired} expired leases, job done");
    // A kill can land just after its victim finished a task, so not every
    // kill costs a lease; most do.
    assert!(
        expired >= 1,
        "no kill cost a lease: the test killed nothing busy"
    );
    assert_faithful(&src, &out);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_job_stops_its_running_task_within_a_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 8, "1280x720");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(1).start();
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &["--chunk-seconds", "8", "--preset", "veryslow"],
    );
    leased_encode(&fleet.url, &id).await;

    let cancelled = std::time::Instant::now();
    let r = fleet.spotenc(&["cancel", &id]);
    assert!(r.status.success(), "{r:?}");
    // The worker learns at its next heartbeat (every 500 ms here).
    let log = fleet.data_dir.path().join("w0.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("lease lost")
    {
        assert!(
            Instant::now() < deadline,
            "worker still encoding 5 s after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = cancelled.elapsed();
    println!(
        "worker stopped {:.0} ms after the cancel",
        stopped.as_secs_f64() * 1000.0
    );
    // One heartbeat to learn it, then the frame in flight; generous for
    // a loaded CI machine.
    assert!(stopped < Duration::from_secs(3), "took {stopped:?}");
    let j = job(&fleet.url, &id).await;
    assert_eq!(j.state, pb::JobState::Cancelled as i32);
    assert!(!out.exists());
    assert!(fleet.worker("w0").is_running());
}
