//! Failures, interruptions, expiries and escalation, on both stores: the
//! contract suite's faults half.

use super::*;

async fn wrong_frame_count_fails_the_chunk_and_requeues_it(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let t = s.lease_next("w1", 2).await.unwrap().unwrap();
    let r = s
        .complete(
            &t.task_id,
            t.attempt,
            TaskOutcome::Encode(obj("/x", 24)),
            vec![],
            3,
        )
        .await;
    assert!(
        matches!(r, Err(Error::Invalid(ref m)) if m.contains("24 frames")),
        "{r:?}"
    );
    let (j, tasks) = s.job(&job).await.unwrap();
    assert_eq!(j.state, JobState::Running);
    let task = tasks.iter().find(|x| x.id == t.task_id).unwrap();
    assert_eq!((task.state, task.failures), (TaskState::Pending, 1));
}

async fn non_retryable_failure_fails_the_job_and_cancels_the_rest(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let a = s.lease_next("w1", 2).await.unwrap().unwrap();
    let b = s.lease_next("w1", 2).await.unwrap().unwrap();
    let t = s
        .fail(
            &a.task_id,
            a.attempt,
            &Ending::new("bad input /in.mp4: truncated", false),
            3,
        )
        .await
        .unwrap();
    assert_eq!(t.state, JobState::Failed);
    let (j, tasks) = s.job(&job).await.unwrap();
    assert_eq!(j.error, "bad input /in.mp4: truncated");
    assert!(!s
        .heartbeat("w1", &b.task_id, b.attempt, 1, 4)
        .await
        .unwrap());
    assert!(tasks
        .iter()
        .all(|t| t.state != TaskState::Pending && t.state != TaskState::Leased));
}

async fn retryable_failures_are_bounded_by_max_attempts(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let t1 = s.lease_next("w1", 2).await.unwrap().unwrap();
    assert_eq!(
        s.fail(&t1.task_id, 1, &Ending::new("encoder crashed", true), 3)
            .await
            .unwrap()
            .state,
        JobState::Running
    );
    // The failed chunk is pending again, ahead of the later one.
    let t2 = s.lease_next("w1", 4).await.unwrap().unwrap();
    assert_eq!((t2.task_id.as_str(), t2.attempt), (t1.task_id.as_str(), 2));
    let end = s
        .fail(&t2.task_id, 2, &Ending::new("encoder crashed", true), 5)
        .await
        .unwrap();
    assert_eq!(end.state, JobState::Failed);
    let (j, _) = s.job(&job).await.unwrap();
    assert!(j.error.contains("failed 2 times"), "{}", j.error);
}

async fn hand_back_requeues_as_an_interruption_of_the_pool(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let t = s.lease_next("w1", 2).await.unwrap().unwrap();
    s.hand_back(
        &t.task_id,
        t.attempt,
        &notice("aws spot notice", "x264 said"),
        3,
    )
    .await
    .unwrap();
    let (_, tasks) = s.job(&job).await.unwrap();
    let task = tasks.iter().find(|x| x.id == t.task_id).unwrap();
    assert_eq!((task.state, task.failures), (TaskState::Pending, 0));
    assert_eq!(task.history[0].outcome, AttemptOutcome::Interrupted);
    assert_eq!(task.history[0].error, "aws spot notice");
    assert_eq!(task.history[0].pool, "p");
    assert_eq!(task.history[0].log_bytes, 9);
    assert_eq!(task.interruptions.get("p"), Some(&1));
    assert_eq!(
        task.partition,
        Capacity::Spot,
        "one interruption does not escalate"
    );
    // Requeued at once: the next lease gets it back, with a new fence.
    let again = s.lease_next("w1", 4).await.unwrap().unwrap();
    assert_eq!((again.task_id, again.attempt), (t.task_id, t.attempt + 1));
}

async fn release_undoes_a_lease_without_counting_it(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let t = s.lease_next("w1", 2).await.unwrap().unwrap();
    s.release(&t.task_id, t.attempt, "lease call dropped", 3)
        .await
        .unwrap();
    let (_, tasks) = s.job(&job).await.unwrap();
    let task = tasks.iter().find(|x| x.id == t.task_id).unwrap();
    assert_eq!(task.state, TaskState::Pending);
    assert_eq!((task.failures, task.expiries), (0, 0));
    assert!(task.interruptions.is_empty(), "{:?}", task.interruptions);
    assert_eq!(task.history[0].outcome, AttemptOutcome::Released);
    assert_eq!(task.history[0].error, "lease call dropped");
    // Nothing holds it any more: a second release is stale.
    assert!(s.release(&t.task_id, t.attempt, "again", 4).await.is_err());
    // Leased again at once, with a new fence.
    let again = s.lease_next("w1", 5).await.unwrap().unwrap();
    assert_eq!((again.task_id, again.attempt), (t.task_id, t.attempt + 1));
}

/// Leases the first pending task to `first` and hands it back at 3, then
/// the next to `second` and hands that back at 5; returns the second lease.
async fn hand_back_twice(s: &dyn StateStore, first: &str, second: &str) -> LeasedTask {
    let mut last = None;
    for (worker, at, msg) in [(first, 2, "n1"), (second, 4, "n2")] {
        let t = s.lease_next(worker, at).await.unwrap().unwrap();
        s.hand_back(&t.task_id, t.attempt, &notice(msg, ""), at + 1)
            .await
            .unwrap();
        last = Some(t);
    }
    last.expect("two leases")
}

async fn interruptions_by_one_pool_escalate_to_on_demand(s: Arc<dyn StateStore>) {
    // escalate_after_attempts is 2: two interruptions by pool "p" move the
    // task, and neither counts as a failure.
    let job = planned_job(&*s).await;
    let t = hand_back_twice(&*s, "w1", "w1").await;
    let (view, tasks) = s.job(&job).await.unwrap();
    let task = tasks.iter().find(|x| x.id == t.task_id).unwrap();
    assert_eq!(task.partition, Capacity::OnDemand);
    assert_eq!((task.failures, task.state), (0, TaskState::Pending));
    assert_eq!(task.interruptions.get("p"), Some(&2));
    assert_eq!(
        spotenc_core::state::job_view(&view, &tasks, 0)
            .interruptions
            .get("p"),
        Some(&2)
    );
    // The other chunk is still on spot, so the spot worker gets that one.
    let other = s.lease_next("w1", 6).await.unwrap().unwrap();
    assert_ne!(other.task_id, t.task_id);
    assert!(s.lease_next("w1", 6).await.unwrap().is_none());
}

async fn interruptions_of_different_pools_do_not_add_up(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let mut other = worker_with("w2", Capacity::Spot);
    other.info.pool = "q".into();
    s.register_worker(other).await.unwrap();
    let t = hand_back_twice(&*s, "w1", "w2").await;
    let (_, tasks) = s.job(&job).await.unwrap();
    let task = tasks.iter().find(|x| x.id == t.task_id).unwrap();
    assert_eq!(task.partition, Capacity::Spot);
    assert_eq!(task.interruptions.len(), 2);
}

async fn attempt_logs_are_kept_and_filtered_by_task(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let a = s.lease_next("w1", 2).await.unwrap().unwrap();
    let b = s.lease_next("w1", 2).await.unwrap().unwrap();
    s.hand_back(&a.task_id, a.attempt, &notice("n", "partial run"), 3)
        .await
        .unwrap();
    let failed = Ending {
        message: "encoder crashed".into(),
        retryable: true,
        log: "x".repeat(TaskLog::MAX_BYTES + 10),
    };
    s.fail(&b.task_id, b.attempt, &failed, 4).await.unwrap();
    let all = s.task_logs(&job, "").await.unwrap();
    assert_eq!(all.len(), 2);
    let one = s.task_logs(&job, &a.task_id).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (
            one[0].log.as_str(),
            one[0].outcome.as_str(),
            one[0].pool.as_str()
        ),
        ("partial run", "interrupted", "p")
    );
    let b_log = s.task_logs(&job, &b.task_id).await.unwrap();
    assert_eq!(b_log[0].log.len(), TaskLog::MAX_BYTES, "the tail is kept");
    assert!(matches!(
        s.task_logs(&job, "nope").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.task_logs("nope", "").await,
        Err(Error::NotFound(_))
    ));
}

async fn too_many_expiries_fail_the_job(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    // Expired spot tasks escalate, so lease on on-demand capacity.
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    let mut now = 2;
    for _ in 0..3 {
        s.lease_next("od1", now).await.unwrap().unwrap();
        s.lease_next("od1", now).await.unwrap();
        now += 2_000;
        s.expire_leases(now).await.unwrap();
    }
    let (j, _) = s.job(&job).await.unwrap();
    assert_eq!(j.state, JobState::Failed);
    assert!(j.error.contains("lost its lease"), "{}", j.error);
}

async fn cancel_stops_heartbeats(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let t = s.lease_next("w1", 2).await.unwrap().unwrap();
    assert!(s
        .heartbeat("w1", &t.task_id, t.attempt, 3, 3)
        .await
        .unwrap());
    assert_eq!(s.cancel(&job, 4).await.unwrap().state, JobState::Cancelled);
    assert!(!s
        .heartbeat("w1", &t.task_id, t.attempt, 4, 5)
        .await
        .unwrap());
    assert!(s.lease_next("w1", 6).await.unwrap().is_none());
}

/// Runs each contract test against every backend.
async fn failing_spot_task_escalates_to_on_demand(s: Arc<dyn StateStore>) {
    let job = planned_job(&*s).await;
    let t = s.lease_next("w1", 2).await.unwrap().unwrap();
    s.fail(
        &t.task_id,
        t.attempt,
        &Ending::new("encoder crashed", true),
        3,
    )
    .await
    .unwrap();
    // Below the limit (2): still spot, and the spot worker gets it back.
    let again = s.lease_next("w1", 4).await.unwrap().unwrap();
    assert_eq!(again.task_id, t.task_id);
    s.fail(
        &again.task_id,
        again.attempt,
        &Ending::new("encoder crashed", true),
        5,
    )
    .await
    .ok();
    // max_attempts is 2 as well: the job ends. Use a fresh job with more room.
    let _ = job;
    let mut spec = spec();
    spec.max_attempts = 5;
    spec.escalate_after_attempts = 1;
    let job = s.submit(spec, "", 10).await.unwrap().id;
    let probe = s.lease_next("w1", 11).await.unwrap().unwrap();
    assert_eq!(probe.job_id, job);
    s.fail(
        &probe.task_id,
        probe.attempt,
        &Ending::new("worker crashed", true),
        12,
    )
    .await
    .unwrap();
    assert!(
        s.lease_next("w1", 13).await.unwrap().is_none(),
        "spot worker must not get it"
    );
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    let od = s.lease_next("od1", 14).await.unwrap().unwrap();
    assert_eq!(od.task_id, probe.task_id);
    let (_, tasks) = s.job(&job).await.unwrap();
    assert_eq!(tasks[0].partition, Capacity::OnDemand);
}

async fn expired_spot_task_escalates_after_enough_expiries(s: Arc<dyn StateStore>) {
    let mut spec = spec();
    spec.escalate_after_attempts = 1;
    let job = s.submit(spec, "", 0).await.unwrap().id;
    s.lease_next("w1", 0).await.unwrap().unwrap();
    s.expire_leases(5_000).await.unwrap();
    assert!(s.lease_next("w1", 5_001).await.unwrap().is_none());
    let (_, tasks) = s.job(&job).await.unwrap();
    assert_eq!(tasks[0].partition, Capacity::OnDemand);
}

async fn latency_jobs_go_to_on_demand_workers(s: Arc<dyn StateStore>) {
    let mut spec = spec();
    spec.priority = Priority::Latency;
    s.submit(spec, "", 0).await.unwrap();
    assert!(s.lease_next("w1", 1).await.unwrap().is_none());
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    assert!(s.lease_next("od1", 2).await.unwrap().is_some());
}

async fn on_demand_workers_take_spot_work_rather_than_idle(s: Arc<dyn StateStore>) {
    s.submit(spec(), "", 0).await.unwrap();
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    assert!(s.lease_next("od1", 1).await.unwrap().is_some());
}

async fn waiting_spot_tasks_escalate_after_the_wait_limit(s: Arc<dyn StateStore>) {
    let mut spec = spec();
    spec.escalate_after_wait_seconds = 1;
    let job = s.submit(spec, "", 1_000).await.unwrap().id;
    assert!(s.escalate_waiting(1_500).await.unwrap().is_empty());
    let moved = s.escalate_waiting(2_001).await.unwrap();
    assert_eq!(moved, vec![format!("{job}/probe")]);
    assert!(s.lease_next("w1", 2_002).await.unwrap().is_none());
    s.register_worker(worker_with("od1", Capacity::OnDemand))
        .await
        .unwrap();
    let t = s.lease_next("od1", 2_003).await.unwrap().unwrap();
    assert_eq!(t.job_id, job);
}

contract!(
    wrong_frame_count_fails_the_chunk_and_requeues_it,
    non_retryable_failure_fails_the_job_and_cancels_the_rest,
    retryable_failures_are_bounded_by_max_attempts,
    hand_back_requeues_as_an_interruption_of_the_pool,
    release_undoes_a_lease_without_counting_it,
    interruptions_by_one_pool_escalate_to_on_demand,
    interruptions_of_different_pools_do_not_add_up,
    attempt_logs_are_kept_and_filtered_by_task,
    too_many_expiries_fail_the_job,
    cancel_stops_heartbeats,
    failing_spot_task_escalates_to_on_demand,
    expired_spot_task_escalates_after_enough_expiries,
    latency_jobs_go_to_on_demand_workers,
    on_demand_workers_take_spot_work_rather_than_idle,
    waiting_spot_tasks_escalate_after_the_wait_limit,
);
