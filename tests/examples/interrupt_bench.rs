//! Benchmark (not a test): what a spot notice costs, with the default 2 s
//! notice poll and the production lease TTL (15 s). For each cloud (a local
//! server speaking its metadata protocol) and for SIGTERM, a spot worker is
//! interrupted mid-chunk while a second worker waits idle; measured: notice
//! to requeue, notice to the other worker's lease, notice to exit. The
//! baseline, in the same run, is the same worker killed with SIGKILL (no
//! notice handling): the chunk comes back only when its lease expires. Each
//! notice lands at a random phase of the worker's poll.
//!
//!     cargo run --release -p spotenc-tests --example interrupt_bench -- [rounds]

#![forbid(unsafe_code)]

use std::time::{Duration, Instant, SystemTime};

use spotenc_proto::pb::{self, job_service_client::JobServiceClient};
use spotenc_tests::media::video_clip;
use spotenc_tests::metadata::{Cloud, FakeMetadata, VM_NAME};
use spotenc_tests::Fleet;

const LEASE_TTL_MS: u32 = 15_000;

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn get(url: &str, id: &str) -> pb::Job {
    let mut c = JobServiceClient::connect(url.to_string()).await.unwrap();
    c.get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

/// Polls until `f` finds something in the job.
async fn until<T>(url: &str, id: &str, limit: Duration, f: impl Fn(&pb::Job) -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let j = get(url, id).await;
        if let Some(v) = f(&j) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {j:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Round {
    requeue_ms: Option<i64>,
    relet_ms: i64,
    exit_ms: Option<u128>,
}

async fn round(case: &str, clip: &std::path::Path, dir: &std::path::Path) -> Round {
    let meta = match case {
        "aws" => Some(FakeMetadata::start(Cloud::Aws).await),
        "gcp" => Some(FakeMetadata::start(Cloud::Gcp).await),
        "azure" => Some(FakeMetadata::start(Cloud::Azure).await),
        _ => None,
    };
    let mut fleet = Fleet::builder()
        .cpu_workers(0)
        .lease_ttl_ms(LEASE_TTL_MS)
        .start();
    let url = fleet.url.clone();
    let mut flags: Vec<String> = vec!["--notice-deadline-seconds".into(), "10".into()];
    if let Some(m) = &meta {
        for (k, v) in [
            ("--cloud", "auto"),
            ("--aws-metadata-url", &m.url),
            ("--gcp-metadata-url", &m.url),
            ("--azure-metadata-url", &m.url),
        ] {
            flags.extend([k.to_string(), v.to_string()]);
        }
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    fleet.add_worker_args("a", &url, "spot", &flags);
    let out = dir.join(format!("{case}.mp4"));
    let sub = fleet.spotenc(&[
        "submit",
        clip.to_str().unwrap(),
        out.to_str().unwrap(),
        "--chunk-seconds",
        "30",
        "--preset",
        "slower",
    ]);
    assert!(
        sub.status.success(),
        "{}",
        String::from_utf8_lossy(&sub.stderr)
    );
    let id = String::from_utf8_lossy(&sub.stdout).trim().to_string();
    let victim = until(&url, &id, Duration::from_secs(60), |j| {
        j.tasks
            .iter()
            .find(|t| t.kind == pb::TaskKind::Encode as i32 && t.frames_done > 0)
            .map(|t| t.task_id.clone())
    })
    .await;
    fleet.add_worker("b");
    // Let the cloud watcher settle and worker b register, then wait a
    // random part of a poll interval, so the notice lands at a random
    // phase of the worker's 2 s poll.
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 2_000_000_000;
    tokio::time::sleep(Duration::from_millis(1500) + Duration::from_nanos(jitter as u64)).await;
    let t0 = unix_ms();
    let noticed = Instant::now();
    match (case, &meta) {
        ("aws", Some(m)) => m.aws_instance_action("terminate", 120),
        ("gcp", Some(m)) => m.gcp_preempt(),
        ("azure", Some(m)) => m.azure_event("evt-1", "Preempt", &[VM_NAME], 30),
        ("sigterm", _) => fleet.proc("a").signal("-TERM"),
        ("sigkill", _) => fleet.proc("a").signal("-KILL"),
        _ => unreachable!(),
    }
    let exit_ms = if case == "sigkill" {
        None
    } else {
        let status = fleet.worker("a").wait_exit(Duration::from_secs(15));
        assert!(status.is_some_and(|s| s.success()), "{case}: {status:?}");
        Some(noticed.elapsed().as_millis())
    };
    let (ended, started) = until(&url, &id, Duration::from_secs(60), |j| {
        let t = j.tasks.iter().find(|t| t.task_id == victim)?;
        let second = t.history.get(1)?;
        Some((t.history[0].ended_unix_ms, second.started_unix_ms))
    })
    .await;
    Round {
        requeue_ms: (case != "sigkill").then_some(ended - t0),
        relet_ms: started - t0,
        exit_ms,
    }
}

fn median(mut v: Vec<i64>) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(3, |r| r.parse().expect("rounds"));
    let dir = tempfile::tempdir().unwrap();
    let clip = video_clip(dir.path(), 20, "1280x720");
    println!(
        "notice poll 2000 ms (default), lease TTL {LEASE_TTL_MS} ms, {rounds} rounds per case; ms after the notice"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>10}",
        "case", "requeued", "re-leased", "exited"
    );
    let mut relets = Vec::new();
    for case in ["aws", "gcp", "azure", "sigterm", "sigkill"] {
        let mut rs = Vec::new();
        for _ in 0..rounds {
            rs.push(round(case, &clip, dir.path()).await);
        }
        let show = |v: Vec<Option<i64>>| match v.iter().copied().collect::<Option<Vec<i64>>>() {
            Some(v) => format!("{}..{}", v.iter().min().unwrap(), v.iter().max().unwrap()),
            None => "-".into(),
        };
        let relet: Vec<i64> = rs.iter().map(|r| r.relet_ms).collect();
        println!(
            "{case:<8} {:>12} {:>12} {:>10}",
            show(rs.iter().map(|r| r.requeue_ms).collect()),
            format!(
                "{}..{}",
                relet.iter().min().unwrap(),
                relet.iter().max().unwrap()
            ),
            show(rs.iter().map(|r| r.exit_ms.map(|e| e as i64)).collect()),
        );
        relets.push((case, median(relet)));
    }
    let baseline = relets.last().unwrap().1 as f64;
    for (case, m) in &relets[..relets.len() - 1] {
        println!(
            "{case}: median notice -> re-lease {m} ms; ratio to SIGKILL + lease expiry ({baseline} ms): {:.3}",
            *m as f64 / baseline
        );
    }
}
