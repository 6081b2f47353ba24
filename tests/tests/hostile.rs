//! The hostile-input table: end to end, against one fleet (a coordinator
//! and a worker, separate processes), every case through `spotenc submit
//! --wait`, `spotenc transcode` or raw gRPC. Each case asserts that
//! - the call failed, with an error that names the problem;
//! - nothing is at the case's output path, and the output directory holds
//!   no temporaries;
//! - the coordinator and the worker are still running.
//!
//! After the table the same fleet runs a good job, checked for frames and
//! PSNR: it still serves. The raw-gRPC half is in `hostile_grpc.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use spotenc_tests::media::{make_clip, video_clip};
use spotenc_tests::{bin, Fleet};

use super::{assert_faithful, assert_ok};

/// How a case reaches spotenc.
enum Via {
    /// `spotenc submit INPUT OUTPUT --wait ARGS...` to the fleet.
    Submit,
    /// `spotenc transcode INPUT OUTPUT ARGS...` (its own coordinator).
    Transcode,
}

struct Case {
    name: &'static str,
    via: Via,
    input: String,
    /// File name under the output directory, or a full path/URL.
    output: String,
    args: Vec<String>,
    /// Every one of these must be in the error (lower-cased compare).
    expect: Vec<&'static str>,
}

/// A case through `spotenc submit`; `input` is a path, or a string the
/// CLI sees as is (a URL, a protocol name).
fn case(
    name: &'static str,
    input: impl AsRef<Path>,
    output: &str,
    args: &[&str],
    expect: &[&'static str],
) -> Case {
    Case {
        name,
        via: Via::Submit,
        input: input.as_ref().display().to_string(),
        output: output.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        expect: expect.to_vec(),
    }
}

fn transcode(
    name: &'static str,
    input: &Path,
    output: &str,
    args: &[&str],
    expect: &[&'static str],
) -> Case {
    Case {
        via: Via::Transcode,
        ..case(name, input, output, args, expect)
    }
}

/// Everything under `dir`, recursively (temporaries included).
pub(crate) fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(entries(&p));
        }
        out.push(p);
    }
    out
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_inputs_fail_clearly_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let inputs = root.join("in");
    let outputs = root.join("out");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&outputs).unwrap();
    let good = video_clip(&inputs, 2, "320x240");
    let mut fleet = Fleet::builder().cpu_workers(1).start();

    // Inputs that are not media, or that point elsewhere.
    let text = write(&inputs.join("notes.mp4"), &"not a video\n".repeat(100));
    let empty = write(&inputs.join("empty.mp4"), "");
    let bytes = std::fs::read(&good).unwrap();
    let truncated = inputs.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let noise = inputs.join("noise.mkv");
    std::fs::write(
        &noise,
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let hls_local = write(
        &inputs.join("local.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
    );
    let hls_meta = write(
        &inputs.join("meta.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://169.254.169.254/latest/meta-data/iam\n#EXT-X-ENDLIST\n",
    );
    let concat_local = write(
        &inputs.join("list.ffconcat"),
        &format!(
            "ffconcat version 1.0\nfile '{}'\nfile '/etc/passwd'\n",
            good.display()
        ),
    );
    let concat_meta = write(
        &inputs.join("meta.ffconcat"),
        "ffconcat version 1.0\nfile 'http://169.254.169.254/latest/meta-data'\n",
    );
    let sdp = write(
        &inputs.join("stream.sdp"),
        "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\na=rtpmap:96 H264/90000\n",
    );
    let fifo = inputs.join("fifo.mp4");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let subdir = inputs.join("a-directory.mp4");
    std::fs::create_dir(&subdir).unwrap();
    let link_out = inputs.join("passwd.mp4");
    std::os::unix::fs::symlink("/etc/passwd", &link_out).unwrap();
    let escape_dir = outputs.join("escape");
    std::os::unix::fs::symlink("/etc", &escape_dir).unwrap();
    let existing_dir = outputs.join("taken.mp4");
    std::fs::create_dir(&existing_dir).unwrap();
    // Audio ten hours after the video.
    let late = make_clip(
        &inputs,
        "late-audio.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=1",
            "-itsoffset",
            "36000",
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
    // A frame wider than the 8192 cap.
    let wide = make_clip(
        &inputs,
        "wide.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=size=8200x16:rate=1:duration=1",
            "-c:v",
            "ffv1",
        ],
    );
    // 24,000 keyframes of 16x16 (12,000 s at 2 fps, every frame a
    // keyframe): in 0.5 s chunks, more than a job may have.
    let keyframes = make_clip(
        &inputs,
        "keyframes.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=size=16x16:rate=2:duration=12000",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "1",
        ],
    );

    let long = format!("{}.mp4", "a".repeat(5000));
    let many_renditions: Vec<String> = (0..40)
        .flat_map(|i| {
            [
                "--rendition".to_string(),
                format!("{}/r{i}.mp4,scale=160x120", outputs.display()),
            ]
        })
        .collect();
    let many: Vec<&str> = many_renditions.iter().map(String::as_str).collect();
    let g = &good;
    let out_abs = |name: &str| outputs.join(name).display().to_string();
    let data_out = fleet.data_dir.path().join("state").join("x.mp4");
    std::fs::create_dir_all(data_out.parent().unwrap()).unwrap();

    #[rustfmt::skip]
    let mut cases = vec![
        // Paths.
        case("traversal in the input", format!("{}/../../../../etc/passwd", inputs.display()), "t1.mp4", &[], &["outside the input_roots"]),
        case("input outside the roots", "/etc/hostname", "t2.mp4", &[], &["outside the input_roots"]),
        case("a /proc input", "/proc/self/environ", "t3.mp4", &[], &["under /proc", "not media"]),
        case("a device input", "/dev/zero", "t4.mp4", &[], &["under /dev", "not media"]),
        case("a FIFO input", &fifo, "t5.mp4", &[], &["not a regular file"]),
        case("a directory input", &subdir, "t6.mp4", &[], &["not a regular file"]),
        case("a symlink out of the roots", &link_out, "t7.mp4", &[], &["outside the input_roots"]),
        case("percent-encoded traversal", format!("file://{}/%2e%2e/%2e%2e/%2e%2e/etc/passwd", inputs.display()), "t8.mp4", &[], &["no such file"]),
        case("a single-slash file URL", "file:/etc/passwd", "t9.mp4", &[], &["passwd"]),
        case("an output outside the roots", g, "/etc/spotenc-hostile.mp4", &[], &["outside the output_roots"]),
        case("traversal in the output", g, &format!("{}/../../../../etc/x.mp4", outputs.display()), &[], &["outside the output_roots"]),
        case("an output through a symlinked directory", g, &format!("{}/x.mp4", escape_dir.display()), &[], &["outside the output_roots"]),
        case("the output is the input", g, &g.display().to_string(), &[], &["is the job's input"]),
        case("an output in the data directory", g, &data_out.display().to_string(), &[], &["data directory"]),
        case("one output twice, ./", g, "a.mp4", &["--rendition", &format!("{}/./a.mp4,scale=160x120", outputs.display()),], &["used twice"]),
        case("one output twice, //", g, "b.mp4", &["--rendition", &format!("{}//b.mp4,scale=160x120", outputs.display()),], &["used twice"]),
        case("one output twice, file://", g, "c.mp4", &["--rendition", &format!("file://{}/c.mp4,scale=160x120", outputs.display()),], &["used twice"]),
        case("an output that is a directory", g, &existing_dir.display().to_string(), &[], &["taken.mp4"]),
        case("an output whose directory is missing", g, &out_abs("no/such/dir/x.mp4"), &[], &["no/such/dir"]),
        case("a control character in the output", g, "ctl\u{1}.mp4", &[], &["control character"]),
        case("a path over the length cap", g, &long, &[], &["output is 5024 bytes long (at most 4096)"]),
        case("an s3 output with no S3 configured", g, "s3://bucket/x.mp4", &[], &["s3"]),
        // FFmpeg tricks.
        case("HLS pointing at a local file", &hls_local, "f1.mp4", &[], &["an HLS playlist", "failed"]),
        case("HLS pointing at the metadata IP", &hls_meta, "f2.mp4", &[], &["an HLS playlist", "failed"]),
        case("ffconcat pointing at local files", &concat_local, "f3.mp4", &[], &["an ffconcat list", "failed"]),
        case("ffconcat pointing at the metadata IP", &concat_meta, "f4.mp4", &[], &["an ffconcat list", "failed"]),
        case("an SDP file opening a socket", &sdp, "f5.mp4", &[], &["an SDP session description", "failed"]),
        // The CLI takes these as relative file names (the gRPC test sends
        // them raw): none is opened as an FFmpeg protocol.
        case("the concat: protocol", format!("concat:{}|/etc/passwd", g.display()), "f6.mp4", &[], &["concat:", "no such file"]),
        case("the subfile protocol", "subfile,,start,0,end,100,,:/etc/passwd", "f7.mp4", &[], &["subfile,", "no such file"]),
        case("a data: URI", "data:video/mp4;base64,AAAAIGZ0eXBpc29t", "f8.mp4", &[], &["data:", "no such file"]),
        case("pipe:", "pipe:0", "f9.mp4", &[], &["pipe:0", "no such file"]),
        case("the metadata IP over HTTP", "http://169.254.169.254/latest/meta-data", "f10.mp4", &[], &["unsupported scheme \"http\""]),
        case("gopher://", "gopher://127.0.0.1:70/x", "f11.mp4", &[], &["unsupported scheme \"gopher\""]),
        case("ftp://", "ftp://127.0.0.1/x.mp4", "f12.mp4", &[], &["unsupported scheme \"ftp\""]),
        case("text named .mp4", &text, "f13.mp4", &[], &["notes.mp4: not a recognised media file", "failed"]),
        case("an empty file", &empty, "f14.mp4", &[], &["empty.mp4: not a recognised media file", "failed"]),
        case("a truncated MP4", &truncated, "f15.mp4", &[], &["truncated.mp4: not a recognised media file, or truncated", "failed",]),
        case("random bytes", &noise, "f16.mp4", &[], &["noise.mkv: not a recognised media file", "failed"]),
        // Absurd values.
        case("NaN chunk length", g, "v1.mp4", &["--chunk-seconds", "NaN"], &["invalid chunk seconds NaN"]),
        case("infinite chunk length", g, "v2.mp4", &["--chunk-seconds", "inf"], &["invalid chunk seconds inf"]),
        case("negative chunk length", g, "v3.mp4", &["--chunk-seconds=-5"], &["invalid chunk seconds -5"]),
        case("zero chunk length", g, "v4.mp4", &["--chunk-seconds", "0"], &["invalid chunk seconds 0"]),
        case("a tiny chunk length", g, "v5.mp4", &["--chunk-seconds", "0.001"], &["invalid chunk seconds 0.001"]),
        case("min chunk above chunk", g, "v6.mp4", &["--chunk-seconds", "2", "--min-chunk-seconds", "1e9"], &["invalid min chunk seconds"]),
        case("a 16384x16384 upscale, allowed", g, "v7.mp4", &["--scale", "16384x16384", "--allow-upscale"], &["invalid scale 16384x16384", "8192"]),
        case("a zero scale", g, "v8.mp4", &["--scale", "0x0"], &["invalid scale 0x0"]),
        case("a scale that is not WxH", g, "v9.mp4", &["--scale", "huge"], &["invalid scale \"huge\""]),
        case("crf 99", g, "v10.mp4", &["--crf", "99"], &["invalid crf 99"]),
        case("bitrate 0", g, "v11.mp4", &["--bitrate", "0"], &["invalid bitrate 0"]),
        case("bitrate 999G", g, "v12.mp4", &["--bitrate", "999G"], &["invalid rate \"999G\""]),
        case("bitrate above the cap", g, "v13.mp4", &["--bitrate", "5000M"], &["invalid bitrate 5000000000"]),
        case("maxrate 900G", g, "v14.mp4", &["--bitrate", "2M", "--maxrate", "900G"], &["invalid rate \"900G\""]),
        case("keyint 0", g, "v15.mp4", &["--keyint", "0"], &["invalid keyint 0"]),
        case("an unknown preset", g, "v16.mp4", &["--preset", "ludicrous"], &["ludicrous"]),
        case("an unknown codec", g, "v17.mp4", &["--codec", "vp9"], &["invalid codec \"vp9\""]),
        case("an unknown profile", g, "v18.mp4", &["--profile", "high444-nonsense"], &["invalid profile \"high444-nonsense\""]),
        case("an unknown container", g, "v19.avi", &["--container", "avi"], &["invalid container \"avi\""]),
        case("an unknown priority", g, "v20.mp4", &["--priority", "urgent"], &["invalid priority \"urgent\""]),
        case("zero attempts", g, "v21.mp4", &["--max-attempts", "0"], &["invalid max attempts 0"]),
        case("a million attempts", g, "v22.mp4", &["--max-attempts", "1000000"], &["invalid max attempts 1000000"]),
        case("audio ten hours after the video", &late, "v23.mp4", &[], &["the audio starts 36000 s after the video", "failed"]),
        case("a frame wider than the cap", &wide, "v24.mp4", &[], &["input frames are 8200x16", "failed"]),
        case("24,000 keyframes in 0.5 s chunks", &keyframes, "v25.mp4", &["--chunk-seconds", "0.5", "--min-chunk-seconds", "0.5"], &["20000 chunks", "failed"]),
        // Resource abuse.
        case("40 renditions", g, "r0.mp4", &many, &["40 renditions"]),
        case("a 100k-character idempotency key", g, "r1.mp4", &["--idempotency-key", &"k".repeat(100_000)], &["idempotency key is 100000 bytes long"]),
        case("a control character in the idempotency key", g, "r2.mp4", &["--idempotency-key", "nightly\u{7}"], &["idempotency key has a control character"]),
        // The in-process coordinator of `spotenc transcode` applies the
        // same rules.
        transcode("transcode: output is the input", g, &g.display().to_string(), &[], &["is the job's input"]),
        transcode("transcode: text named .mp4", &text, "x1.mp4", &[], &["notes.mp4: not a recognised media file"]),
        transcode("transcode: a FIFO input", &fifo, "x2.mp4", &[], &["is a FIFO, socket or device, not a regular file"]),
        transcode("transcode: NaN chunk length", g, "x3.mp4", &["--chunk-seconds", "NaN"], &["invalid chunk seconds NaN"]),
        transcode("transcode: ffconcat of local files", &concat_local, "x4.mp4", &[], &["an ffconcat list"]),
        transcode("transcode: an HLS playlist", &hls_local, "x5.mp4", &[], &["an HLS playlist"]),
    ];

    let good_bytes = std::fs::read(g).unwrap();
    let (mut failures, mut ran) = (Vec::new(), 0);
    for c in cases.drain(..) {
        let output = if c.output.contains('/') || c.output.contains(':') {
            c.output.clone()
        } else {
            out_abs(&c.output)
        };
        let r = match c.via {
            Via::Submit => {
                let mut args = vec!["submit", c.input.as_str(), output.as_str(), "--wait"];
                if !c.args.iter().any(|a| a == "--preset") {
                    args.extend(["--preset", "ultrafast"]);
                }
                args.extend(c.args.iter().map(String::as_str));
                fleet.spotenc(&args)
            }
            Via::Transcode => Command::new(bin("spotenc"))
                .arg("transcode")
                .arg(&c.input)
                .arg(&output)
                .args(&c.args)
                .output()
                .unwrap(),
        };
        let err = String::from_utf8_lossy(&r.stderr).trim().to_string();
        let lower = err.to_lowercase();
        let mut wrong = Vec::new();
        if r.status.success() {
            wrong.push("succeeded".to_string());
        }
        for e in &c.expect {
            if !lower.contains(&e.to_lowercase()) {
                wrong.push(format!("the error does not say {e:?}"));
            }
        }
        let left: Vec<PathBuf> = entries(&outputs)
            .into_iter()
            .filter(|p| p != &existing_dir && p != &escape_dir)
            .collect();
        if !left.is_empty() {
            wrong.push(format!("left behind: {left:?}"));
        }
        if output == c.input {
            if std::fs::read(g).unwrap() != good_bytes {
                wrong.push("the input changed".into());
            }
        } else if Path::new(&output).is_file() {
            wrong.push(format!("a file at {output}"));
        }
        if !fleet.coordinators[0].is_running() {
            wrong.push("the coordinator died".into());
        }
        if !fleet.worker("w0").is_running() {
            wrong.push("the worker died".into());
        }
        let last = err.lines().last().unwrap_or_default().to_string();
        println!("{:<48} {}", c.name, last);
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n    stderr: {err}",
                c.name,
                wrong.join("; ")
            ));
        }
        ran += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 60, "only {ran} cases");
    let ok = outputs.join("good.mp4");
    assert_ok(
        &fleet.spotenc(&[
            "submit",
            good.to_str().unwrap(),
            ok.to_str().unwrap(),
            "--wait",
            "--preset",
            "ultrafast",
        ]),
        "a good job after the table",
    );
    assert_faithful(&good, &ok);
}
