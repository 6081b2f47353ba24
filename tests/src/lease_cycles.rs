//! Simulated workers for the lease benchmarks: jobs submitted over gRPC,
//! and workers that lease and complete tasks as fast as the coordinator
//! answers, timing each lease.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spotenc_proto::client::Connection;
use spotenc_proto::domain::*;
use spotenc_proto::pb;

/// What a probe of every bench job finds: 250 frames at 25 fps with a
/// keyframe every 25, so ten 1-second chunks.
pub fn probe_result() -> ProbeInfo {
    ProbeInfo {
        format_name: "mp4".into(),
        duration_seconds: 10.0,
        index_source: "container-index".into(),
        video: VideoStreamInfo {
            stream_index: 0,
            codec: "h264".into(),
            width: 64,
            height: 64,
            pix_fmt: "yuv420p".into(),
            time_base: Rational::new(1, 25),
            avg_frame_rate: Rational::new(25, 1),
            start_pts: 0,
            end_pts: 250,
            frame_count: 250,
            keyframes: (0..10)
                .map(|i| Keyframe {
                    frame: i * 25,
                    pts: i as i64 * 25,
                })
                .collect(),
        },
        audio: None,
        streams: vec![],
        chapters: 0,
        color: Default::default(),
    }
}

/// Submits `count` H.264 jobs in 1-second chunks, each with its own output
/// under `dir`, named for `tag` (the store refuses two running jobs one
/// output). The input
/// is a placeholder file under `dir`: submission checks it is a file under
/// an input root, and the simulated workers never read it.
pub async fn submit_jobs(
    conn: &Connection,
    dir: &Path,
    tag: &str,
    count: usize,
) -> anyhow::Result<()> {
    let mut jobs = conn.jobs().await?;
    let input = dir.join("in.mp4");
    std::fs::write(&input, b"bench")?;
    let input = input.display().to_string();
    for i in 0..count {
        let spec = pb::JobSpec {
            input: input.clone(),
            output: dir.join(format!("out-{tag}-{i}.mp4")).display().to_string(),
            video: Some(pb::VideoSettings {
                codec: pb::Codec::H264 as i32,
                ..Default::default()
            }),
            chunk_seconds: 1.0,
            ..Default::default()
        };
        jobs.submit_job(pb::SubmitJobRequest {
            spec: Some(spec),
            idempotency_key: String::new(),
        })
        .await?;
    }
    Ok(())
}

/// What [`lease_cycles`] measured.
pub struct Cycles {
    /// Lease+complete cycles per second.
    pub per_second: f64,
    /// Each successful lease call's latency, sorted.
    pub latencies_us: Vec<u32>,
    /// Lease calls that found no task.
    pub empty: u64,
}

impl Cycles {
    /// The `p` quantile of lease latency, in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        let l = &self.latencies_us;
        let i = ((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1));
        l.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }
}

/// Runs `workers` simulated on-demand workers for `seconds`: each leases a
/// task, completes probes and encodes at once, and fails stitches (there is
/// no file to commit), so jobs end without touching storage.
pub async fn lease_cycles(conn: &Connection, workers: usize, seconds: u64) -> Cycles {
    let cycles = Arc::new(AtomicU64::new(0));
    let empty = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..workers {
        let (conn, cycles, latencies, stop, empty) = (
            conn.clone(),
            cycles.clone(),
            latencies.clone(),
            stop.clone(),
            empty.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut c = conn.workers().await.expect("connect");
            let info = crate::cpu_worker_info(&format!("sim{w}"), "bench", Capacity::OnDemand);
            let id = c
                .register_worker(pb::RegisterWorkerRequest {
                    info: Some(info.into()),
                })
                .await
                .expect("register")
                .into_inner()
                .worker_id;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = c
                    .lease_task(pb::LeaseTaskRequest {
                        worker_id: id.clone(),
                        wait_ms: 0,
                        gpus: vec![],
                        withdrawn: vec![],
                    })
                    .await
                    .expect("lease");
                let Some(task) = r.into_inner().task else {
                    empty.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                mine.push(t0.elapsed().as_micros() as u32);
                let task = LeasedTask::try_from(task).expect("task");
                let outcome = match &task.work {
                    Work::Probe(_) => TaskOutcome::Probe(probe_result()),
                    Work::Encode(e) => TaskOutcome::Encode(OutputObject {
                        path: e.output.clone(),
                        size_bytes: 1,
                        sha256: "00".into(),
                        frames: e.chunk.frames(),
                        ..Default::default()
                    }),
                    _ => {
                        // End the job instead of committing a file that does not exist.
                        c.fail_task(pb::FailTaskRequest {
                            worker_id: id.clone(),
                            task_id: task.task_id.clone(),
                            attempt: task.attempt,
                            error: "bench".into(),
                            retryable: false,
                            log: String::new(),
                        })
                        .await
                        .expect("fail");
                        continue;
                    }
                };
                c.complete_task(pb::CompleteTaskRequest {
                    worker_id: id.clone(),
                    task_id: task.task_id,
                    attempt: task.attempt,
                    result: Some(outcome.into()),
                })
                .await
                .expect("complete");
                cycles.fetch_add(1, Ordering::Relaxed);
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    let start = Instant::now();
    let warm = cycles.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let done = cycles.load(Ordering::Relaxed) - warm;
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("worker task");
    }
    let mut latencies_us = latencies.lock().unwrap().clone();
    latencies_us.sort_unstable();
    Cycles {
        per_second: done as f64 / elapsed,
        latencies_us,
        empty: empty.load(Ordering::Relaxed),
    }
}
