//! Benchmark (not a test): how a worker should read a job's source behind a
//! presigned URL, measured in one run on the same clip: download the whole
//! object first, or let FFmpeg read it with HTTP range requests. Garage on
//! loopback, one worker, the same job each time.
//!
//!     cargo run --release -p spotenc-tests --example s3_input_bench -- CLIP [chunk-seconds] [preset]

#![forbid(unsafe_code)]

use std::time::Instant;

use spotenc_tests::garage::Garage;
use spotenc_tests::Fleet;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clip = args
        .get(1)
        .expect("usage: s3_input_bench CLIP [chunk-seconds] [preset]");
    let chunk = args.get(2).map_or("5", String::as_str);
    let preset = args.get(3).map_or("ultrafast", String::as_str);
    let garage = Garage::start();
    garage.upload(std::path::Path::new(clip), "in/clip.mp4");
    let size = std::fs::metadata(clip).expect("clip").len();
    println!(
        "clip {clip} ({:.1} MB), chunks of {chunk} s, preset {preset}",
        size as f64 / 1e6
    );
    let mut times = Vec::new();
    for mode in ["download", "stream"] {
        let fleet = Fleet::builder()
            .cpu_workers(1)
            .worker_arg(&format!("--input-mode={mode}"))
            .s3(&garage)
            .start();
        let t = Instant::now();
        let out = fleet.spotenc(&[
            "submit",
            "s3://spotenc/in/clip.mp4",
            &format!("s3://spotenc/out/{mode}.mp4"),
            "--wait",
            "--chunk-seconds",
            chunk,
            "--preset",
            preset,
        ]);
        let secs = t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{mode:<9} {secs:7.2} s");
        times.push(secs);
    }
    println!(
        "stream/download time ratio {:.3} (below 1: streaming is faster)",
        times[1] / times[0]
    );
}
