//! The embedded store's own guarantees: it resumes after a restart,
//! refuses a second opener, changes nothing when a write fails, appends
//! only what a transition wrote, folds its log in the background and
//! survives a crash mid-fold, and drops a torn tail but refuses a bad line.

use super::*;

// The embedded store must resume after a crash: state is on disk after every
// transition.
#[tokio::test]
async fn embedded_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sp = spec();
    let job = {
        let s = open_embedded(dir.path());
        s.submit(sp.clone(), "key", 0).await.unwrap().id
    };
    let s = open_embedded(dir.path());
    let (j, tasks) = s.job(&job).await.unwrap();
    assert_eq!(j.state, JobState::Queued);
    assert_eq!(tasks.len(), 1);
    assert_eq!(s.submit(sp, "key", 1).await.unwrap().id, job);
}

/// Before: a second coordinator on the same data directory started, and the
/// two overwrote each other's state file.
#[tokio::test]
async fn embedded_store_refuses_a_second_opener_of_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_embedded(dir.path());
    let e = EmbeddedStore::open(dir.path(), LIMITS)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("in use by another coordinator"), "{e}");
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    drop(first);
    open_embedded(dir.path());
}

/// Before: a submit whose state write failed (a full disk) was refused, but
/// the job stayed in memory and ran. Now what is not on disk did not happen.
#[tokio::test]
async fn a_failed_state_write_leaves_no_ghost_job() {
    let dir = tempfile::tempdir().unwrap();
    let kept = {
        let s = open_embedded(dir.path());
        s.register_worker(worker()).await.unwrap();
        s.submit(spec(), "kept", 0).await.unwrap().id
    };
    // Reopening compacts the log into the snapshot; then the log's name
    // taken by a directory makes the next append fail (even as root).
    let s = open_embedded(dir.path());
    let log = dir.path().join("state.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let e = s.submit(spec(), "ghost", 1).await.unwrap_err().to_string();
    assert!(e.contains("state.log"), "{e}");
    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_jobs(&[], 100).await.unwrap()),
        std::slice::from_ref(&kept)
    );
    std::fs::remove_dir(&log).unwrap();
    // Only the kept job's probe waits; nothing of the refused one does.
    let leased = s.lease_next("w1", 2).await.unwrap().expect("a task");
    assert!(leased.task_id.starts_with(&kept), "{}", leased.task_id);
    assert!(s.lease_next("w1", 2).await.unwrap().is_none());
    let again = s.submit(spec(), "ghost", 3).await.unwrap().id;
    assert_ne!(again, kept);
    drop(s);
    let s = open_embedded(dir.path());
    let mut listed = ids(s.list_jobs(&[], 100).await.unwrap());
    listed.sort();
    let mut want = vec![kept.clone(), again];
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        s.task(&leased.task_id).await.unwrap().state,
        TaskState::Leased
    );
}

/// Before: every transition rewrote the whole state file, so a lease with
/// many finished jobs in the store cost their bytes. Now it appends only
/// the records it wrote.
#[tokio::test]
async fn an_embedded_transition_appends_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("state.json");
    let log = dir.path().join("state.log");
    let len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let s = open_embedded(dir.path());
    s.register_worker(worker()).await.unwrap();
    // An idle worker's polls write nothing.
    let registered = len(&log);
    assert!(registered > 0);
    assert!(s.lease_next("w1", 1).await.unwrap().is_none());
    assert_eq!(len(&log), registered);
    let mut jobs = vec![];
    for i in 0..200 {
        let sp = spec();
        jobs.push((
            s.submit(sp.clone(), &format!("k{i}"), i).await.unwrap().id,
            sp,
        ));
    }
    assert!(!snapshot.exists(), "no snapshot written before compaction");
    let before = len(&log);
    let t = s.lease_next("w1", 300).await.unwrap().expect("a task");
    let lease_bytes = len(&log) - before;
    assert!(
        (1..4096).contains(&lease_bytes),
        "a lease appended {lease_bytes} bytes to a {before}-byte log"
    );
    // Nothing written: no line.
    let idle = len(&log);
    s.expire_leases(301).await.unwrap();
    s.escalate_waiting(302).await.unwrap();
    assert_eq!(len(&log), idle);
    assert!(s
        .heartbeat("w1", &t.task_id, t.attempt, 5, 303)
        .await
        .unwrap());
    assert_eq!(len(&log), idle, "heartbeats are not written");

    // A restart replays the log: every job, and the lease.
    let in_memory = s.state_now();
    drop(s);
    let s = open_embedded(dir.path());
    assert_eq!(s.list_jobs(&[], 1000).await.unwrap().len(), 200);
    let task = s.task(&t.task_id).await.unwrap();
    assert_eq!((task.state, task.attempt), (TaskState::Leased, t.attempt));
    assert_eq!(
        serde_json::to_value(s.state_now()).unwrap()["next_seq"],
        serde_json::to_value(&in_memory).unwrap()["next_seq"]
    );
    // ... and compacts it into the snapshot.
    assert_eq!(len(&log), 0);
    assert!(len(&snapshot) > before / 2, "{}", len(&snapshot));
    let again = s.submit(jobs[0].1.clone(), "k0", 400).await.unwrap();
    assert_eq!(again.id, jobs[0].0, "the idempotency keys were replayed");
}

/// The log is folded into the snapshot by a thread while transitions go
/// on; a crash right after the log was set aside (`state.log.old`) loses
/// nothing, and replaying an old log the snapshot already holds changes
/// nothing.
#[tokio::test]
async fn the_embedded_log_is_folded_in_the_background_and_survives_a_crash_mid_fold() {
    let dir = tempfile::tempdir().unwrap();
    let (log, old) = (
        dir.path().join("state.log"),
        dir.path().join("state.log.old"),
    );
    let len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let ids = |jobs: Vec<JobRecord>| {
        let mut v: Vec<String> = jobs.into_iter().map(|j| j.id).collect();
        v.sort();
        v
    };
    // A fold shows as the log starting again from empty.
    let mut folds = 0;
    let want = {
        let s = open_embedded(dir.path()).compact_at(4096);
        for i in 0..300 {
            let before = len(&log);
            s.submit(spec(), &format!("k{i}"), i).await.unwrap();
            if len(&log) < before {
                folds += 1;
            }
        }
        ids(s.list_jobs(&[], 1000).await.unwrap())
    };
    assert_eq!(want.len(), 300);
    assert!(!old.exists(), "dropping the store waits for the fold");
    // The log is folded each time it outgrows the snapshot, which grows
    // with the jobs: a few times over 300 submissions.
    assert!(folds >= 3, "{folds} folds");
    let snapshot = len(&dir.path().join("state.json"));
    assert!(len(&log) <= snapshot + 4096, "{} > {snapshot}", len(&log));
    let s = open_embedded(dir.path());
    assert_eq!(ids(s.list_jobs(&[], 1000).await.unwrap()), want);
    let extra = s.submit(spec(), "extra", 400).await.unwrap().id;
    drop(s);

    // A crash right after the log was set aside: the snapshot lacks the
    // extra job, which only the old log holds.
    let mut want2 = want.clone();
    want2.push(extra);
    want2.sort();
    let saved = std::fs::read(&log).unwrap();
    assert!(!saved.is_empty());
    std::fs::rename(&log, &old).unwrap();
    let s = open_embedded(dir.path());
    assert_eq!(ids(s.list_jobs(&[], 1000).await.unwrap()), want2);
    assert!(!old.exists(), "opening folds the old log");
    drop(s);

    // A crash after the snapshot was written but before the old log went:
    // its records are replayed again, to the same state.
    std::fs::write(&old, &saved).unwrap();
    let s = open_embedded(dir.path());
    assert_eq!(ids(s.list_jobs(&[], 1000).await.unwrap()), want2);
}

/// A crash during an append leaves a torn last line: it is dropped, and
/// the next append overwrites it. A bad line before the last is refused
/// with its line named, not skipped.
#[tokio::test]
async fn the_embedded_log_drops_a_torn_tail_and_refuses_a_bad_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("state.log");
    let append = |bytes: &[u8]| {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(bytes)
            .unwrap()
    };
    let first = {
        let s = open_embedded(dir.path());
        let id = s.submit(spec(), "a", 0).await.unwrap().id;
        append(br#"{"next_seq":9,"jobs":{"torn"#);
        id
    };
    {
        let s = open_embedded(dir.path());
        assert_eq!(s.list_jobs(&[], 10).await.unwrap().len(), 1);
        // A torn tail after the store opened: the next append writes over it.
        let second = s.submit(spec(), "b", 1).await.unwrap().id;
        append(b"{\"next_seq\":");
        s.submit(spec(), "c", 2).await.unwrap();
        assert_ne!(second, first);
    }
    let s = open_embedded(dir.path());
    assert_eq!(s.list_jobs(&[], 10).await.unwrap().len(), 3);
    drop(s);
    std::fs::write(&log, b"not json\n{}\n").unwrap();
    let e = EmbeddedStore::open(dir.path(), LIMITS)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("state.log: line 1"), "{e}");
}
