//! Nothing the source carries is lost: every audio track with its tags,
//! dispositions and channel layout, subtitles, attachments, chapters and
//! global tags survive a chunked transcode, on the embedded store and on
//! Redis with separate workers; the picture's description in `pixels`.
//! ffprobe is the oracle: every stream of the output is compared with the
//! source's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use spotenc_proto::pb;
use spotenc_tests::media::*;
use spotenc_tests::{Fleet, RedisServer};

use super::{assert_ok, ended, submit_id, transcode};

mod pixels;

/// A 4 s MKV with three audio tracks (AAC stereo eng default, AC-3 5.1
/// spa commentary, FLAC 7.1 ger visual-impaired), SubRip (eng, default and
/// forced) and ASS (fre) subtitles, an attached font, two chapters and
/// global tags.
fn multi_track_source(dir: &Path) -> PathBuf {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let meta = write(
        "chapters.txt",
        ";FFMETADATA1\ntitle=Fidelity sample\ncomment=kept\n\n[CHAPTER]\nTIMEBASE=1/1000\n\
         START=0\nEND=1500\ntitle=Opening\n\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1500\n\
         END=4000\ntitle=Second part\n",
    );
    let srt = write(
        "subs.srt",
        "1\n00:00:00,500 --> 00:00:01,200\nHello\n\n2\n00:00:02,000 --> 00:00:03,100\nWorld\n",
    );
    let ass = write(
        "subs.ass",
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 160\nPlayResY: 120\n\n[V4+ Styles]\n\
         Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
         BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
         BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
         Style: Default,TestFont,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,\
         100,0,0,1,1,0,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, \
         MarginL, MarginR, MarginV, Effect, Text\n\
         Dialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,Bonjour\n\
         Dialogue: 0,0:00:03.00,0:00:03.80,Default,,0,0,0,,Monde\n",
    );
    let font = dir.join("font.ttf");
    std::fs::write(
        &font,
        (0..2000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let font = font.to_str().unwrap().to_string();
    make_clip(
        dir,
        "src.mkv",
        &[
            "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25:duration=4",
            "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000:duration=4,pan=stereo|c0=c0|c1=c0",
            "-f", "lavfi", "-i",
            "sine=f=220:sample_rate=48000:duration=4,pan=5.1(side)|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
            "-f", "lavfi", "-i",
            "sine=f=330:sample_rate=44100:duration=4,pan=7.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0|c6=c0|c7=c0",
            "-i", &srt, "-i", &ass, "-i", &meta,
            "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:a", "-map", "4:s", "-map", "5:s",
            "-map_metadata", "6", "-map_chapters", "6",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-c:a:0", "aac", "-c:a:1", "ac3", "-c:a:2", "flac", "-c:s:0", "srt", "-c:s:1", "ass",
            "-attach", &font,
            "-metadata:s:t:0", "mimetype=application/x-truetype-font",
            "-metadata:s:t:0", "filename=TestFont.ttf",
            "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=Main",
            "-disposition:a:0", "default",
            "-metadata:s:a:1", "language=spa", "-metadata:s:a:1", "title=Commentary",
            "-disposition:a:1", "comment",
            "-metadata:s:a:2", "language=ger", "-metadata:s:a:2", "title=Descriptive",
            "-disposition:a:2", "visual_impaired",
            "-metadata:s:s:0", "language=eng", "-disposition:s:0", "default+forced",
            "-metadata:s:s:1", "language=fre", "-metadata:s:s:1", "title=Styled",
        ],
    )
}

/// ffprobe's JSON for a file: streams, chapters and the format.
fn probe_json(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(["-show_streams", "-show_chapters", "-show_format"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// When the video starts: the job's timeline is rebased so that it starts
/// at 0, and every other stream and chapter moves with it.
fn video_start(path: &Path) -> f64 {
    probe_json(path)["streams"][0]["start_time"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// Every subtitle event's (start, duration) in seconds from the video's
/// start, by stream; MP4's empty gap samples (2 bytes) are not events.
fn subtitle_times(path: &Path, stream: usize) -> Vec<(f64, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "csv=p=0"])
        .args(["-select_streams", &format!("s:{stream}")])
        .args(["-show_entries", "packet=pts_time,duration_time,size"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let start = video_start(path);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<f64> = l
                .split(',')
                .map(|x| x.parse().unwrap_or(f64::NAN))
                .collect();
            (f.len() == 3 && f[2] > 2.0).then(|| (f[0] - start, f[1]))
        })
        .collect()
}

/// Asserts that `out` has the same events as `src` in subtitle stream `n`:
/// starts (from the video's start) and durations within 2 ms, an event
/// without a duration on one side without one on the other.
fn assert_same_subtitle_times(src: &Path, out: &Path, n: usize) -> Vec<(f64, f64)> {
    let (a, b) = (subtitle_times(src, n), subtitle_times(out, n));
    assert_eq!(a.len(), b.len(), "subtitle {n}: {a:?} became {b:?}");
    let close = |x: f64, y: f64| (x - y).abs() < 0.002 || (x.is_nan() && y.is_nan());
    for ((at, ad), (bt, bd)) in a.iter().zip(&b) {
        assert!(
            close(*at, *bt) && close(*ad, *bd),
            "subtitle {n}: {a:?} became {b:?}"
        );
    }
    b
}

/// A 4 s 160x120 H.264 clip with the subtitle file `subs` as its second
/// stream, written with the subtitle codec `codec` (or `copy`).
fn subtitled_clip(dir: &Path, name: &str, subs: &Path, codec: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25:duration=4",
        "-i",
        subs.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "1:s",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:s",
        codec,
    ];
    args.extend_from_slice(extra);
    make_clip(dir, name, &args)
}

fn tag<'a>(s: &'a Value, key: &str) -> &'a str {
    s["tags"][key]
        .as_str()
        .or_else(|| s["tags"][key.to_uppercase()].as_str())
        .unwrap_or("")
}

/// The language as a player reads it: none is `und`.
fn language(s: &Value) -> &str {
    match tag(s, "language") {
        "" => "und",
        l => l,
    }
}

/// Compares every stream, chapter and global tag of `out` with `src`.
/// `mkv`: the output is Matroska, which keeps every disposition and the
/// attachments; MP4 keeps languages, turns text subtitles into mov_text
/// and cannot hold attachments.
fn assert_every_stream_kept(src: &Path, out: &Path, mkv: bool) {
    let (s, o) = (probe_json(src), probe_json(out));
    // MP4 holds no attachments, and writes its chapters as a text track
    // (a data stream to ffprobe), as the ffmpeg CLI does.
    let kinds = |v: &Value, skip: &str| -> Vec<String> {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codec_type"].as_str().unwrap().to_string())
            .filter(|k| k != skip)
            .collect()
    };
    let (src_skip, out_skip) = if mkv {
        ("", "")
    } else {
        ("attachment", "data")
    };
    assert_eq!(kinds(&o, out_skip), kinds(&s, src_skip), "stream order");
    let streams = |v: &Value, skip: &str| -> Vec<Value> {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["codec_type"] != skip)
            .cloned()
            .collect()
    };
    let (ss, os) = (streams(&s, src_skip), streams(&o, out_skip));
    for (i, (a, b)) in ss.iter().zip(&os).enumerate() {
        let what = format!("stream {i} ({})", a["codec_type"]);
        assert_eq!(language(b), language(a), "{what} language");
        match a["codec_type"].as_str().unwrap() {
            "audio" => {
                assert_eq!(b["channels"], a["channels"], "{what} channels");
                assert_eq!(b["sample_rate"], a["sample_rate"], "{what} sample rate");
                // AAC's own 5.1 has back surrounds: side ones would be
                // written as a layout decoders cannot name.
                let want = match (a["channel_layout"].as_str(), b["codec_name"].as_str()) {
                    (Some("5.1(side)"), Some("aac")) => "5.1",
                    (Some(l), _) => l,
                    (None, _) => "",
                };
                assert_eq!(
                    b["channel_layout"].as_str().unwrap_or(""),
                    want,
                    "{what} layout"
                );
            }
            "subtitle" if !mkv => assert_eq!(b["codec_name"], "mov_text", "{what}"),
            "subtitle" | "attachment" => assert_eq!(b["codec_name"], a["codec_name"], "{what}"),
            _ => {}
        }
        if mkv {
            assert_eq!(tag(b, "title"), tag(a, "title"), "{what} title");
            assert_eq!(b["disposition"], a["disposition"], "{what} disposition");
            for key in ["filename", "mimetype"] {
                assert_eq!(tag(b, key), tag(a, key), "{what} {key}");
            }
        }
    }
    for n in 0..2 {
        let b = assert_same_subtitle_times(src, out, n);
        assert_eq!(b.len(), 2, "subtitle stream {n} events: {b:?}");
    }
    let chapters = |v: &Value, start: f64| -> Vec<(String, String, String)> {
        v["chapters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let t = |k: &str| {
                    let at: f64 = c[k].as_str().unwrap().parse().unwrap();
                    format!("{:.3}", (at - start).max(0.0))
                };
                (t("start_time"), t("end_time"), tag(c, "title").to_string())
            })
            .collect()
    };
    let want = chapters(&s, video_start(src));
    assert_eq!(chapters(&o, video_start(out)), want, "chapters");
    assert_eq!(want.len(), 2);
    assert_eq!(tag(&o["format"], "title"), "Fidelity sample");
    assert_eq!(tag(&o["format"], "comment"), "kept");
}

/// Frames, decoding and picture as the single-track tests check them, and
/// every audio track as long as the video, to within one AAC frame.
fn assert_frames_and_sync(src: &Path, out: &Path) {
    assert_eq!(frame_count(out), frame_count(src));
    let errors = decode_errors(out);
    assert!(errors.is_empty(), "decode errors: {errors}");
    let p = psnr(out, src);
    assert!(p > 30.0, "PSNR {p:.1} dB");
    let o = probe_json(out);
    let video = stream_duration(out, "v").unwrap();
    let audio = o["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "audio");
    for (n, s) in audio.enumerate() {
        let start: f64 = s["start_time"].as_str().unwrap().parse().unwrap();
        let length = stream_duration_of(out, &format!("a:{n}")).unwrap();
        assert!(start.abs() <= 0.024, "audio {n} starts at {start}");
        assert!(
            (start + length - video).abs() <= 0.050,
            "audio {n} ends at {:.3}, video at {video:.3}",
            start + length
        );
    }
}

#[test]
fn every_track_tag_and_chapter_survives_a_chunked_mkv_transcode() {
    let dir = tempfile::tempdir().unwrap();
    let src = multi_track_source(dir.path());
    let out = dir.path().join("out.mkv");
    // Re-encoding AAC too: every track goes through the encoder, 5.1 and
    // 7.1 included.
    let run = transcode(&src, &out, &["--chunk-seconds", "1", "--audio-reencode"]);
    assert_ok(&run, "transcode");
    assert_every_stream_kept(&src, &out, true);
    assert_frames_and_sync(&src, &out);
}

#[test]
fn mp4_output_gets_mov_text_subtitles_and_every_audio_track() {
    let dir = tempfile::tempdir().unwrap();
    let src = multi_track_source(dir.path());
    let out = dir.path().join("out.mp4");
    let run = transcode(&src, &out, &["--chunk-seconds", "1"]);
    assert_ok(&run, "transcode");
    assert_every_stream_kept(&src, &out, false);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("left out #6 attachment ttf: MP4 cannot hold attachments"),
        "{err}"
    );
    assert_frames_and_sync(&src, &out);
}

#[test]
fn selections_keep_only_the_named_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let src = multi_track_source(dir.path());
    let out = dir.path().join("out.mkv");
    let run = transcode(
        &src,
        &out,
        &[
            "--chunk-seconds",
            "2",
            "--audio",
            "lang:spa,ger",
            "--subtitles",
            "none",
        ],
    );
    assert_ok(&run, "transcode");
    let o = probe_json(&out);
    let kept: Vec<(String, String)> = o["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["codec_type"].as_str().unwrap().into(), language(s).into()))
        .collect();
    let want = [
        ("video", "und"),
        ("audio", "spa"),
        ("audio", "ger"),
        ("attachment", "und"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(kept, want);
    // What was left out is said.
    let err = String::from_utf8_lossy(&run.stderr);
    for l in [
        "left out #1 audio aac eng \"Main\" (stereo, default): not selected by --audio",
        "left out #4 subtitle subrip eng (default, forced): not selected by --subtitles",
        "left out #5 subtitle ass fre \"Styled\": not selected by --subtitles",
    ] {
        assert!(err.contains(l), "{l:?} not in {err}");
    }
}

#[test]
fn a_selection_matching_nothing_fails_naming_the_tracks_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = multi_track_source(dir.path());
    let out = dir.path().join("out.mkv");
    let run = transcode(&src, &out, &["--audio", "lang:jpn"]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("audio track in language jpn")
            && err.contains("#1 audio aac eng \"Main\" (stereo, default)"),
        "{err}"
    );
    assert!(!out.exists(), "an output appeared");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_track_job_runs_on_redis_with_separate_workers() {
    let dir = tempfile::tempdir().unwrap();
    let src = multi_track_source(dir.path());
    let out = dir.path().join("out.mkv");
    let redis = RedisServer::start();
    let fleet = Fleet::builder().redis(redis.url()).cpu_workers(2).start();
    let id = submit_id(&fleet, &src, &out, &["--chunk-seconds", "1"]);
    let done = ended(&fleet.url, &id, Duration::from_secs(120), Some(&out)).await;
    assert_eq!(done.state, pb::JobState::Succeeded as i32, "{}", done.error);
    assert_every_stream_kept(&src, &out, true);
    assert_frames_and_sync(&src, &out);
}

/// A PGS (Blu-ray) subtitle stream as a `.sup` file: two display sets
/// of a 32x16 block, each shown for a second, written segment by segment
/// (the ffmpeg CLI cannot make picture subtitles from text).
fn pgs_sup(dir: &Path) -> PathBuf {
    fn segment(out: &mut Vec<u8>, pts: u32, kind: u8, body: &[u8]) {
        out.extend_from_slice(b"PG");
        out.extend_from_slice(&pts.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    let be = |v: u16| v.to_be_bytes();
    let window = [&[1u8, 0][..], &be(10), &be(10), &be(32), &be(16)].concat();
    let mut rle = Vec::new();
    for _ in 0..16 {
        rle.extend_from_slice(&[0, 0x80 | 32, 1, 0, 0]);
    }
    let mut sup = Vec::new();
    for (n, (show, hide)) in [(0.5f64, 1.5f64), (2.0, 3.0)].into_iter().enumerate() {
        let (show, hide) = ((show * 90_000.0) as u32, (hide * 90_000.0) as u32);
        let number = be(2 * n as u16);
        let pcs = [
            &be(160)[..],
            &be(120),
            &[0x10],
            &number,
            &[0x80, 0, 0, 1],
            &be(0),
            &[0, 0],
            &be(10),
            &be(10),
        ]
        .concat();
        segment(&mut sup, show, 0x16, &pcs);
        segment(&mut sup, show, 0x17, &window);
        segment(
            &mut sup,
            show,
            0x14,
            &[0, 0, 0, 16, 128, 128, 0, 1, 235, 128, 128, 255],
        );
        let len = (rle.len() + 4) as u32;
        let ods = [
            &be(0)[..],
            &[0, 0xC0],
            &len.to_be_bytes()[1..],
            &be(32),
            &be(16),
            &rle,
        ]
        .concat();
        segment(&mut sup, show, 0x15, &ods);
        segment(&mut sup, show, 0x80, &[]);
        let clear = [
            &be(160)[..],
            &be(120),
            &[0x10],
            &be(2 * n as u16 + 1),
            &[0, 0, 0, 0],
        ]
        .concat();
        segment(&mut sup, hide, 0x16, &clear);
        segment(&mut sup, hide, 0x17, &window);
        segment(&mut sup, hide, 0x80, &[]);
    }
    let path = dir.join("subs.sup");
    std::fs::write(&path, sup).unwrap();
    path
}

#[test]
fn picture_subtitles_are_copied_into_mkv_and_refused_for_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let sup = pgs_sup(dir.path());
    let src = subtitled_clip(
        dir.path(),
        "pgs.mkv",
        &sup,
        "copy",
        &["-metadata:s:s:0", "language=spa"],
    );
    let out = dir.path().join("out.mkv");
    assert_ok(
        &transcode(&src, &out, &["--chunk-seconds", "1"]),
        "transcode",
    );
    assert_eq!(
        video_stream(&out, "codec_name"),
        "h264",
        "the video comes first"
    );
    let subs = |p: &Path| {
        let j = probe_json(p);
        let s = &j["streams"][1];
        (s["codec_name"].clone(), language(s).to_string())
    };
    assert_eq!(subs(&out), subs(&src));
    assert_eq!(subs(&out).0, "hdmv_pgs_subtitle");
    let events = assert_same_subtitle_times(&src, &out, 0);
    assert!(events.len() >= 4, "{events:?}");
    let errors = decode_errors(&out);
    assert!(errors.is_empty(), "{errors}");
    // MP4 cannot hold pictures: refused, naming the track, nothing written.
    let out = dir.path().join("out.mp4");
    let run = transcode(&src, &out, &[]);
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("#1 subtitle hdmv_pgs_subtitle spa") && err.contains("--container mkv"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn mov_text_becomes_subrip_in_matroska() {
    let dir = tempfile::tempdir().unwrap();
    let srt = dir.path().join("s.srt");
    std::fs::write(
        &srt,
        "1\n00:00:00,500 --> 00:00:01,200\nHello\n\n2\n00:00:01,500 --> 00:00:01,500\nNow\n\n\
         3\n00:00:02,000 --> 00:00:03,100\nWorld\n",
    )
    .unwrap();
    let src = subtitled_clip(dir.path(), "text.mp4", &srt, "mov_text", &[]);
    let out = dir.path().join("out.mkv");
    assert_ok(
        &transcode(&src, &out, &["--chunk-seconds", "1"]),
        "transcode",
    );
    let j = probe_json(&out);
    assert_eq!(j["streams"][1]["codec_name"], "subrip");
    let events = assert_same_subtitle_times(&src, &out, 0);
    assert!(!events.is_empty());
}
