//! A virtual-time replay of a workload through the pure state machine
//! ([`spotenc_core::state::machine::State`]) and the real planning, graph and
//! placement code, with cost-aware placement or FIFO. Encode times come
//! from a "truth" model (the priors unless given), so a replay says what
//! placement does to the bill, not how fast this machine encodes.
//!
//! It is the placement benchmark (`bench/placement.sh`) and the seed of
//! the fleet simulator: workers per pool, a job stream, and per-pool
//! accounting, all deterministic.

use std::collections::{BTreeMap, BinaryHeap};

use spotenc_proto::domain::{
    AudioSettings, Codec, Container, JobSpec, JobState, Keyframe, OutputObject, Priority,
    ProbeInfo, ProbeTask, RateControl, Rational, TaskOutcome, VideoSettings, VideoStreamInfo, Work,
    WorkerInfo,
};

use spotenc_core::cost::capacity::pool_worker;
use spotenc_core::cost::catalogue::{nvenc_caps, Hardware, Pool};
use spotenc_core::cost::model::{Model, SMALL_TASK_SECONDS};
use spotenc_core::cost::place::{Fleet, Policy, Worker};
use spotenc_core::cost::Lease;
use spotenc_core::state::machine::State;
use spotenc_core::state::{Limits, WorkerRecord};

/// Workers of one pool in the simulated fleet.
#[derive(Debug, Clone)]
pub struct SimPool {
    pub pool: Pool,
    pub workers: u32,
}

/// One job of the workload.
#[derive(Debug, Clone)]
pub struct SimJob {
    pub submit_at_s: f64,
    pub codec: Codec,
    pub preset: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub duration_s: u32,
    pub chunk_seconds: f64,
    pub priority: Priority,
}

/// What a replay measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub jobs_done: usize,
    pub jobs_total: usize,
    pub dollars: f64,
    pub output_minutes: f64,
    /// Time the last job finished.
    pub makespan_s: f64,
    pub leases: u64,
    /// Per pool: (encode tasks, dollars).
    pub by_pool: BTreeMap<String, (u64, f64)>,
    /// Per pool and codec: encode tasks.
    pub encodes: BTreeMap<(String, Codec), u64>,
    /// Longest any task waited from pending to leased.
    pub max_wait_s: f64,
}

impl Report {
    pub fn dollars_per_output_minute(&self) -> f64 {
        if self.output_minutes > 0.0 {
            self.dollars / self.output_minutes
        } else {
            0.0
        }
    }
}

/// A small deterministic generator (SplitMix64), so replays need no crate
/// and repeat exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The benchmark workload: `n` jobs of `duration_s` arriving evenly over
/// `span_s`, 60% H.264 1080p, 30% HEVC 1080p, 10% HEVC 2160p, x264/x265
/// names at medium, 60 s chunks.
pub fn mixed_workload(n: usize, duration_s: u32, span_s: f64, seed: u64) -> Vec<SimJob> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let r = rng.unit();
            let (codec, width, height) = if r < 0.6 {
                (Codec::H264, 1920, 1080)
            } else if r < 0.9 {
                (Codec::Hevc, 1920, 1080)
            } else {
                (Codec::Hevc, 3840, 2160)
            };
            SimJob {
                submit_at_s: span_s * i as f64 / n as f64,
                codec,
                preset: "medium".into(),
                width,
                height,
                fps: 30,
                duration_s,
                chunk_seconds: 60.0,
                priority: Priority::Cost,
            }
        })
        .collect()
}

pub(crate) fn worker_info(pool: &Pool, n: u32) -> WorkerInfo {
    let nvenc = if pool.hardware == Hardware::Nvenc {
        nvenc_caps(&[Codec::H264, Codec::Hevc], 4096)
    } else {
        vec![]
    };
    WorkerInfo {
        name: format!("{}-{n}", pool.name),
        pool: pool.name.clone(),
        hardware: pool.hardware.name().into(),
        slots: pool.slots,
        cores: pool.vcpus,
        memory_bytes: (pool.memory_gib * f64::from(1u32 << 30)) as u64,
        codecs: vec![Codec::H264, Codec::Hevc],
        instance_type: pool.instance_type.clone(),
        zone: String::new(),
        capacity: pool.capacity,
        gpus: if nvenc.is_empty() {
            vec![]
        } else {
            vec![spotenc_proto::domain::GpuDevice {
                index: 0,
                name: pool.gpu.clone(),
                uuid: String::new(),
                pci_bus_id: String::new(),
                memory_total_bytes: 16 << 30,
                driver_version: String::new(),
                nvenc,
                nvenc_unavailable: String::new(),
            }]
        },
        encoder: match pool.hardware {
            Hardware::Nvenc => "nvenc".into(),
            Hardware::Qsv => "qsv".into(),
            Hardware::Cpu => "libx264/libx265".into(),
        },
        encoder_params: Default::default(),
    }
}

pub(crate) fn spec(j: &SimJob, i: usize) -> JobSpec {
    JobSpec {
        input: format!("sim://job-{i}"),
        output: format!("sim://out-{i}.mp4"),
        video: VideoSettings {
            codec: j.codec,
            rate: RateControl::Crf(23),
            preset: j.preset.clone(),
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
        chunk_seconds: j.chunk_seconds,
        min_chunk_seconds: 1.0,
        priority: j.priority,
        max_attempts: 3,
        escalate_after_attempts: 2,
        escalate_after_wait_seconds: 86_400,
        renditions: vec![],
        audio_tracks: Default::default(),
        subtitle_tracks: Default::default(),
        quality: Default::default(),
    }
}

pub(crate) fn probe(j: &SimJob) -> ProbeInfo {
    let frames = u64::from(j.duration_s) * u64::from(j.fps);
    let gop = u64::from(j.fps) * 2;
    ProbeInfo {
        format_name: "mp4".into(),
        duration_seconds: f64::from(j.duration_s),
        index_source: "container-index".into(),
        video: VideoStreamInfo {
            stream_index: 0,
            codec: "h264".into(),
            width: j.width,
            height: j.height,
            pix_fmt: "yuv420p".into(),
            time_base: Rational::new(1, j.fps as i32),
            avg_frame_rate: Rational::new(j.fps as i32, 1),
            start_pts: 0,
            end_pts: frames as i64,
            frame_count: frames,
            keyframes: (0..frames)
                .step_by(gop as usize)
                .map(|f| Keyframe {
                    frame: f,
                    pts: f as i64,
                })
                .collect(),
        },
        audio: None,
        streams: vec![],
        chapters: 0,
        color: Default::default(),
    }
}

/// A finished attempt waiting in virtual time: (end ms, sequence) orders
/// the heap, earliest first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Done {
    end: std::cmp::Reverse<(i64, u64)>,
    worker: usize,
    task: String,
    attempt: u32,
}

/// Replays `jobs` on `fleet`: with `placement`, through [`spotenc_core::cost::place`];
/// otherwise FIFO among capable tasks. `truth` says how fast encodes really
/// run; `belief` is what placement predicts with. Long (about 140
/// lines): one virtual-time event loop whose events share its queue,
/// fleet and accounting.
pub fn replay(
    fleet: &[SimPool],
    jobs: &[SimJob],
    placement: bool,
    policy: Policy,
    truth: &Model,
    belief: &Model,
) -> Report {
    let limits = Limits {
        lease_ttl_ms: u32::MAX / 2,
        max_expiries: 5,
    };
    let mut state = State::default();
    // Each worker: (id, pool, placement view, free slots).
    let mut workers: Vec<(String, Pool, Worker, u32)> = Vec::new();
    let mut reps = Fleet::default();
    for sp in fleet {
        let mut rep = None;
        for n in 0..sp.workers {
            let info = worker_info(&sp.pool, n);
            let id = info.name.clone();
            let w = pool_worker(&sp.pool);
            rep.get_or_insert_with(|| w.clone());
            state.register_worker(WorkerRecord {
                id: id.clone(),
                info,
                registered_unix_ms: 0,
                strikes: Vec::new(),
            });
            workers.push((id, sp.pool.clone(), w, sp.pool.slots));
        }
        reps.pools.extend(rep);
    }
    let mut report = Report {
        jobs_total: jobs.len(),
        ..Default::default()
    };
    let mut job_ids = BTreeMap::new();
    let mut next_job = 0;
    let mut running: BinaryHeap<Done> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut now: i64 = 0;
    let step_ms = 1000;
    loop {
        // Submit what has arrived.
        while next_job < jobs.len() && (jobs[next_job].submit_at_s * 1000.0) as i64 <= now {
            let id = format!("job{next_job:06}");
            state
                .submit(spec(&jobs[next_job], next_job), "", id.clone(), "/w", now)
                .expect("sim jobs have their own paths");
            job_ids.insert(id, next_job);
            next_job += 1;
        }
        // Every free slot asks for work, in a fixed order.
        let mut leased_any = true;
        while leased_any {
            leased_any = false;
            for (wi, (id, pool, w, free)) in workers.iter_mut().enumerate() {
                if *free == 0 {
                    continue;
                }
                let lease = Lease {
                    worker: Some(w.clone()),
                    fleet: reps.clone(),
                    model: belief.clone(),
                    policy,
                    placement,
                    pricer: None,
                };
                let Ok(Some(task)) = state.lease(id, &lease, now, limits) else {
                    continue;
                };
                leased_any = true;
                report.leases += 1;
                let record = &state.tasks[task.task_id.as_str()];
                let waited = (now - record.pending_since_ms) as f64 / 1000.0;
                report.max_wait_s = report.max_wait_s.max(waited);
                let held = if pool.hardware == Hardware::Nvenc {
                    record.demand.sessions().max(1)
                } else {
                    1
                };
                *free -= held.min(*free);
                let seconds = if record.demand.outputs.is_empty() {
                    SMALL_TASK_SECONDS
                } else {
                    w.seconds(&record.demand, truth)
                };
                seq += 1;
                running.push(Done {
                    end: std::cmp::Reverse((now + (seconds * 1000.0).ceil() as i64, seq)),
                    worker: wi,
                    task: task.task_id,
                    attempt: task.attempt,
                });
            }
        }
        // Advance to the next event: a finish, an arrival, or a second of
        // waiting when work is held back for a cheaper pool.
        let next_finish = running.peek().map(|d| d.end.0 .0);
        let next_arrival = jobs.get(next_job).map(|j| (j.submit_at_s * 1000.0) as i64);
        let pending = state
            .tasks
            .values()
            .any(|t| t.state == spotenc_proto::domain::TaskState::Pending);
        let next = [next_finish, next_arrival, pending.then_some(now + step_ms)]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        now = next.max(now);
        while running.peek().is_some_and(|d| d.end.0 .0 <= now) {
            let d = running.pop().expect("peeked");
            finish(&mut state, &d, now, &job_ids, jobs, &mut workers);
        }
    }
    for job in state.jobs.values() {
        if job.state == JobState::Succeeded {
            report.jobs_done += 1;
            report.makespan_s = report.makespan_s.max(job.finished_unix_ms as f64 / 1000.0);
            report.output_minutes += job
                .probe
                .as_ref()
                .map_or(0.0, |p| p.duration_seconds / 60.0);
        }
    }
    for t in state.tasks.values() {
        for a in &t.history {
            report.dollars += a.cost_dollars;
            let e = report.by_pool.entry(a.pool.to_string()).or_default();
            e.1 += a.cost_dollars;
            if let Some(o) = t.demand.outputs.first() {
                e.0 += 1;
                *report
                    .encodes
                    .entry((a.pool.to_string(), o.codec))
                    .or_default() += 1;
            }
        }
    }
    report
}

/// Completes a finished attempt with the outcome a worker would report,
/// then commits a job that reached `Committing`.
fn finish(
    state: &mut State,
    d: &Done,
    now: i64,
    job_ids: &BTreeMap<String, usize>,
    jobs: &[SimJob],
    workers: &mut [(String, Pool, Worker, u32)],
) {
    let task = state.tasks[d.task.as_str()].clone();
    let held = if workers[d.worker].1.hardware == Hardware::Nvenc {
        task.demand.sessions().max(1)
    } else {
        1
    };
    workers[d.worker].3 += held;
    let object = |frames: u64| OutputObject {
        path: format!("sim://{}", task.id),
        size_bytes: 1,
        sha256: String::new(),
        frames,
        ..Default::default()
    };
    let (outcome, follow_ups) = match &task.work {
        Work::Probe(ProbeTask { .. }) => {
            let job = state.jobs[task.job_id.as_str()].clone();
            let p = probe(&jobs[job_ids[task.job_id.as_str()]]);
            let follow = spotenc_core::graph::expand(&job, &p, "/w").expect("sim plans");
            (TaskOutcome::Probe(p), follow)
        }
        Work::Encode(_) => (TaskOutcome::Encode(object(task.frames_total)), vec![]),
        Work::Audio(_) => (TaskOutcome::Audio(object(0)), vec![]),
        Work::Stitch(_) => (TaskOutcome::Stitch(object(task.frames_total)), vec![]),
    };
    if let Ok(t) = state.complete(&d.task, d.attempt, outcome, follow_ups, now) {
        if t.state == JobState::Committing {
            let _ = state.finish_commit(&t.job_id, Ok(()), now);
        }
    }
}

/// The fleet of the placement benchmark: g4dn spot, c6i spot and m5
/// on-demand, priced from the catalogue.
pub fn bench_fleet(
    catalogue: &spotenc_core::cost::catalogue::Catalogue,
    g4dn: u32,
    c6i: u32,
    m5: u32,
) -> Vec<SimPool> {
    [
        ("g4dn-xlarge-spot", g4dn),
        ("c6i-4xlarge-spot", c6i),
        ("m5-4xlarge-ondemand", m5),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(name, workers)| SimPool {
        pool: catalogue.get(name).expect("built-in pool").clone(),
        workers,
    })
    .collect()
}

#[cfg(test)]
mod tests;
