//! End-to-end tests: real processes, real FFmpeg, judged by ffmpeg/ffprobe.

#![forbid(unsafe_code)]

mod affinity;
mod capacity;
mod containers;
mod deploy;
mod faults;
mod fidelity;
mod gpu;
mod hardening;
mod hostile;
mod hostile_grpc;
mod interrupt;
mod layers;
mod placement;
mod quality;
mod replicas;
mod s3;
mod security;
mod stall;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use spotenc_proto::pb::{self, job_service_client::JobServiceClient};
use spotenc_tests::media::*;
use spotenc_tests::{bin, Fleet};

fn transcode(input: &Path, output: &Path, extra: &[&str]) -> Output {
    Command::new(bin("spotenc"))
        .arg("transcode")
        .arg(input)
        .arg(output)
        .args(extra)
        .output()
        .expect("run spotenc transcode")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What every correct output satisfies against its source.
fn assert_faithful(src: &Path, out: &Path) {
    assert_eq!(
        frame_count(out),
        frame_count(src),
        "frame count of {}",
        out.display()
    );
    let errors = decode_errors(out);
    assert!(
        errors.is_empty(),
        "decode errors in {}: {errors}",
        out.display()
    );
    let (sv, ov) = (
        stream_duration(src, "v").expect("source video"),
        stream_duration(out, "v").expect("output video"),
    );
    let frame = sv / frame_count(src) as f64;
    assert!(
        (sv - ov).abs() <= frame + 1e-3,
        "video duration {ov:.4} s, source {sv:.4} s (one frame is {frame:.4} s)"
    );
    if has_stream(src, "a") {
        let oa = stream_duration(out, "a").expect("output audio");
        assert!(
            (oa - ov).abs() <= 0.050,
            "audio {oa:.4} s and video {ov:.4} s differ by more than 50 ms"
        );
    } else {
        assert!(!has_stream(out, "a"), "audio appeared from nowhere");
    }
}

fn av_clip(dir: &Path, name: &str, seconds: u32, size: &str, extra: &[&str]) -> std::path::PathBuf {
    let v = format!("testsrc2=size={size}:rate=25:duration={seconds}");
    let a = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a];
    args.extend_from_slice(extra);
    make_clip(dir, name, &args)
}

#[test]
fn chunked_output_is_frame_exact_and_matches_single_chunk_quality() {
    let dir = tempfile::tempdir().unwrap();
    let src = av_clip(
        dir.path(),
        "src.mp4",
        8,
        "640x360",
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-g", "50", "-c:a", "aac",
        ],
    );
    let chunked = dir.path().join("chunked.mp4");
    let out = transcode(
        &src,
        &chunked,
        &[
            "--chunk-seconds",
            "2",
            "--workers",
            "2",
            "--crf",
            "23",
            "--preset",
            "veryfast",
        ],
    );
    assert_ok(&out, "chunked transcode");
    assert_faithful(&src, &chunked);

    let single = dir.path().join("single.mp4");
    let out = transcode(
        &src,
        &single,
        &[
            "--chunk-seconds",
            "1000",
            "--workers",
            "1",
            "--crf",
            "23",
            "--preset",
            "veryfast",
        ],
    );
    assert_ok(&out, "single-chunk transcode");
    assert_faithful(&src, &single);

    let (p_chunked, p_single) = (psnr(&chunked, &src), psnr(&single, &src));
    println!("psnr chunked {p_chunked:.3} dB, single chunk {p_single:.3} dB");
    assert!(p_chunked >= 35.0, "chunked PSNR {p_chunked:.2} dB < 35");
    assert!(
        (p_chunked - p_single).abs() <= 0.15,
        "chunked {p_chunked:.3} dB vs single {p_single:.3} dB"
    );
    // No intermediate files are left beside the output.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn open_gop_b_frame_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = av_clip(
        dir.path(),
        "opengop.mp4",
        6,
        "320x240",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "fast",
            "-bf",
            "3",
            "-g",
            "30",
            "-keyint_min",
            "10",
            "-x264-params",
            "open-gop=1",
            "-c:a",
            "aac",
        ],
    );
    let out = dir.path().join("out.mkv");
    assert_ok(
        &transcode(
            &src,
            &out,
            &["--chunk-seconds", "1", "--preset", "veryfast"],
        ),
        "transcode",
    );
    assert_faithful(&src, &out);
}

/// A truly variable frame rate source (30, then 15, then 24 fps, with a
/// millisecond time base): both containers keep every frame's own time, and
/// the ffmpeg CLI decodes them without a timestamp warning.
#[test]
fn variable_frame_rate_source_keeps_its_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_clip(
        dir.path(),
        "vfr.mkv",
        &[
            "-filter_complex",
            "testsrc2=s=320x240:r=30:d=2[a];testsrc2=s=320x240:r=15:d=2[b];\
             testsrc2=s=320x240:r=24:d=2[c];[a][b][c]concat=n=3:v=1:a=0",
            "-fps_mode",
            "vfr",
            "-enc_time_base",
            "1:1000",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "20",
        ],
    );
    let a = frame_times(&src);
    // The source really changes rate: 1/30 s, 1/15 s and 1/24 s apart.
    let gaps: std::collections::BTreeSet<u64> = a
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0).round() as u64)
        .collect();
    assert!(
        gaps.contains(&33) && gaps.contains(&67) && gaps.contains(&42),
        "{gaps:?}"
    );
    for name in ["out.mp4", "out.mkv"] {
        let out = dir.path().join(name);
        assert_ok(
            &transcode(
                &src,
                &out,
                &["--chunk-seconds", "1", "--preset", "ultrafast"],
            ),
            "transcode",
        );
        assert_faithful(&src, &out);
        let b = frame_times(&out);
        assert_eq!(a.len(), b.len(), "{name}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() < 0.002,
                "{name}: frame {i} at {y:.4} s, source {x:.4} s"
            );
        }
        let warnings = spotenc_tests::media::decode_warnings(&out);
        assert!(warnings.is_empty(), "{name}: {warnings}");
    }
}

#[test]
fn mpeg_ts_with_non_zero_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let src = av_clip(
        dir.path(),
        "start.ts",
        6,
        "320x240",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-output_ts_offset",
            "10",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_ok(
        &transcode(
            &src,
            &out,
            &["--chunk-seconds", "2", "--preset", "ultrafast"],
        ),
        "transcode",
    );
    assert_faithful(&src, &out);
    assert!(frame_times(&out).first() == Some(&0.0));
}

#[test]
fn ten_bit_hevc_source_to_scaled_hevc() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_clip(
        dir.path(),
        "10bit.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25:duration=4",
            "-pix_fmt",
            "yuv420p10le",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=25",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_ok(
        &transcode(
            &src,
            &out,
            &[
                "--codec",
                "hevc",
                "--scale",
                "320x320",
                "--chunk-seconds",
                "1",
                "--preset",
                "ultrafast",
            ],
        ),
        "transcode",
    );
    assert_faithful(&src, &out);
    assert_eq!(
        video_stream(&out, "codec_name,width,height,pix_fmt"),
        "hevc,320,180,yuv420p10le"
    );
}

/// A bounding box larger than the source does not enlarge it (before:
/// `--scale 8192x8192` on 320x240 encoded 8192x6144); `--allow-upscale`
/// does, for a rendition too.
#[test]
fn outputs_are_not_upscaled_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let src = video_clip(dir.path(), 2, "320x240");
    let out = dir.path().join("same.mp4");
    let big = dir.path().join("big.mkv");
    let rendition = format!("{},scale=640x640", big.display());
    assert_ok(
        &transcode(
            &src,
            &out,
            &[
                "--scale",
                "8192x8192",
                "--preset",
                "ultrafast",
                "--rendition",
                &rendition,
            ],
        ),
        "transcode",
    );
    assert_eq!(video_size(&out), (320, 240));
    assert_eq!(video_size(&big), (320, 240));
    assert_faithful(&src, &out);
    let up = dir.path().join("up.mp4");
    assert_ok(
        &transcode(
            &src,
            &up,
            &[
                "--scale",
                "640x640",
                "--allow-upscale",
                "--preset",
                "ultrafast",
            ],
        ),
        "transcode --allow-upscale",
    );
    assert_eq!(video_size(&up), (640, 480));
    assert_eq!(frame_count(&up), frame_count(&src));
}

#[test]
fn source_without_audio_gives_output_without_audio() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_clip(
        dir.path(),
        "silent.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ],
    );
    let out = dir.path().join("out.mp4");
    assert_ok(
        &transcode(
            &src,
            &out,
            &[
                "--chunk-seconds",
                "1",
                "--preset",
                "ultrafast",
                "--bitrate",
                "500k",
            ],
        ),
        "transcode",
    );
    assert_faithful(&src, &out);
}

#[test]
fn transcode_of_a_missing_file_fails_with_a_reason_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.mp4");
    let out = transcode(&dir.path().join("nope.mp4"), &out_path, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such file"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "files left behind"
    );
}

async fn job(url: &str, id: &str) -> pb::Job {
    let mut c = JobServiceClient::connect(url.to_string()).await.unwrap();
    c.get_job(pb::GetJobRequest { job_id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

fn submit(fleet: &Fleet, input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["submit", input.to_str().unwrap(), output.to_str().unwrap()];
    args.extend_from_slice(extra);
    fleet.spotenc(&args)
}

/// Submits through the fleet's first coordinator; returns the job id.
fn submit_id(fleet: &Fleet, input: &Path, output: &Path, extra: &[&str]) -> String {
    let sub = submit(fleet, input, output, extra);
    assert_ok(&sub, "submit");
    String::from_utf8_lossy(&sub.stdout).trim().to_string()
}

/// A clip with H.264 (a keyframe every second) and AAC audio.
fn keyed_clip(dir: &Path, seconds: u32, size: &str) -> std::path::PathBuf {
    av_clip(
        dir,
        "src.mp4",
        seconds,
        size,
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
        ],
    )
}

/// Width and height of the first video stream, by ffprobe.
fn video_size(path: &Path) -> (u32, u32) {
    let text = video_stream(path, "width,height");
    let (w, h) = text.split_once(',').expect("width,height");
    (w.parse().unwrap(), h.parse().unwrap())
}

/// Three renditions of one source: one chunk task per chunk encodes all
/// three from one decode, each has its own stitch, and every output is
/// committed, frame-exact, at its own size and codec, with the audio.
#[tokio::test(flavor = "multi_thread")]
async fn renditions_come_from_one_decode_per_chunk_and_are_all_committed() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 6, "1280x720");
    let out = dir.path().join("out.mp4");
    let r480 = dir.path().join("out-480.mp4");
    let r360 = dir.path().join("out-360.mkv");
    let fleet = Fleet::builder().cpu_workers(2).start();
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &[
            "--chunk-seconds",
            "2",
            "--preset",
            "veryfast",
            "--rendition",
            &format!("{},scale=854x480,crf=28", r480.display()),
            "--rendition",
            &format!("{},scale=640x360,codec=hevc", r360.display()),
        ],
    );
    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    let kinds = |k: pb::TaskKind| done.tasks.iter().filter(|t| t.kind == k as i32).count();
    assert_eq!(
        kinds(pb::TaskKind::Encode),
        3,
        "one task per chunk, not per rendition"
    );
    assert_eq!(kinds(pb::TaskKind::Stitch), 3, "one stitch per rendition");
    for (path, size) in [
        (&out, (1280, 720)),
        (&r480, (852, 480)),
        (&r360, (640, 360)),
    ] {
        assert_faithful(&src, path);
        assert_eq!(video_size(path), size, "{}", path.display());
        assert!(has_stream(path, "a"), "no audio in {}", path.display());
    }
    assert_eq!(video_stream(&r360, "codec_name"), "hevc");
    // A smaller rendition is a smaller file.
    let len = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(len(&r480) < len(&out), "{} !< {}", len(&r480), len(&out));

    // A rendition that reuses an output is refused at submission.
    let bad = submit(
        &fleet,
        &src,
        &out,
        &["--rendition", &format!("{},scale=640x360", out.display())],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is used twice"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

/// Waits until an encode task of the job is leased; returns its id.
async fn leased_encode(url: &str, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = job(url, id).await;
        if let Some(t) = j.tasks.iter().find(|t| {
            t.kind == pb::TaskKind::Encode as i32 && t.state == pb::TaskState::Leased as i32
        }) {
            return t.task_id.clone();
        }
        assert!(Instant::now() < deadline, "no chunk started: {j:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that nothing is at `out` unless the job is committing or done:
/// the commit is a rename, so whatever appears there is already whole.
async fn check_final_path(url: &str, id: &str, out: &Path) -> pb::Job {
    let seen = out.exists();
    let j = job(url, id).await;
    if seen {
        assert!(
            j.state == pb::JobState::Committing as i32 || j.state == pb::JobState::Succeeded as i32,
            "output appeared before the commit: {j:?}"
        );
    }
    j
}

/// Waits until the job ends, watching the final path when given.
async fn ended(url: &str, id: &str, limit: Duration, watch: Option<&Path>) -> pb::Job {
    let deadline = Instant::now() + limit;
    loop {
        let j = match watch {
            Some(out) => check_final_path(url, id, out).await,
            None => job(url, id).await,
        };
        if j.state >= pb::JobState::Succeeded as i32 {
            return j;
        }
        assert!(Instant::now() < deadline, "job stuck: {j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_killed_mid_chunk_loses_its_lease_and_the_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 8, "1280x720");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(1).lease_ttl_ms(2_000).start();
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &["--chunk-seconds", "2", "--preset", "slow"],
    );

    // Wait until w0 is encoding a chunk, then kill it without warning.
    let victim = leased_encode(&fleet.url, &id).await;
    fleet.worker("w0").kill();
    let killed_at = Instant::now();
    fleet.add_worker("w1");

    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    println!(
        "job finished {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    let task = done.tasks.iter().find(|t| t.task_id == victim).unwrap();
    let outcomes: Vec<&str> = task.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["expired", "done"], "{task:?}");
    assert!(task.history[0].worker_id.starts_with("w0-"));
    assert!(task.history[1].worker_id.starts_with("w1-"));
    assert_faithful(&src, &out);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_fail_their_job_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::builder().cpu_workers(1).start();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(100)).unwrap();
    let good = av_clip(
        dir.path(),
        "good.mp4",
        3,
        "320x240",
        &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"],
    );
    // moov at the end, cut in half: no index at all.
    let truncated = dir.path().join("truncated.mp4");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    // Audio two hours after the video: absurd, refused at planning (before:
    // planned and encoded).
    let late = make_clip(
        dir.path(),
        "late-audio.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=2",
            "-itsoffset",
            "7200",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
        ],
    );

    // Frame times quantised onto a 1/30 s grid: some frames share one. Before:
    // three attempts failed with "write chunk packet: Invalid argument".
    let same_time = make_clip(
        dir.path(),
        "same-time.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=6",
            "-vf",
            "setpts='(N/30+0.012*mod(N,3))/TB'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "20",
        ],
    );

    let outputs = dir.path().join("out");
    std::fs::create_dir(&outputs).unwrap();
    // A missing input is refused at submission, with the reason.
    let missing = dir.path().join("missing.mp4");
    let r = submit(&fleet, &missing, &outputs.join("m.mp4"), &["--wait"]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("no such file"), "{err}");
    let cases = [
        (text, "not a recognised media file"),
        (truncated, "bad input"),
        (late, "the audio starts 7200 s after the video"),
        (same_time, "frames are not in time order"),
    ];
    for (i, (input, reason)) in cases.iter().enumerate() {
        let out = outputs.join(format!("out{i}.mp4"));
        let r = submit(&fleet, input, &out, &["--wait", "--preset", "ultrafast"]);
        assert!(!r.status.success(), "{} should fail", input.display());
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(err.contains(reason), "{}: {err}", input.display());
        assert!(err.contains("failed"), "{err}");
    }
    let hostile = fleet.spotenc(&[
        "submit",
        "http://169.254.169.254/latest/meta-data",
        outputs.join("x.mp4").to_str().unwrap(),
    ]);
    assert!(!hostile.status.success());
    assert!(String::from_utf8_lossy(&hostile.stderr).contains("unsupported scheme"));

    assert_eq!(
        std::fs::read_dir(&outputs).unwrap().count(),
        0,
        "partial outputs left"
    );
    assert!(fleet.coordinators[0].is_running(), "coordinator crashed");
    assert!(fleet.worker("w0").is_running(), "worker crashed");
    // The same fleet still does good work.
    let ok = outputs.join("good.mp4");
    assert_ok(
        &submit(&fleet, &good, &ok, &["--wait", "--preset", "ultrafast"]),
        "good job",
    );
    assert_faithful(&good, &ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn chunk_lost_on_spot_escalates_and_completes_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let src = keyed_clip(dir.path(), 6, "1280x720");
    let out = dir.path().join("out.mp4");
    let mut fleet = Fleet::builder().cpu_workers(0).lease_ttl_ms(2_000).start();
    let url = fleet.url.clone();
    fleet.add_worker_with("spot0", &url, "spot");
    let id = submit_id(
        &fleet,
        &src,
        &out,
        &[
            "--chunk-seconds",
            "2",
            "--preset",
            "slow",
            "--escalate-after-attempts",
            "1",
        ],
    );

    // The spot instance is reclaimed mid-chunk; another spot worker and an
    // on-demand worker join.
    let victim = leased_encode(&fleet.url, &id).await;
    fleet.worker("spot0").kill();
    fleet.add_worker_with("spot1", &url, "spot");
    fleet.add_worker_with("od0", &url, "on-demand");

    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    let task = done.tasks.iter().find(|t| t.task_id == victim).unwrap();
    assert_eq!(task.partition, pb::Capacity::OnDemand as i32, "{task:?}");
    let last = task.history.last().unwrap();
    assert_eq!(last.outcome, "done");
    assert!(last.worker_id.starts_with("od0-"), "{task:?}");
    assert_eq!(task.history[0].outcome, "expired");
    assert!(task.history[0].worker_id.starts_with("spot0-"));
    assert_faithful(&src, &out);
}
