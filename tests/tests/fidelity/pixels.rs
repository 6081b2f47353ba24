//! The picture: colour description, bit depth and HDR metadata, tone
//! mapping, display rotation, sample aspect and variable frame rate, each
//! compared with the source (and with the ffmpeg CLI's own result where it
//! has one) by ffprobe and ffmpeg.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use spotenc_tests::media::*;

use super::{probe_json, transcode};
use crate::assert_ok;

#[test]
fn phone_rotation_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let plain = make_clip(
        dir.path(),
        "plain.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x96:rate=25:duration=2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ],
    );
    // FFmpeg 5.1's mov muxer turns a `rotate` tag into the display matrix
    // when copying.
    let plain = plain.to_str().unwrap();
    let src = make_clip(
        dir.path(),
        "phone.mp4",
        &["-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90"],
    );
    let rotation = |p: &Path| -> i64 {
        let j = probe_json(p);
        j["streams"][0]["side_data_list"]
            .as_array()
            .and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()))
            .unwrap_or(0)
    };
    let turned = rotation(&src);
    assert_eq!(turned.abs(), 90, "the source is rotated");
    let out = dir.path().join("out.mp4");
    assert_ok(
        &transcode(&src, &out, &["--chunk-seconds", "1"]),
        "transcode",
    );
    assert_eq!(rotation(&out), turned);
    assert_eq!(frame_count(&out), frame_count(&src));
    // Matroska cannot record it with this FFmpeg: refused, not lost.
    let out = dir.path().join("out.mkv");
    let run = transcode(&src, &out, &["--chunk-seconds", "1"]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("rotated 90 degrees") && err.contains("--container mp4"),
        "{err}"
    );
    assert!(!out.exists()); // --autorotate turns the pixels, as the ffmpeg CLI does, and --scale
                            // fits the turned picture; no rotation is left to apply.
    let run = transcode(
        &src,
        &out,
        &["--autorotate", "--scale", "64x64", "--chunk-seconds", "1"],
    );
    assert_ok(&run, "autorotate");
    assert_eq!(video_stream(&out, "width,height"), "38,64");
    assert_eq!(rotation(&out), 0);
    let cli = make_clip(
        dir.path(),
        "cli.mkv",
        &[
            "-i",
            src.to_str().unwrap(),
            "-vf",
            "scale=38:64",
            "-c:v",
            "libx264",
        ],
    );
    let p = psnr(&out, &cli);
    assert!(p > 35.0, "autorotated PSNR against the CLI's {p:.1} dB");
}

/// The colour description ffprobe reads from a file's first video stream.
fn colour(path: &Path) -> String {
    video_stream(
        path,
        "profile,pix_fmt,color_range,color_space,color_transfer,color_primaries",
    )
}

/// The HDR side data of the first frame (mastering display, light level).
fn hdr_side_data(path: &Path) -> Vec<Value> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-read_intervals", "%+#1"])
        .args(["-select_streams", "v:0", "-show_frames"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    j["frames"][0]["side_data_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| {
            let t = d["side_data_type"].as_str().unwrap_or("");
            t.starts_with("Mastering display") || t.starts_with("Content light")
        })
        .collect()
}

fn hevc_10_bit(dir: &Path, name: &str, transfer: &str, x265: &str) -> PathBuf {
    let params = format!("log-level=error:keyint=25{x265}");
    make_clip(
        dir,
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=3",
            "-pix_fmt",
            "yuv420p10le",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-color_primaries",
            "bt2020",
            "-color_trc",
            transfer,
            "-colorspace",
            "bt2020nc",
            "-x265-params",
            &params,
        ],
    )
}

#[test]
fn hdr10_and_hlg_stay_10_bit_hdr_with_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let hdr10 = hevc_10_bit(
        dir.path(),
        "hdr10.mkv",
        "smpte2084",
        ":hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)\
         L(10000000,1):max-cll=1000,400",
    );
    let hlg = hevc_10_bit(dir.path(), "hlg.mkv", "arib-std-b67", "");
    assert_eq!(
        hdr_side_data(&hdr10).len(),
        2,
        "the source carries HDR10 metadata"
    );
    for (src, name) in [
        (&hdr10, "hdr10.mp4"),
        (&hdr10, "hdr10.mkv"),
        (&hlg, "hlg.mp4"),
    ] {
        let out = dir.path().join(format!("out-{name}"));
        let args = [
            "--codec",
            "hevc",
            "--chunk-seconds",
            "1",
            "--preset",
            "ultrafast",
        ];
        assert_ok(&transcode(src, &out, &args), name);
        assert_eq!(colour(&out), colour(src), "{name}");
        assert!(colour(&out).starts_with("Main 10,yuv420p10le"), "{name}");
        assert_eq!(hdr_side_data(&out), hdr_side_data(src), "{name}");
        assert_eq!(frame_count(&out), frame_count(src));
        let p = psnr(&out, src);
        assert!(p > 30.0, "{name}: PSNR {p:.1} dB");
    }
    // --tonemap makes BT.709 SDR, as the ffmpeg CLI's zscale and tonemap
    // filters do.
    let out = dir.path().join("sdr.mp4");
    let run = transcode(
        &hdr10,
        &out,
        &["--tonemap", "--crf", "18", "--chunk-seconds", "1"],
    );
    assert_ok(&run, "tonemap");
    assert_eq!(colour(&out), "High,yuv420p,tv,bt709,bt709,bt709");
    assert!(
        hdr_side_data(&out).is_empty(),
        "HDR metadata on an SDR output"
    );
    let cli = make_clip(
        dir.path(),
        "cli-sdr.mp4",
        &[
            "-i",
            hdr10.to_str().unwrap(),
            "-vf",
            "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,\
             zscale=t=bt709:m=bt709:r=tv,format=yuv420p",
            "-c:v",
            "libx264",
            "-crf",
            "18",
        ],
    );
    let p = psnr(&out, &cli);
    assert!(p > 35.0, "tone-mapped PSNR against the CLI's {p:.1} dB");
    std::fs::remove_file(&out).unwrap();
    // Never a silent 8-bit PQ file.
    for args in [
        &["--codec", "h264"][..],
        &["--codec", "hevc", "--bit-depth", "8"],
    ] {
        let out = dir.path().join("sdr.mp4");
        let run = transcode(&hdr10, &out, args);
        assert!(!run.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(err.contains("the source is HDR (smpte2084"), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn bt601_full_range_keeps_its_colour_description() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_clip(
        dir.path(),
        "601.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=2",
            "-vf",
            "scale=out_range=full",
            "-pix_fmt",
            "yuv420p",
            "-color_range",
            "pc",
            "-color_primaries",
            "smpte170m",
            "-color_trc",
            "smpte170m",
            "-colorspace",
            "smpte170m",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ],
    );
    assert!(
        colour(&src).contains("pc,smpte170m,smpte170m,smpte170m"),
        "{}",
        colour(&src)
    );
    for name in ["out.mp4", "out.mkv"] {
        let out = dir.path().join(name);
        assert_ok(&transcode(&src, &out, &["--chunk-seconds", "1"]), name);
        let (a, b) = (colour(&src), colour(&out));
        // The profile may differ (High from a baseline-ish source); the
        // rest must not.
        assert_eq!(
            b.split_once(',').unwrap().1,
            a.split_once(',').unwrap().1,
            "{name}"
        );
        let p = psnr(&out, &src);
        assert!(p > 30.0, "{name}: PSNR {p:.1} dB (range kept)");
    }
}

/// Warnings about timestamps when the ffmpeg CLI decodes a file.
fn timestamp_warnings(path: &Path) -> usize {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("monoton"))
        .count()
}

// A 60 fps source with a 5 fps stretch, stitched to MKV, was written with
// a nominal rate of the most common rounded duration (1000/17): decoding
// it warned of non-monotonic timestamps and a downstream CFR encode
// dropped frames that the same pipeline on the ffmpeg CLI's output kept.
#[test]
fn variable_frame_rate_keeps_its_timing_and_nominal_rate() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_clip(
        dir.path(),
        "vfr.mkv",
        &[
            "-f", "lavfi", "-i",
            "testsrc2=size=160x120:rate=60:duration=2[a];testsrc2=size=160x120:rate=5:duration=2[b];\
             testsrc2=size=160x120:rate=60:duration=2[c];[a][b][c]concat=n=3",
            "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60",
        ],
    );
    let out = dir.path().join("out.mkv");
    assert_ok(
        &transcode(&src, &out, &["--chunk-seconds", "1"]),
        "transcode",
    );
    let cli = make_clip(
        dir.path(),
        "cli.mkv",
        &[
            "-i",
            src.to_str().unwrap(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
    );
    assert_eq!(
        video_stream(&out, "r_frame_rate,avg_frame_rate"),
        video_stream(&src, "r_frame_rate,avg_frame_rate")
    );
    let (s, o) = (frame_times(&src), frame_times(&out));
    let start = s[0];
    assert_eq!(o.len(), s.len());
    for (a, b) in s.iter().zip(&o) {
        assert!((a - start - b).abs() < 0.0015, "frame at {a} became {b}");
    }
    assert_eq!(timestamp_warnings(&out), 0);
    assert_eq!(timestamp_warnings(&out), timestamp_warnings(&cli));
    // The same downstream CFR encode keeps as many frames of ours as of
    // the CLI's own output.
    let count = |p: &Path, name: &str| {
        let x = make_clip(
            dir.path(),
            name,
            &[
                "-i",
                p.to_str().unwrap(),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
            ],
        );
        frame_count(&x)
    };
    assert_eq!(count(&out, "ours.mp4"), count(&cli, "theirs.mp4"));
}

#[test]
fn anamorphic_pal_keeps_its_sample_and_display_aspect() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_clip(
        dir.path(),
        "pal.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=720x576:rate=25:duration=2,setsar=64/45",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ],
    );
    let aspect = |p: &Path| video_stream(p, "sample_aspect_ratio,display_aspect_ratio");
    assert_eq!(aspect(&src), "64:45,16:9");
    for (name, extra) in [
        ("out.mp4", &[][..]),
        ("half.mkv", &["--scale", "360x360"][..]),
    ] {
        let out = dir.path().join(name);
        let mut args = vec!["--chunk-seconds", "1"];
        args.extend_from_slice(extra);
        assert_ok(&transcode(&src, &out, &args), name);
        assert_eq!(aspect(&out), aspect(&src), "{name}");
        assert_eq!(frame_count(&out), frame_count(&src));
    }
}
