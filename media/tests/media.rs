//! Media pipeline tests against real FFmpeg, judged by the ffmpeg/ffprobe CLI.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use spotenc_media::{audio, encode, probe, stitch, Control};
use spotenc_proto::domain::*;
use spotenc_tests::media::{decode_errors, ffmpeg, frame_count as count_frames};

fn settings() -> VideoSettings {
    VideoSettings {
        codec: Codec::H264,
        rate: RateControl::Crf(23),
        preset: "ultrafast".into(),
        profile: None,
        keyint: None,
        max_size: None,
        allow_upscale: false,
        bit_depth: None,
        tonemap: false,
        autorotate: false,
    }
}

/// Chunks at every keyframe at least `every` frames apart.
fn chunks(info: &ProbeInfo, every: u64) -> Vec<ChunkRange> {
    let v = &info.video;
    let mut starts: Vec<Keyframe> = vec![];
    for k in v.keyframes.iter() {
        if starts.last().is_none_or(|s| k.frame - s.frame >= every) {
            starts.push(*k);
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let next = starts.get(i + 1);
            ChunkRange {
                index: i as u32,
                start_frame: s.frame,
                end_frame: next.map_or(v.frame_count, |n| n.frame),
                start_pts: s.pts,
                end_pts: next.map(|n| n.pts),
            }
        })
        .collect()
}

fn transcode(
    src: &Path,
    dir: &Path,
    every: u64,
    video: VideoSettings,
    container: Container,
) -> PathBuf {
    let info = probe::probe(src.to_str().unwrap()).unwrap();
    let ctl = Control::default();
    let mut objs = vec![];
    for c in chunks(&info, every) {
        let task = EncodeTask {
            renditions: Default::default(),
            identities: Vec::new(),
            measure_quality: false,
            input: src.to_str().unwrap().into(),
            output: dir
                .join(format!("c{}.nut", c.index))
                .to_str()
                .unwrap()
                .into(),
            chunk: c,
            video: video.clone(),
            origin_pts: info.video.start_pts,
            video_stream: info.video.stream_index,
            source_frame_rate: info.video.avg_frame_rate,
        };
        objs.push(encode::encode_chunk(&task, &ctl).unwrap());
    }
    let tb = info.video.time_base;
    let audio = info.audio.as_ref().map(|_| {
        audio::make_audio(
            &AudioTask {
                input: src.to_str().unwrap().into(),
                output: dir.join("a.nut").to_str().unwrap().into(),
                audio: AudioSettings {
                    copy_if_aac: false,
                    bitrate_bps: 128_000,
                },
                origin_seconds: info.video.start_pts as f64 * tb.as_f64(),
                duration_seconds: (info.video.end_pts - info.video.start_pts) as f64 * tb.as_f64(),
                stream: None,
            },
            &ctl,
        )
        .unwrap()
    });
    let out = dir.join(if container == Container::Mp4 {
        "out.mp4"
    } else {
        "out.mkv"
    });
    stitch::stitch(
        &StitchTask {
            rendition: 0,
            chunks: objs,
            audio,
            more_audio: vec![],
            carry: None,
            frame_rate: None,
            autorotated: false,
            output: out.to_str().unwrap().into(),
            container,
            expected_frames: info.video.frame_count,
            part_urls: vec![],
            part_size_bytes: 0,
        },
        &ctl,
    )
    .unwrap_or_else(|e| panic!("{e} (files in {})", dir.display()));
    out
}

#[test]
fn chunked_h264_output_has_every_source_frame() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-bf",
        "2",
        "-c:a",
        "aac",
        "-shortest",
        src.to_str().unwrap(),
    ]);
    let out = transcode(&src, dir.path(), 25, settings(), Container::Mp4);
    assert_eq!(count_frames(&out), count_frames(&src));
}

fn check_source(name: &str, gen: &[&str], video: VideoSettings, container: Container) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(name);
    let mut args: Vec<&str> = gen.to_vec();
    let s = src.to_str().unwrap().to_string();
    args.push(&s);
    ffmpeg(&args);
    let out = transcode(&src, dir.path(), 20, video, container);
    assert_eq!(
        count_frames(&out),
        count_frames(&src),
        "{name}: frame count"
    );
    let errs = decode_errors(&out);
    assert!(errs.is_empty(), "{name}: decode errors: {errs}");
}

#[test]
fn open_gop_with_b_frames_source() {
    check_source(
        "opengop.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=4",
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
        ],
        VideoSettings {
            preset: "fast".into(),
            ..settings()
        },
        Container::Mp4,
    );
}

#[test]
fn variable_frame_rate_source() {
    check_source(
        "vfr.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30:duration=4",
            "-vf",
            "setpts='if(lt(mod(N,10),5),N*2,N*2+1)/60/TB'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
        ],
        settings(),
        Container::Mkv,
    );
}

#[test]
fn mpeg_ts_with_non_zero_start_source() {
    check_source(
        "start.ts",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=4",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=4",
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
        settings(),
        Container::Mp4,
    );
}

#[test]
fn ten_bit_hevc_source_to_hevc_scaled() {
    check_source(
        "10bit.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=3",
            "-pix_fmt",
            "yuv420p10le",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=20",
        ],
        VideoSettings {
            codec: Codec::Hevc,
            max_size: Some((160, 160)),
            allow_upscale: false,
            bit_depth: None,
            ..settings()
        },
        Container::Mkv,
    );
}

// The container-index probe must agree exactly with the packet scan,
// including open-GOP leading pictures and B-frame reordering.
#[test]
fn container_index_probe_matches_packet_scan() {
    let dir = tempfile::tempdir().unwrap();
    let clips: &[(&str, &[&str])] = &[
        (
            "plain.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=25:duration=3",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "20",
            ],
        ),
        (
            "opengop.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=25:duration=4",
                "-c:v",
                "libx264",
                "-preset",
                "fast",
                "-bf",
                "3",
                "-g",
                "30",
                "-keyint_min",
                "7",
                "-x264-params",
                "open-gop=1",
            ],
        ),
        (
            "vfr.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=30:duration=3",
                "-vf",
                "setpts='if(lt(mod(N,10),5),N*2,N*2+1)/60/TB'",
                "-fps_mode",
                "vfr",
                "-c:v",
                "libx264",
                "-preset",
                "fast",
                "-bf",
                "2",
                "-g",
                "15",
            ],
        ),
        (
            "hevc.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=24:duration=3",
                "-c:v",
                "libx265",
                "-preset",
                "fast",
                "-x265-params",
                "log-level=error:keyint=24:bframes=4",
            ],
        ),
    ];
    for (name, args) in clips {
        let path = dir.path().join(name);
        let mut a: Vec<&str> = args.to_vec();
        let p = path.to_str().unwrap().to_string();
        a.push(&p);
        ffmpeg(&a);
        let indexed = probe::probe_with(&p, true).unwrap();
        let scanned = probe::probe_with(&p, false).unwrap();
        assert_eq!(indexed.index_source, "container-index", "{name}");
        assert_eq!(scanned.index_source, "packet-scan", "{name}");
        assert_eq!(indexed.video, scanned.video, "{name}");
        assert_eq!(indexed.video.frame_count, count_frames(&path), "{name}");
        assert!(indexed.video.keyframes.len() > 1, "{name}");
    }
}

/// With no CUDA (no driver here), NVENC fails: the chunk is an encoder
/// error and nothing is written (another encoder's parameter sets would not
/// stitch with the rendition's other chunks; the worker hands it back).
/// NVDEC only decodes, so a chunk whose GPU decode fails is decoded on the
/// CPU, with the same encoder, says so in the log, and has every frame.
#[test]
fn a_failed_hardware_encoder_is_an_error_and_a_failed_gpu_decode_moves_to_the_cpu() {
    if std::env::var_os("SPOTENC_HAVE_NVENC").is_some() {
        return; // a g4dn/g5 with a working NVENC: nothing fails there
    }
    let dir = tempfile::tempdir().unwrap();
    let src = spotenc_tests::media::video_clip(dir.path(), 2, "320x240");
    let info = probe::probe(src.to_str().unwrap()).unwrap();
    let c = &chunks(&info, 25)[1];
    let out = dir.path().join("c1.nut");
    let task = EncodeTask {
        renditions: Default::default(),
        identities: Vec::new(),
        measure_quality: false,
        input: src.to_str().unwrap().into(),
        output: out.to_str().unwrap().into(),
        chunk: *c,
        video: settings(),
        origin_pts: info.video.start_pts,
        video_stream: info.video.stream_index,
        source_frame_rate: info.video.avg_frame_rate,
    };
    let ctl = Control::default();
    let nvenc = encode::encode_chunk_on(&task, &ctl, encode::Hardware::Nvenc { gpu: 0 });
    match nvenc {
        Err(spotenc_media::Error::Encoder { encoder, .. }) => {
            assert!(encoder.contains("CUDA device 0"), "{encoder}")
        }
        other => panic!("NVENC without CUDA gave {other:?}"),
    }
    assert!(!out.exists(), "a failed chunk left {}", out.display());
    let (obj, log) = spotenc_media::capture_log(|| {
        encode::encode_chunk_on(&task, &ctl, encode::Hardware::Nvdec { gpu: 0 })
    });
    let obj = obj.unwrap();
    assert_eq!(obj.frames, c.end_frame - c.start_frame);
    assert_eq!(count_frames(&out), obj.frames);
    assert!(decode_errors(&out).is_empty());
    assert!(
        log.contains("NVDEC on CUDA device 0 failed") && log.contains("decoded on the CPU instead"),
        "{log}"
    );
    assert_eq!(obj.encoder, "libx264");
    assert_eq!(
        spotenc_tests::media::video_stream(&out, "codec_name"),
        "h264"
    );
}

/// A server that accepts and then says nothing: FFmpeg's open blocks on
/// it until the worker's cancel flag interrupts it.
#[test]
fn a_blocked_network_read_ends_promptly_when_cancelled() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/silent.mp4",
        listener.local_addr().unwrap().port()
    );
    let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let ctl = std::sync::Arc::new(Control::default());
    let flag = ctl.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        flag.cancel.store(true, Ordering::Relaxed);
    });
    let started = Instant::now();
    let r = probe::probe_controlled(&url, &ctl);
    let took = started.elapsed();
    assert!(matches!(r, Err(spotenc_media::Error::Cancelled)), "{r:?}");
    // Well before FFmpeg's own 30 s read timeout.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(held);
}
