//! Benchmark (not a test): a chaos run. Redis (AOF, fsync always), two
//! coordinator replicas and four CPU workers, all real processes, take a
//! stream of jobs while, round after round, a random victim is killed with
//! SIGKILL and started again: a worker, a coordinator replica, or Redis
//! (restarted on its port and append-only file).
//!
//! Measured and checked:
//! - every acknowledged job ends `Succeeded`, with the source's frame count
//!   and PSNR above 30 dB against it (ffprobe/ffmpeg as the oracle);
//! - no job is lost (each submission carries an idempotency key and is
//!   retried on the other replica until one acknowledges it);
//! - no partial output is ever seen at a final path: a poller looks at
//!   every final path every 20 ms, and the size it first saw must be the
//!   final size;
//! - each job's turnaround against a no-fault baseline run first on the
//!   same fleet.
//!
//!     cargo run --release -p spotenc-tests --example chaos_bench -- [rounds] [seed]

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spotenc_proto::pb::{self, job_service_client::JobServiceClient};
use spotenc_tests::media::{frame_count, psnr, video_clip};
use spotenc_tests::{bin, Fleet, RedisServer};

const WORKERS: usize = 4;
/// Seconds between job submissions.
const SUBMIT_EVERY: Duration = Duration::from_millis(1500);
/// Seconds between faults; each victim stays down for 0.3-1.3 s.
const FAULT_EVERY: Duration = Duration::from_millis(2500);

/// xorshift64*: a seeded, reproducible victim order.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Submitted {
    id: String,
    source: PathBuf,
    output: PathBuf,
}

/// Submits with an idempotency key, trying each replica until one answers.
/// Prints any single `spotenc submit` call that took over 10 s.
fn submit(urls: &[String], key: &str, source: &Path, output: &Path) -> String {
    for attempt in 0.. {
        let url = &urls[attempt % urls.len()];
        let started = Instant::now();
        let out = std::process::Command::new(bin("spotenc"))
            .args(["submit", "--coordinator", url, "--idempotency-key", key])
            .args(["--preset", "fast", "--chunk-seconds", "2"])
            .arg(source)
            .arg(output)
            .output()
            .expect("run spotenc submit");
        if started.elapsed() > Duration::from_secs(10) {
            println!(
                "slow submit: {key} to {url} took {:.1} s: {}",
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        assert!(attempt < 200, "submit {key} never acknowledged: {out:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    unreachable!()
}

/// The job from whichever replica answers (Redis may be down a while).
async fn job(urls: &[String], id: &str) -> pb::Job {
    for attempt in 0.. {
        let url = urls[attempt % urls.len()].clone();
        if let Ok(mut c) = JobServiceClient::connect(url).await {
            if let Ok(j) = c.get_job(pb::GetJobRequest { job_id: id.into() }).await {
                return j.into_inner();
            }
        }
        assert!(attempt < 2_000, "job {id} unreadable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

fn ended(j: &pb::Job) -> bool {
    [
        pb::JobState::Succeeded,
        pb::JobState::Failed,
        pb::JobState::Cancelled,
    ]
    .iter()
    .any(|s| j.state == *s as i32)
}

/// Waits for every job to end; returns each one's turnaround in seconds.
async fn finish(urls: &[String], jobs: &[Submitted], limit: Duration) -> Vec<(pb::Job, f64)> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    for s in jobs {
        loop {
            let j = job(urls, &s.id).await;
            if ended(&j) {
                let secs = (j.finished_unix_ms - j.created_unix_ms) as f64 / 1000.0;
                out.push((j, secs));
                break;
            }
            assert!(Instant::now() < deadline, "job {} never ended: {j:?}", s.id);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    out
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(100, |a| a.parse().expect("rounds"));
    let seed: u64 = args
        .next()
        .map_or(0x0005_EEDC_4A05_u64, |a| a.parse().expect("seed"));
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let clip = |name: &str, seconds, size| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        video_clip(&d, seconds, size)
    };
    let sources = [
        clip("a", 8, "640x360"),
        clip("b", 12, "480x270"),
        clip("c", 6, "960x540"),
    ];
    let outputs = dir.path().join("out");
    std::fs::create_dir(&outputs).unwrap();
    let mut redis = RedisServer::start();
    let mut fleet = Fleet::builder()
        .redis(redis.url())
        .coordinators(2)
        .cpu_workers(WORKERS)
        .lease_ttl_ms(3_000)
        .start();
    let urls = fleet.urls.clone();

    // The poller: the size each final path had when first seen.
    let watched: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let first_seen: Arc<Mutex<BTreeMap<PathBuf, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (watched, first_seen, stop) = (watched.clone(), first_seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let paths = watched.lock().unwrap().clone();
                for p in paths {
                    if let Ok(m) = std::fs::metadata(&p) {
                        first_seen.lock().unwrap().entry(p).or_insert(m.len());
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut n = 0;
    let submit_one = |fleet_urls: &[String], n: &mut usize| -> Submitted {
        let source = sources[*n % sources.len()].clone();
        let output = outputs.join(format!("job{n}.mp4"));
        watched.lock().unwrap().push(output.clone());
        let id = submit(fleet_urls, &format!("chaos-{seed}-{n}"), &source, &output);
        *n += 1;
        Submitted { id, source, output }
    };

    // Baseline: the same cadence, no faults.
    let baseline_jobs = 8;
    let t0 = Instant::now();
    let mut baseline = Vec::new();
    for _ in 0..baseline_jobs {
        baseline.push(submit_one(&urls, &mut n));
        tokio::time::sleep(SUBMIT_EVERY).await;
    }
    let base = finish(&urls, &baseline, Duration::from_secs(300)).await;
    let mut base_secs: Vec<f64> = base.iter().map(|(_, s)| *s).collect();
    println!(
        "baseline: {baseline_jobs} jobs in {:.0} s, turnaround p50 {:.1} s, p95 {:.1} s",
        t0.elapsed().as_secs_f64(),
        percentile(&mut base_secs, 0.5),
        percentile(&mut base_secs, 0.95)
    );

    // Chaos: a fault every FAULT_EVERY, a job every SUBMIT_EVERY.
    let t0 = Instant::now();
    let mut chaos = Vec::new();
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    let mut next_submit = Instant::now();
    for round in 0..rounds {
        let fault_at = Instant::now() + FAULT_EVERY;
        while Instant::now() < fault_at {
            if Instant::now() >= next_submit {
                chaos.push(submit_one(&urls, &mut n));
                next_submit += SUBMIT_EVERY;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let down = Duration::from_millis(300 + rng.below(1000));
        let victim = match rng.below(3) {
            0 => {
                let w = rng.below(WORKERS as u64) as usize;
                let name = format!("w{w}");
                fleet.worker(&name).kill();
                tokio::time::sleep(down).await;
                fleet.restart_worker(&name, &urls[w % urls.len()]);
                "worker"
            }
            1 => {
                let c = rng.below(urls.len() as u64) as usize;
                fleet.coordinators[c].kill();
                tokio::time::sleep(down).await;
                fleet.restart_coordinator(c);
                "coordinator"
            }
            _ => {
                redis.kill();
                tokio::time::sleep(down).await;
                redis.restart();
                "redis"
            }
        };
        *faults.entry(victim).or_default() += 1;
        if (round + 1) % 10 == 0 {
            println!(
                "round {}/{rounds}: {} jobs submitted, faults so far {faults:?}",
                round + 1,
                chaos.len()
            );
        }
    }
    let ran = finish(&urls, &chaos, Duration::from_secs(900)).await;
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();

    // The oracle.
    let first_seen = first_seen.lock().unwrap().clone();
    let all: Vec<(&Submitted, &pb::Job)> = baseline
        .iter()
        .zip(base.iter().map(|(j, _)| j))
        .chain(chaos.iter().zip(ran.iter().map(|(j, _)| j)))
        .collect();
    let (mut correct, mut wrong, mut partial) = (0, Vec::new(), Vec::new());
    for (s, j) in &all {
        if j.state != pb::JobState::Succeeded as i32 {
            wrong.push(format!("{} ended {:?}: {}", s.id, j.state, j.error));
            continue;
        }
        let size = std::fs::metadata(&s.output).map(|m| m.len()).unwrap_or(0);
        if first_seen.get(&s.output).is_some_and(|seen| *seen != size) {
            partial.push(format!(
                "{}: first seen at {} bytes, final {size}",
                s.output.display(),
                first_seen[&s.output]
            ));
        }
        let (frames, want) = (frame_count(&s.output), frame_count(&s.source));
        let db = psnr(&s.output, &s.source);
        if frames == want && db > 30.0 {
            correct += 1;
        } else {
            wrong.push(format!(
                "{}: {frames}/{want} frames, PSNR {db:.1}",
                s.output.display()
            ));
        }
    }
    let mut chaos_secs: Vec<f64> = ran.iter().map(|(_, s)| *s).collect();
    let b50 = percentile(&mut base_secs, 0.5);
    println!("chaos: {rounds} rounds (seed {seed}) in {wall:.0} s, faults {faults:?}");
    println!(
        "jobs: {} submitted, {correct} correct ({:.1}%), {} wrong, {} partial outputs seen at final paths, {} lost",
        all.len(),
        100.0 * correct as f64 / all.len() as f64,
        wrong.len(),
        partial.len(),
        all.len() - ran.len() - base.len()
    );
    println!(
        "turnaround under chaos: p50 {:.1} s, p95 {:.1} s, max {:.1} s; no-fault p50 {b50:.1} s; ratio p50 {:.2}",
        percentile(&mut chaos_secs, 0.5),
        percentile(&mut chaos_secs, 0.95),
        percentile(&mut chaos_secs, 1.0),
        percentile(&mut chaos_secs, 0.5) / b50
    );
    for w in wrong.iter().chain(&partial) {
        println!("  {w}");
    }
    assert!(
        wrong.is_empty() && partial.is_empty(),
        "the chaos run lost or damaged work"
    );
}
