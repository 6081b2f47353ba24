//! Benchmark (not a test): the compose fleet in containers against the same
//! processes run directly on the host, in one run. Both fleets are two
//! coordinator replicas on Redis, two cpu-workers and Garage for S3; the
//! containers run the images tagged `TAG` (bench/containers.sh builds them
//! from the same release binaries the host fleet runs). Each round runs the
//! same S3 job on each fleet, host first; the wall time is from `submit` to
//! success, as `submit --wait` sees it.
//!
//!     cargo run --release -p spotenc-tests --example container_bench -- \
//!         CLIP TAG [rounds] [chunk-seconds] [preset]

#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Instant;

use spotenc_tests::docker::{Compose, FLEET_SERVICES};
use spotenc_tests::garage::Garage;
use spotenc_tests::{Fleet, RedisServer};

const USAGE: &str = "usage: container_bench CLIP TAG [rounds] [chunk-seconds] [preset]";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clip = Path::new(args.get(1).expect(USAGE));
    let tag = args.get(2).expect(USAGE);
    let rounds: usize = args.get(3).map_or(2, |r| r.parse().expect(USAGE));
    let chunk = args.get(4).map_or("4", String::as_str);
    let preset = args.get(5).map_or("medium", String::as_str);
    let job = ["--wait", "--chunk-seconds", chunk, "--preset", preset];

    let garage = Garage::start();
    garage.upload(clip, "in/clip.mp4");
    let redis = RedisServer::start();
    let host = Fleet::builder()
        .redis(redis.url())
        .coordinators(2)
        .cpu_workers(2)
        .s3(&garage)
        .start();
    let containers = Compose::with_tag(tag);
    // The test fleet's services but Prometheus, which the host fleet lacks.
    let mut up = vec!["up", "-d", "--no-build"];
    up.extend(FLEET_SERVICES.iter().filter(|s| **s != "prometheus"));
    containers.ok(&up);
    containers.wait_healthy(std::time::Duration::from_secs(120));
    containers.upload(clip, "media/in/clip.mp4");
    println!(
        "clip {} ({:.1} MB), chunks of {chunk} s, preset {preset}, {} cores, {rounds} rounds",
        clip.display(),
        std::fs::metadata(clip).expect("clip").len() as f64 / 1e6,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let submit = |input: &'static str, output: &'static str| -> Vec<&str> {
        [&["submit", input, output][..], &job].concat()
    };
    let (mut host_sum, mut container_sum) = (0.0, 0.0);
    for round in 1..=rounds {
        let h = timed("host", || {
            host.spotenc(&submit(
                "s3://spotenc/in/clip.mp4",
                "s3://spotenc/out/clip.mp4",
            ))
        });
        let c = timed("containers", || {
            let args = submit("s3://media/in/clip.mp4", "s3://media/out/clip.mp4");
            containers.spotenc(0, &containers.client_token, &args)
        });
        println!("round {round}: host {h:7.2} s, containers {c:7.2} s");
        host_sum += h;
        container_sum += c;
    }
    println!(
        "mean host {:.2} s, containers {:.2} s: containers/host {:.3}",
        host_sum / rounds as f64,
        container_sum / rounds as f64,
        container_sum / host_sum
    );
}

/// Seconds `run` took; panics unless its `spotenc submit --wait` succeeded.
fn timed(what: &str, run: impl FnOnce() -> std::process::Output) -> f64 {
    let t = Instant::now();
    let out = run();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}
