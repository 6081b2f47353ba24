//! Per-chunk quality against the ffmpeg CLI's psnr and ssim filters, on the
//! same chunk and the same source frames.

#![forbid(unsafe_code)]

use std::path::Path;

use spotenc_media::{encode, probe, Control};
use spotenc_proto::domain::*;
use spotenc_tests::media::{lavfi_scores, make_clip};

/// 3 s of testsrc2 at 320x240, 25 fps, keyframes every second, in `pix`.
fn source(dir: &Path, pix: &str) -> std::path::PathBuf {
    make_clip(
        dir,
        &format!("src-{pix}.mkv"),
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25:duration=3",
            "-pix_fmt",
            pix,
            "-c:v",
            "ffv1",
            "-g",
            "25",
        ],
    )
}

/// Encodes the source's second second as one chunk with quality measured.
fn encode_middle(
    src: &Path,
    dir: &Path,
    codec: Codec,
    depth: u32,
    max_size: Option<(u32, u32)>,
    ctl: &Control,
) -> (OutputObject, ChunkRange) {
    let info = probe::probe(src.to_str().unwrap()).unwrap();
    let v = &info.video;
    let k = |f: u64| {
        *v.keyframes
            .iter()
            .find(|k| k.frame == f)
            .expect("a keyframe every 25 frames")
    };
    let (start, end) = (k(25), k(50));
    let chunk = ChunkRange {
        index: 1,
        start_frame: start.frame,
        end_frame: end.frame,
        start_pts: start.pts,
        end_pts: Some(end.pts),
    };
    let task = EncodeTask {
        input: src.to_str().unwrap().into(),
        output: dir
            .join(format!("c-{}-{depth}.nut", codec.name()))
            .to_str()
            .unwrap()
            .into(),
        chunk,
        video: VideoSettings {
            codec,
            rate: RateControl::Crf(30),
            preset: "ultrafast".into(),
            profile: None,
            keyint: None,
            max_size,
            allow_upscale: false,
            bit_depth: Some(depth),
            tonemap: false,
            autorotate: false,
        },
        origin_pts: v.start_pts,
        video_stream: v.stream_index,
        source_frame_rate: v.avg_frame_rate,
        renditions: vec![],
        identities: vec![],
        measure_quality: true,
    };
    (encode::encode_chunk(&task, ctl).unwrap(), chunk)
}

fn agrees_with_the_cli(codec: Codec, depth: u32, max_size: Option<(u32, u32)>) {
    let dir = tempfile::tempdir().unwrap();
    let pix = if depth > 8 { "yuv420p10le" } else { "yuv420p" };
    let src = source(dir.path(), pix);
    let (obj, chunk) = encode_middle(
        &src,
        dir.path(),
        codec,
        depth,
        max_size,
        &Control::default(),
    );
    let q = obj.quality.as_ref().expect("measured");
    let scale = max_size.map_or(String::new(), |(w, h)| {
        format!("scale={w}:{h}:flags=bicubic,")
    });
    let reference = format!(
        "trim=start_frame={}:end_frame={},{scale}format={pix},",
        chunk.start_frame, chunk.end_frame
    );
    let (psnr, psnr_y, ssim) = lavfi_scores(Path::new(&obj.path), &src, &reference);
    let what = format!(
        "{} {depth}-bit {max_size:?}: ours {q:?}, the CLI's psnr {psnr} y {psnr_y} ssim {ssim}",
        codec.name()
    );
    assert_eq!(q.frames, 25, "{what}");
    assert!((q.psnr - psnr).abs() <= 0.1, "{what}");
    assert!((q.psnr_y - psnr_y).abs() <= 0.1, "{what}");
    assert!((q.ssim - ssim).abs() <= 0.002, "{what}");
    // The summary is consistent with itself.
    assert!(
        q.psnr_min <= q.psnr_p5 && q.psnr_p5 <= q.psnr + 1e-9,
        "{what}"
    );
    assert!(
        (q.seconds - 1.0).abs() < 1e-6 && (q.start_seconds - 1.0).abs() < 1e-6,
        "{what}"
    );
    let (w, h) = max_size.unwrap_or((320, 240));
    assert_eq!((q.width, q.height), (w, h), "{what}");
    let bits = obj.size_bytes as f64 * 8.0;
    // The packets' bits over the chunk's second: a little under the file's.
    assert!(
        q.bitrate_bps as f64 <= bits && q.bitrate_bps as f64 > bits * 0.8,
        "{what}"
    );
    assert!(!q.vmaf_unavailable.is_empty() && q.vmaf.is_none(), "{what}");
}

#[test]
fn h264_8_bit_agrees_with_the_cli() {
    agrees_with_the_cli(Codec::H264, 8, None);
}

#[test]
fn h264_10_bit_agrees_with_the_cli() {
    agrees_with_the_cli(Codec::H264, 10, None);
}

#[test]
fn hevc_8_bit_agrees_with_the_cli() {
    agrees_with_the_cli(Codec::Hevc, 8, None);
}

#[test]
fn hevc_10_bit_agrees_with_the_cli() {
    agrees_with_the_cli(Codec::Hevc, 10, None);
}

#[test]
fn a_scaled_output_is_measured_at_its_own_size() {
    agrees_with_the_cli(Codec::H264, 8, Some((160, 120)));
}

#[test]
fn a_damaged_chunk_keeps_its_count_and_loses_its_psnr() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), "yuv420p");
    let (clean, _) = encode_middle(&src, dir.path(), Codec::H264, 8, None, &Control::default());
    let ctl = Control::default();
    ctl.damage_frames
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (damaged, chunk) = encode_middle(&src, dir.path(), Codec::H264, 8, None, &ctl);
    assert_eq!(damaged.frames, chunk.frames());
    let (clean_q, damaged_q) = (clean.quality.unwrap(), damaged.quality.unwrap());
    assert!(
        damaged_q.psnr < clean_q.psnr - 15.0,
        "clean {clean_q:?} damaged {damaged_q:?}"
    );
}
