//! Test media made with the `ffmpeg` CLI, and the ffmpeg/ffprobe oracle.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the `ffmpeg` CLI quietly and panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `dir/name` from `ffmpeg` arguments (inputs and encoder options).
pub fn make_clip(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut all: Vec<&str> = args.to_vec();
    let p = path.to_str().expect("utf-8 path").to_string();
    all.push(&p);
    ffmpeg(&all);
    path
}

fn ffprobe(args: &[&str], path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {args:?} {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dir/src.mp4`: `seconds` of testsrc2 at `size`, 25 fps, H.264 with a
/// keyframe every second and no audio.
pub fn video_clip(dir: &Path, seconds: u32, size: &str) -> PathBuf {
    let v = format!("testsrc2=size={size}:rate=25:duration={seconds}");
    make_clip(
        dir,
        "src.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            &v,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ],
    )
}

/// The first video stream's `entries` as ffprobe prints them, comma
/// separated: `"hevc,320,180"` for `"codec_name,width,height"`.
pub fn video_stream(path: &Path, entries: &str) -> String {
    let entries = format!("stream={entries}");
    ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            &entries,
            "-of",
            "csv=p=0",
        ],
        path,
    )
    .trim()
    .to_string()
}

/// Decoded video frames, counted by ffprobe.
pub fn frame_count(path: &Path) -> u64 {
    let s = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "default=nw=1:nk=1",
        ],
        path,
    );
    s.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("ffprobe frame count of {}: {s:?}", path.display()))
}

/// Presentation times of every video frame, in seconds from the first.
pub fn frame_times(path: &Path) -> Vec<f64> {
    let s = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "default=nw=1:nk=1",
        ],
        path,
    );
    let t: Vec<f64> = s.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let first = t.first().copied().unwrap_or(0.0);
    t.into_iter().map(|x| x - first).collect()
}

/// Duration of the first stream of a kind (`v` or `a`): the container's
/// figure for the stream where it has one (MP4), else from its packets (last
/// packet end minus first packet start; Matroska, MPEG-TS).
pub fn stream_duration(path: &Path, kind: &str) -> Option<f64> {
    stream_duration_of(path, &format!("{kind}:0"))
}

/// [`stream_duration`] of the stream ffprobe's specifier names (`a:2`).
pub fn stream_duration_of(path: &Path, spec: &str) -> Option<f64> {
    let declared = ffprobe(
        &[
            "-select_streams",
            spec,
            "-show_entries",
            "stream=duration",
            "-of",
            "default=nw=1:nk=1",
        ],
        path,
    );
    if let Ok(d) = declared.trim().parse::<f64>() {
        return Some(d);
    }
    let s = ffprobe(
        &[
            "-select_streams",
            spec,
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
        ],
        path,
    );
    let mut start = f64::MAX;
    let mut end = f64::MIN;
    for line in s.lines() {
        let mut it = line.split(',');
        let (Some(Ok(pts)), Some(dur)) = (it.next().map(str::parse::<f64>), it.next()) else {
            continue;
        };
        let dur = dur.parse::<f64>().unwrap_or(0.0);
        start = start.min(pts);
        end = end.max(pts + dur);
    }
    (end > start).then_some(end - start)
}

/// The container's duration in seconds.
pub fn format_duration(path: &Path) -> f64 {
    ffprobe(
        &[
            "-show_entries",
            "format=duration",
            "-of",
            "default=nw=1:nk=1",
        ],
        path,
    )
    .trim()
    .parse()
    .expect("duration")
}

/// Whether a video stream exists, and whether an audio stream exists.
pub fn has_stream(path: &Path, kind: &str) -> bool {
    !ffprobe(
        &[
            "-select_streams",
            kind,
            "-show_entries",
            "stream=index",
            "-of",
            "csv=p=0",
        ],
        path,
    )
    .trim()
    .is_empty()
}

/// What `ffmpeg -v error` prints while decoding the whole file.
pub fn decode_errors(path: &Path) -> String {
    decode_log(path, "error")
}

/// What `ffmpeg -v warning` prints while decoding the whole file (timestamp
/// trouble such as non-monotonic DTS is a warning).
pub fn decode_warnings(path: &Path) -> String {
    decode_log(path, "warning")
}

fn decode_log(path: &Path, level: &str) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", level, "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Average PSNR (dB) of `distorted` against `reference`, frame by frame.
pub fn psnr(distorted: &Path, reference: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(distorted)
        .arg("-i")
        .arg(reference)
        .args([
            "-lavfi",
            "[0:v]setpts=PTS-STARTPTS[a];[1:v]setpts=PTS-STARTPTS[b];[a][b]psnr",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let avg = err
        .lines()
        .find_map(|l| l.split("average:").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no psnr in: {err}"));
    if avg == "inf" {
        f64::INFINITY
    } else {
        avg.parse().expect("psnr value")
    }
}

/// What `ffmpeg -lavfi psnr,ssim` says of `distorted` against `reference`
/// after `ref_filter` (a filter chain ending in `,`, or empty): the weighted
/// average PSNR, the Y PSNR and SSIM (all planes), as the CLI prints them.
pub fn lavfi_scores(distorted: &Path, reference: &Path, ref_filter: &str) -> (f64, f64, f64) {
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS[a];[1:v]{ref_filter}setpts=PTS-STARTPTS[b];\
         [a]split[a1][a2];[b]split[b1][b2];[a1][b1]psnr;[a2][b2]ssim"
    );
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(distorted)
        .arg("-i")
        .arg(reference)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let after = |line_start: &str, key: &str| -> f64 {
        err.lines()
            .filter(|l| l.contains(line_start))
            .find_map(|l| l.split(key).nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in: {err}"))
    };
    (
        after("PSNR", "average:"),
        after("PSNR", " y:"),
        after("SSIM", "All:"),
    )
}
