//! The records' plain helpers: new job and task records, requeueing and closing
//! attempts, a job's traits for the index, filling a stitch task from its
//! dependencies, and the API's view of an attempt.

use rustc_hash::FxHashMap;

use spotenc_proto::domain::{
    AttemptOutcome, AttemptRecord, Capacity, JobSpec, JobState, Priority, ProbeTask, StitchTask,
    TaskKind, TaskLog, TaskOutcome, TaskState, Work,
};
use spotenc_proto::{Error, Result};

use super::super::index::JobTraits;
use super::super::{JobRecord, Key, NewTask, TaskRecord};
use crate::paths;

/// What the index keeps of a job for each of its tasks.
pub(super) fn job_traits(spec: &JobSpec) -> JobTraits {
    JobTraits {
        latency: spec.priority == Priority::Latency,
        escalate_after_ms: i64::from(spec.escalate_after_wait_seconds) * 1000,
    }
}

/// How many of `t`'s dependencies are done.
pub(super) fn deps_done(tasks: &FxHashMap<Key, Box<TaskRecord>>, t: &TaskRecord) -> u32 {
    t.deps
        .iter()
        .filter(|d| {
            tasks
                .get(d.as_str())
                .is_some_and(|d| d.state == TaskState::Done)
        })
        .count() as u32
}

/// Puts a failed, expired or interrupted task back in the queue; a spot
/// task moves to on-demand once its failures, expired leases and the most
/// interruptions by any one pool add up to the job's escalation limit.
pub(super) fn requeue(task: &mut TaskRecord, spec: &JobSpec, now_ms: i64) {
    task.state = TaskState::Pending;
    task.pending_since_ms = now_ms;
    let by_one_pool = task.interruptions.values().copied().max().unwrap_or(0);
    if task.partition == Capacity::Spot
        && task.failures + task.expiries + by_one_pool >= spec.escalate_after_attempts
    {
        task.partition = Capacity::OnDemand;
    }
}

/// An attempt record and its log as the API returns them.
pub fn task_log(task_id: &str, a: &AttemptRecord, log: String) -> TaskLog {
    TaskLog {
        task_id: task_id.to_string(),
        attempt: a.attempt,
        worker_id: a.worker_id.to_string(),
        pool: a.pool.to_string(),
        outcome: a.outcome.to_string(),
        error: a.error.clone(),
        started_unix_ms: a.started_unix_ms,
        ended_unix_ms: a.ended_unix_ms,
        log,
    }
}

pub(super) fn new_task_record(
    job_id: &str,
    partition: Capacity,
    now_ms: i64,
    nt: NewTask,
) -> TaskRecord {
    TaskRecord {
        id: nt.id,
        job_id: job_id.into(),
        kind: nt.kind,
        chunk: nt.chunk,
        work: nt.work,
        state: if nt.deps.is_empty() {
            TaskState::Pending
        } else {
            TaskState::Blocked
        },
        deps: nt.deps,
        attempt: 0,
        failures: 0,
        expiries: 0,
        worker_id: Key::default(),
        lease_until_ms: 0,
        frames_done: 0,
        frames_total: nt.frames_total,
        result: None,
        history: Vec::new(),
        interruptions: Default::default(),
        partition,
        pending_since_ms: now_ms,
        demand: nt.demand,
        avoid_worker: String::new(),
    }
}

pub(super) fn close_attempt(
    task: &mut TaskRecord,
    outcome: AttemptOutcome,
    error: &str,
    now_ms: i64,
) {
    if let Some(a) = task.history.last_mut() {
        if a.ended_unix_ms == 0 {
            a.cost_dollars = a.cost_at(now_ms);
            a.ended_unix_ms = now_ms;
            a.outcome = outcome;
            a.error.clear();
            a.error.push_str(error);
        }
    }
}

/// Re-labels a task's last done attempt (a restart discards it, the
/// outlier guard rejects it) with `outcome` and `error`, and drops the
/// task's result; returns the attempt, `None` when none was done. The
/// machine's twin of `relabel_done` in `store/lua/lib.lua`.
pub(super) fn relabel_done<'t>(
    task: &'t mut TaskRecord,
    outcome: AttemptOutcome,
    error: &str,
) -> Option<&'t mut AttemptRecord> {
    task.result = None;
    let a = task
        .history
        .iter_mut()
        .rev()
        .find(|a| a.outcome == AttemptOutcome::Done)?;
    a.outcome = outcome;
    a.error = error.to_string();
    Some(a)
}

/// Fills a stitch task's inputs from its dependencies' results, in
/// dependency (chunk) order.
pub fn fill_stitch(
    stitch: &StitchTask,
    results: Vec<(String, Option<TaskOutcome>)>,
) -> Result<Work> {
    let mut chunks = Vec::new();
    let mut audio = Vec::new();
    for (dep, result) in results {
        match result {
            Some(TaskOutcome::Encode(obj)) => {
                let r = stitch.rendition as usize;
                let chunk = if r == 0 {
                    Some(obj)
                } else {
                    obj.renditions.into_iter().nth(r - 1)
                };
                chunks.push(chunk.ok_or_else(|| {
                    Error::Internal(format!("dependency {dep} has no rendition {r}"))
                })?);
            }
            Some(TaskOutcome::Audio(obj)) => audio.push(obj),
            _ => return Err(Error::Internal(format!("dependency {dep} has no result"))),
        }
    }
    let mut audio = audio.into_iter();
    Ok(Work::Stitch(StitchTask {
        chunks,
        audio: audio.next(),
        more_audio: audio.collect(),
        ..stitch.clone()
    }))
}

/// Gives each attempt its own output object, so a worker that lost its lease
/// can never overwrite the object of the attempt that replaced it.
pub fn with_attempt_paths(work: Work, attempt: u32) -> Work {
    match work {
        Work::Encode(mut e) => {
            e.output = paths::attempt_path(&e.output, attempt);
            for r in &mut e.renditions {
                r.output = paths::attempt_path(&r.output, attempt);
            }
            Work::Encode(e)
        }
        Work::Audio(mut a) => {
            a.output = paths::attempt_path(&a.output, attempt);
            Work::Audio(a)
        }
        Work::Stitch(mut s) => {
            s.output = paths::attempt_path(&s.output, attempt);
            Work::Stitch(s)
        }
        probe @ Work::Probe(_) => probe,
    }
}

/// A job and its probe task as records, before filing stamps the job's
/// number and times.
pub(super) fn new_job(
    spec: JobSpec,
    idempotency_key: &str,
    client: &str,
    job_id: String,
    work_root: &str,
) -> (Box<JobRecord>, Box<TaskRecord>) {
    let probe_id = format!("{job_id}/probe");
    let (input, partition) = (spec.input.clone(), spec.partition());
    let probe = new_task_record(
        &job_id,
        partition,
        0,
        NewTask {
            id: probe_id.clone(),
            kind: TaskKind::Probe,
            chunk: 0,
            work: Work::Probe(ProbeTask { input }),
            deps: vec![],
            frames_total: 0,
            demand: Default::default(),
        },
    );
    let job = JobRecord {
        id: job_id.clone(),
        seq: 0,
        state: JobState::Queued,
        error: String::new(),
        idempotency_key: idempotency_key.to_string(),
        created_unix_ms: 0,
        updated_unix_ms: 0,
        finished_unix_ms: 0,
        work_dir: format!("{}/{job_id}", work_root.trim_end_matches('/')),
        probe: None,
        task_ids: vec![probe_id],
        spec,
        client: client.to_string(),
        identities: Vec::new(),
        restarts: Vec::new(),
    };
    (Box::new(job), Box::new(probe))
}
