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

#![forbid(unsafe_code)]

use std::time::Duration;

use spotenc_proto::client::Connection;
use spotenc_tests::lease_cycles::{lease_cycles, submit_jobs};
use spotenc_tests::{bin, free_port, Proc, RedisServer};

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
    let job_count = 500 + workers * seconds as usize * 12;
    submit_jobs(&conn, dir.path(), "bench", job_count).await?;
    let run = lease_cycles(&conn, workers, seconds).await;

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
    println!(
        "placement {placement}, workers {workers}, {seconds} s, {} cores",
        std::thread::available_parallelism()?.get()
    );
    println!("lease+complete cycles/s: {:.0}", run.per_second);
    println!(
        "lease latency p50 {:.2} ms, p99 {:.2} ms ({} leases, {} empty polls, {job_count} jobs queued)",
        run.ms(0.50),
        run.ms(0.99),
        run.latencies_us.len(),
        run.empty
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
