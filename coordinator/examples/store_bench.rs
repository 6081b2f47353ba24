//! Benchmark (not a test): lease latency through a real coordinator
//! process with many finished jobs in its store, on the embedded store and
//! on Redis, against the same store empty in the same run.
//!
//! For each store it preloads `finished` jobs that ran to the end (probe,
//! encode, stitch, commit) through the store's own transitions in this
//! process, then, for each count in `workers`, starts `spotenc coordinator`
//! on that store, submits fresh jobs over gRPC and lets that many
//! simulated workers lease and complete tasks for `seconds`. One worker
//! shows a lease's own cost; more show the machine saturated (the
//! coordinator, the store and the simulated workers share its cores). The embedded store is preloaded in a directory
//! on /dev/shm (fsync there costs nothing) and its files are then copied
//! to the bench's directory on disk, where the coordinator runs.
//!
//!     cargo run --release -p spotenc-coordinator --example store_bench -- \
//!         [finished=100000] [workers=1,4] [seconds=10] [embedded,redis]
//!
//! Redis runs with AOF and `appendfsync always`; set
//! `SPOTENC_BENCH_APPENDFSYNC=everysec` (or `no`) to compare.

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spotenc_core::graph;
use spotenc_core::state::{Limits, WorkerRecord};
use spotenc_proto::client::Connection;
use spotenc_proto::domain::*;
use spotenc_store::embedded::EmbeddedStore;
use spotenc_store::redis::RedisStore;
use spotenc_store::StateStore;
use spotenc_tests::lease_cycles::{lease_cycles, submit_jobs, Cycles};
use spotenc_tests::{bin, cpu_worker_info, free_port, wait_for_port, Proc, RedisServer};

const LIMITS: Limits = Limits {
    lease_ttl_ms: 30_000,
    max_expiries: 3,
};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A 2-second source: one chunk.
fn short_probe() -> ProbeInfo {
    let mut p = spotenc_tests::lease_cycles::probe_result();
    p.duration_seconds = 2.0;
    p.video.end_pts = 50;
    p.video.frame_count = 50;
    p.video.keyframes = p.video.keyframes[..2].into();
    p
}

/// Runs `n` jobs to the end through `store`'s transitions, `live` at a time.
async fn preload(store: Arc<dyn StateStore>, n: usize, dir: &Path) -> anyhow::Result<()> {
    let input = dir.join("in.mp4").display().to_string();
    let submitted = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut drivers = Vec::new();
    for d in 0..8 {
        let (store, submitted, done, input) = (
            store.clone(),
            submitted.clone(),
            done.clone(),
            input.clone(),
        );
        let out = dir.to_path_buf();
        drivers.push(tokio::spawn(async move {
            let id = format!("preload{d}");
            store
                .register_worker(WorkerRecord {
                    id: id.clone(),
                    info: cpu_worker_info(&id, "bench", Capacity::OnDemand),
                    registered_unix_ms: now_ms(),
                    strikes: Vec::new(),
                })
                .await?;
            while done.load(Ordering::Relaxed) < n {
                // Keep a few jobs queued per driver.
                let i = submitted.fetch_add(1, Ordering::Relaxed);
                if i < n {
                    let spec = JobSpec::try_from(spotenc_proto::pb::JobSpec {
                        input: input.clone(),
                        output: out.join(format!("done-{i}.mp4")).display().to_string(),
                        video: Some(spotenc_proto::pb::VideoSettings {
                            codec: spotenc_proto::pb::Codec::H264 as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    })?;
                    store.submit(spec, "", now_ms()).await?;
                }
                while let Some(t) = store.lease_next(&id, now_ms()).await? {
                    let object = |frames| OutputObject {
                        path: format!("{}.out", t.task_id),
                        size_bytes: 1,
                        frames,
                        ..Default::default()
                    };
                    let job_id = store.task(&t.task_id).await?.job_id;
                    let (outcome, follow) = match &t.work {
                        Work::Probe(_) => {
                            let (job, _) = store.job(&job_id).await?;
                            let p = short_probe();
                            let follow = graph::expand(&job, &p, &job.work_dir)?;
                            (TaskOutcome::Probe(p), follow)
                        }
                        Work::Encode(e) => (TaskOutcome::Encode(object(e.chunk.frames())), vec![]),
                        Work::Stitch(_) => (TaskOutcome::Stitch(object(50)), vec![]),
                        Work::Audio(_) => (TaskOutcome::Audio(object(0)), vec![]),
                    };
                    let tr = store
                        .complete(&t.task_id, t.attempt, outcome, follow, now_ms())
                        .await?;
                    if tr.state == JobState::Committing {
                        store.finish_commit(&job_id, Ok(()), now_ms()).await?;
                        let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if k % 20_000 == 0 {
                            eprintln!(
                                "  {k} jobs finished ({:.0} s)",
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    if submitted.load(Ordering::Relaxed) < n {
                        break;
                    }
                }
                if submitted.load(Ordering::Relaxed) >= n {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            anyhow::Ok(())
        }));
    }
    for d in drivers {
        d.await??;
    }
    let succeeded = store.list_jobs(&[JobState::Succeeded], n + 1).await?.len();
    anyhow::ensure!(
        succeeded == n,
        "{succeeded} of {n} preloaded jobs succeeded"
    );
    eprintln!(
        "  preloaded {n} finished jobs in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Starts a coordinator on the store and measures lease cycles.
async fn measure(
    dir: &Path,
    redis: Option<&str>,
    workers: usize,
    seconds: u64,
) -> anyhow::Result<Cycles> {
    let port = free_port();
    let mut cmd = std::process::Command::new(bin("spotenc"));
    cmd.args(["coordinator", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.join("state"))
        .env("SPOTENC_INPUT_ROOTS", dir)
        .env("SPOTENC_OUTPUT_ROOTS", dir)
        .env("RUST_LOG", "error");
    if let Some(url) = redis {
        cmd.args(["--redis", url]);
    }
    let started = Instant::now();
    let _coordinator = Proc {
        child: cmd.spawn()?,
        name: "coordinator".into(),
    };
    wait_for_port(port);
    let conn = Connection {
        url: format!("http://127.0.0.1:{port}"),
        ..Default::default()
    };
    // The port opens before the store does; the first answer says it is
    // loaded.
    submit_jobs(&conn, dir, &format!("first{workers}"), 1).await?;
    let opened = started.elapsed().as_secs_f64();
    submit_jobs(
        &conn,
        dir,
        &format!("w{workers}"),
        200 + workers * seconds as usize * 40,
    )
    .await?;
    let run = lease_cycles(&conn, workers, seconds).await;
    println!(
        "    {workers} workers: first answer after {opened:.1} s; {:.0} lease+complete cycles/s; \
         lease p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} leases, {} empty)",
        run.per_second,
        run.ms(0.5),
        run.ms(0.99),
        run.ms(1.0),
        run.latencies_us.len(),
        run.empty
    );
    Ok(run)
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let finished: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let workers: Vec<usize> = args
        .get(2)
        .map_or("1,4", String::as_str)
        .split(',')
        .map(|w| w.parse().expect("worker counts"))
        .collect();
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let stores = args
        .get(4)
        .cloned()
        .unwrap_or_else(|| "embedded,redis".into());
    println!(
        "{workers:?} simulated workers, {seconds} s per run, {} cores",
        std::thread::available_parallelism()?.get()
    );
    for store in stores.split(',') {
        let mut p99 = std::collections::BTreeMap::<(usize, usize), f64>::new();
        for n in [0, finished] {
            println!("  {store} store, {n} finished jobs:");
            let dir = tempfile::tempdir()?;
            std::fs::write(dir.path().join("in.mp4"), b"bench")?;
            let state = dir.path().join("state");
            let _redis = match store {
                "embedded" => {
                    if n > 0 {
                        let shm = tempfile::tempdir_in("/dev/shm")?;
                        {
                            let s = Arc::new(EmbeddedStore::open(shm.path(), LIMITS)?);
                            preload(s, n, dir.path()).await?;
                        }
                        std::fs::create_dir_all(&state)?;
                        for f in ["state.json", "state.log"] {
                            if shm.path().join(f).exists() {
                                std::fs::copy(shm.path().join(f), state.join(f))?;
                            }
                        }
                        println!("    store files {} MB", du(&state) / 1_000_000);
                    }
                    None
                }
                "redis" => {
                    let redis = RedisServer::start();
                    // AOF with `appendfsync always` unless the environment
                    // names another policy (everysec, no) to compare.
                    if let Ok(policy) = std::env::var("SPOTENC_BENCH_APPENDFSYNC") {
                        let out = std::process::Command::new("redis-cli")
                            .args(["-p", &redis.port.to_string()])
                            .args(["config", "set", "appendfsync", &policy])
                            .output()?;
                        anyhow::ensure!(out.status.success(), "config set appendfsync {policy}");
                        println!("    appendfsync {policy}");
                    }
                    if n > 0 {
                        let work = state.join("jobs").display().to_string();
                        let s = RedisStore::connect(&redis.url(), "spotenc", &work, LIMITS).await?;
                        preload(Arc::new(s), n, dir.path()).await?;
                    }
                    Some(redis)
                }
                other => anyhow::bail!("unknown store {other:?}: embedded or redis"),
            };
            let url = _redis.as_ref().map(RedisServer::url);
            for &w in &workers {
                let rewrites = match &_redis {
                    Some(r) => Some(settle_aof(r.port)?),
                    None => None,
                };
                let run = measure(dir.path(), url.as_deref(), w, seconds).await?;
                p99.insert((n, w), run.ms(0.99));
                if let (Some(r), Some(before)) = (&_redis, rewrites) {
                    let info = redis_info(r.port)?;
                    println!(
                        "    AOF rewrites during the run: {}{}",
                        field(&info, "aof_rewrites").saturating_sub(before),
                        if field(&info, "aof_rewrite_in_progress") == 1 {
                            " (one still running)"
                        } else {
                            ""
                        }
                    );
                }
            }
            if let Some(r) = &_redis {
                // Whether persistence work (an AOF rewrite forks and writes
                // the whole dataset) shared the run.
                let info = redis_info(r.port)?;
                let fields: Vec<&str> = info
                    .lines()
                    .filter(|l| {
                        [
                            "used_memory_human:",
                            "aof_rewrites:",
                            "aof_current_size:",
                            "keys=",
                        ]
                        .iter()
                        .any(|f| l.contains(f))
                    })
                    .map(str::trim)
                    .collect();
                println!("    redis: {}", fields.join(" "));
            }
        }
        for &w in &workers {
            println!(
                "  {store}, {w} workers: lease p99 with {finished} finished jobs / empty = {:.2}",
                p99[&(finished, w)] / p99[&(0, w)].max(0.001)
            );
        }
    }
    Ok(())
}

fn redis_info(port: u16) -> anyhow::Result<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A numeric `name:value` field of `INFO` (0 when absent).
fn field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits for an AOF rewrite the preload started to finish, so a run
/// measures leases, not a rewrite of the whole dataset beside them (the
/// run then says whether one started during it); returns the rewrites so
/// far.
fn settle_aof(port: u16) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let info = redis_info(port)?;
        if field(&info, "aof_rewrite_in_progress") == 0
            && field(&info, "aof_rewrite_scheduled") == 0
        {
            let waited = started.elapsed().as_secs_f64();
            if waited > 0.5 {
                println!("    waited {waited:.1} s for an AOF rewrite to finish");
            }
            return Ok(field(&info, "aof_rewrites"));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "an AOF rewrite ran for 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
