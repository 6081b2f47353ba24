//! Benchmark (not a test): lease+complete cycles per second through a real
//! coordinator process on the Redis store, driven by simulated workers over
//! gRPC on loopback; p50/p99 lease latency; and the Redis server's own ops/s
//! (redis-benchmark) in the same run as the ceiling.
//!
//!     cargo run --release -p spotenc-tests --example lease_bench -- [workers] [seconds] [cost|fifo]
//!
//! The third argument sets the coordinator's placement (`SPOTENC_PLACEMENT`):
//! `cost` (the default) reads a candidate window and claims the choice,
//! `fifo` pops the oldest task in one script.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spotenc_proto::client::Connection;
use spotenc_proto::domain::*;
use spotenc_proto::pb;
use spotenc_tests::{bin, free_port, Proc, RedisServer};

fn probe_result() -> ProbeInfo {
    // 250 frames at 25 fps with a keyframe every 25: ten 1-second chunks.
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
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let placement = args.get(3).cloned().unwrap_or_else(|| "cost".into());

    let redis = RedisServer::start();
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let _coordinator = Proc {
        child: std::process::Command::new(bin("spotenc"))
            .args([
                "coordinator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--redis",
                &redis.url(),
            ])
            .arg("--data-dir")
            .arg(dir.path().join("state"))
            .env("SPOTENC_INPUT_ROOTS", dir.path())
            .env("SPOTENC_OUTPUT_ROOTS", dir.path())
            .env("RUST_LOG", "error")
            .env("SPOTENC_PLACEMENT", &placement)
            .spawn()?,
        name: "coordinator".into(),
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let conn = Connection {
        url: format!("http://127.0.0.1:{port}"),
        ..Default::default()
    };

    // Enough jobs (12 tasks each) that the queue does not run dry; empty
    // leases are counted to show it.
    let mut jobs = conn.jobs().await?;
    let job_count = 500 + workers * seconds as usize * 12;
    // Submission checks the input is a file under an input root; the
    // simulated workers never read it.
    let input = dir.path().join("in.mp4");
    std::fs::write(&input, b"bench")?;
    let input = input.display().to_string();
    for i in 0..job_count {
        // Each running job writes its own output: the store refuses two.
        let out = dir
            .path()
            .join(format!("out-{i}.mp4"))
            .display()
            .to_string();
        let spec = pb::JobSpec {
            input: input.clone(),
            output: out,
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
            let info =
                spotenc_tests::cpu_worker_info(&format!("sim{w}"), "bench", Capacity::OnDemand);
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
        h.await?;
    }
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };

    let rb = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &redis.port.to_string(),
            "-q",
            "-n",
            "200000",
            "-c",
            "50",
            "-t",
            "set,get",
        ])
        .output()?;
    let rate = done as f64 / elapsed;
    println!(
        "placement {placement}, workers {workers}, {seconds} s, {} cores",
        std::thread::available_parallelism()?.get()
    );
    println!("lease+complete cycles/s: {rate:.0}");
    println!(
        "lease latency p50 {:.2} ms, p99 {:.2} ms ({} leases, {} empty polls, {job_count} jobs queued)",
        pct(0.50) as f64 / 1000.0,
        pct(0.99) as f64 / 1000.0,
        lat.len(),
        empty.load(Ordering::Relaxed)
    );
    println!("redis-benchmark (same server, same run):");
    for line in String::from_utf8_lossy(&rb.stdout)
        .lines()
        .filter(|l| l.contains("requests per second"))
    {
        let line = line.rsplit('\r').next().unwrap_or(line).trim();
        println!("  {line}");
    }
    Ok(())
}
