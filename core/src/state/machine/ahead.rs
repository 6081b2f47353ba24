//! A job, and a probe's follow-up tasks, made into records ahead of the
//! transitions that file them ([`super::State::submit_made`],
//! [`super::State::complete_made`]), so a caller that plans ahead can do
//! the allocating and copying on a thread of its own.

use spotenc_proto::domain::{Capacity, JobSpec, JobState, TaskKind, Work};

use super::super::{JobRecord, Key, NewTask, TaskRecord};
use super::records::new_task_record;

/// A job and its probe task made into records, ready to file: what
/// [`super::State::submit_as`] makes of a spec before its checks. A caller that
/// plans jobs ahead (the simulator, on its arrivals thread) makes them
/// itself with [`JobAhead::new`] and submits with [`super::State::submit_made`],
/// so the allocating and copying happen off the thread that runs the
/// state. Filing stamps the job's number and times.
#[derive(Debug)]
pub struct JobAhead {
    pub(super) job: Box<JobRecord>,
    pub(super) probe: Box<TaskRecord>,
    /// The job's and its probe's ids as the maps' keys.
    pub(super) job_key: Key,
    pub(super) probe_key: Key,
}

impl JobAhead {
    pub fn new(
        spec: JobSpec,
        idempotency_key: &str,
        client: &str,
        job_id: String,
        work_root: &str,
    ) -> JobAhead {
        // Concatenated, not formatted: once per job, on the simulator's path.
        let probe_id = [job_id.as_str(), "/probe"].concat();
        let (input, partition) = (spec.input.clone(), spec.partition());
        let probe = new_task_record(
            &job_id,
            partition,
            0,
            NewTask {
                id: probe_id.clone(),
                kind: TaskKind::Probe,
                chunk: 0,
                work: Work::Probe(spotenc_proto::domain::ProbeTask { input }),
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
            work_dir: [work_root.trim_end_matches('/'), "/", &job_id].concat(),
            probe: None,
            task_ids: vec![probe_id.clone()],
            spec,
            client: client.to_string(),
        };
        JobAhead {
            job: Box::new(job),
            probe: Box::new(probe),
            job_key: Key::from(job_id),
            probe_key: Key::from(probe_id),
        }
    }
}

/// Follow-up tasks made into records, ready to file: what
/// [`super::State::complete`] makes of a probe's `NewTask`s before filing them.
/// A caller that plans jobs ahead (the simulator, on its arrivals thread)
/// makes them itself with [`FollowUps::new`], so the allocating and copying
/// happen off the thread that runs the state, and completes the probe
/// with [`super::State::complete_made`]. Filing stamps what only that moment
/// knows: when the tasks became pending.
#[derive(Debug)]
pub struct FollowUps {
    pub(super) job_id: String,
    pub(super) partition: Capacity,
    /// Each task: its id for the job's list, its id as the map's key, and
    /// its record.
    pub(super) tasks: Vec<(String, Key, Box<TaskRecord>)>,
}

impl FollowUps {
    /// `tasks` of job `job_id`, whose spec puts its tasks in `partition`.
    pub fn new(job_id: &str, partition: Capacity, tasks: Vec<NewTask>) -> FollowUps {
        let tasks = tasks
            .into_iter()
            .map(|nt| {
                let key = Key::from(nt.id.as_str());
                let id = nt.id.clone();
                let t = Box::new(new_task_record(job_id, partition, 0, nt));
                (id, key, t)
            })
            .collect();
        FollowUps {
            job_id: job_id.to_string(),
            partition,
            tasks,
        }
    }
}
