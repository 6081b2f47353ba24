//! Frame-accurate chunk encode.
//!
//! A chunk is the frames `[start, end)` of the source in presentation order.
//! The encoder seeks to the keyframe at or before `start`, decodes, drops
//! frames before `start`, and stops at `end`, so the result does not depend on
//! the source's GOP structure. Timestamps keep the source timeline, rebased so
//! the job starts at 0. The first frame is an IDR and GOPs are closed, so the
//! chunks can be concatenated.
//!
//! Layout: this file holds the decode loop and each rendition's pipeline;
//! `options` the encoders' options (libx264/libx265, NVENC, QSV).

mod options;

use std::path::{Path, PathBuf};

use spotenc_proto::domain::{ChunkQuality, Codec, EncodeTask, OutputObject, VideoSettings};
use tracing::warn;

use crate::ffmpeg::{self, codec, filter, format, frame, Rational};
use crate::picture::{tonemap_filters, Turn};
use crate::quality::Meter;
use crate::{ffi, input, Control, Error, Result};
use options::{encoder_options, nvenc_options, qsv_options};

/// The muxer of chunk objects: NUT keeps any time base exactly.
pub const CHUNK_MUXER: &str = "nut";

/// Which hardware a chunk goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hardware {
    /// CPU decode and scale, libx264 / libx265.
    Software,
    /// NVDEC decode and scale_cuda on the GPU with this CUDA ordinal, then
    /// download and libx264 / libx265 (a GPU without NVENC).
    Nvdec { gpu: u32 },
    /// NVDEC decode, scale_cuda and h264_nvenc / hevc_nvenc on the GPU with
    /// this CUDA ordinal, the frames never leaving the GPU. Sources NVDEC
    /// cannot decode are decoded on the CPU and uploaded.
    Nvenc { gpu: u32 },
    /// CPU decode and scale, h264_qsv / hevc_qsv (Intel Quick Sync).
    Qsv,
}

impl Hardware {
    /// The CUDA device that decodes, if any.
    pub fn decode_gpu(self) -> Option<u32> {
        match self {
            Hardware::Nvdec { gpu } | Hardware::Nvenc { gpu } => Some(gpu),
            Hardware::Software | Hardware::Qsv => None,
        }
    }

    /// The FFmpeg encoder for a codec.
    pub fn encoder(self, codec: Codec) -> &'static str {
        match (self, codec) {
            (Hardware::Software | Hardware::Nvdec { .. }, c) => c.software_encoder(),
            (Hardware::Nvenc { .. }, Codec::H264) => "h264_nvenc",
            (Hardware::Nvenc { .. }, Codec::Hevc) => "hevc_nvenc",
            (Hardware::Qsv, Codec::H264) => "h264_qsv",
            (Hardware::Qsv, Codec::Hevc) => "hevc_qsv",
        }
    }
}

/// Whether this FFmpeg build has an encoder by that name.
pub fn has_encoder(name: &str) -> bool {
    crate::init();
    codec::encoder::find_by_name(name).is_some()
}

/// Encodes one chunk with libx264/libx265 and returns the stored object's
/// size, checksum and frame count. The object appears at `task.output` only
/// once it is complete.
pub fn encode_chunk(task: &EncodeTask, ctl: &Control) -> Result<OutputObject> {
    encode_chunk_on(task, ctl, Hardware::Software)
}

/// Encodes one chunk on `hw`, with the task's encoder identities (their
/// operator parameters) when it names them. A hardware encoder that fails
/// to open or fails mid-chunk is an [`Error::Encoder`]: the chunk is never
/// re-encoded with another encoder here, as another family's parameter sets
/// would not stitch with the rendition's other chunks (the worker hands it
/// back instead). NVDEC only decodes, so a chunk whose GPU decode fails is
/// decoded on the CPU instead: its encoder, and so its identity, is the
/// same.
pub fn encode_chunk_on(task: &EncodeTask, ctl: &Control, hw: Hardware) -> Result<OutputObject> {
    match (hw, encode_with(task, ctl, hw)) {
        (Hardware::Nvdec { .. }, Err(Error::Encoder { encoder, reason })) => {
            let msg = format!(
                "{encoder} failed ({reason}); chunk {} is decoded on the CPU instead",
                task.chunk.index
            );
            warn!(chunk = task.chunk.index, "{msg}");
            ffi::log_note(&format!("[spotenc] {msg}\n"));
            encode_with(task, ctl, Hardware::Software)
        }
        (_, result) => result,
    }
}

fn encode_with(task: &EncodeTask, ctl: &Control, hw: Hardware) -> Result<OutputObject> {
    let started = std::time::Instant::now();
    let src = task.input.as_str();
    // The chunk's output, then its further renditions: one decode feeds
    // them all. Each appears at its path only once every one is complete.
    let mut videos = vec![&task.video];
    let mut finals = vec![input::local_path(&task.output)?.to_path_buf()];
    for r in &task.renditions {
        videos.push(&r.video);
        finals.push(input::local_path(&r.output)?.to_path_buf());
    }
    let (frames, quality) = crate::write_all_atomically(&finals, |parts| {
        let targets: Vec<(&VideoSettings, PathBuf)> =
            videos.iter().copied().zip(parts.iter().cloned()).collect();
        // Seek to the keyframe at or before the start; if the demuxer lands
        // after it (inexact seeking in MPEG-TS), back off further, and in
        // the end decode from the beginning.
        let start = task.chunk.start_pts;
        let backoffs: &[Option<i64>] = if task.chunk.start_frame == 0 {
            &[None]
        } else {
            &[Some(0), Some(1), Some(10), Some(60), None]
        };
        for backoff in backoffs {
            if let Some(n) = run(src, &targets, task, *backoff, ctl, hw)? {
                return Ok(n);
            }
        }
        Err(Error::Verify(format!(
            "chunk {}: start frame at pts {start} not found in the source",
            task.chunk.index
        )))
    })?;
    // What ran and for how long, for the coordinator's cost model.
    let encode_ms = started.elapsed().as_millis() as u64;
    let mut out = crate::stored_object(&task.output, &finals[0], frames)?;
    // Each output says which identity made it (the stitch names them).
    let made_by = |i: usize, codec: spotenc_proto::domain::Codec| match task.identities.get(i) {
        Some(id) => id.name(),
        None => hw.encoder(codec).to_string(),
    };
    let mut quality = quality.into_iter();
    out.encoder = made_by(0, task.video.codec);
    out.encode_ms = encode_ms;
    out.quality = quality.next().flatten().map(Box::new);
    for (i, (r, dst)) in task.renditions.iter().zip(&finals[1..]).enumerate() {
        let mut obj = crate::stored_object(&r.output, dst, frames)?;
        obj.encoder = made_by(i + 1, r.video.codec);
        obj.encode_ms = encode_ms;
        obj.quality = quality.next().flatten().map(Box::new);
        out.renditions.push(obj);
    }
    Ok(out)
}

/// What one pass made: the frame count, and each output's quality when
/// measured.
type Made = (u64, Vec<Option<ChunkQuality>>);

/// One decode-encode pass, seeking `backoff_secs` before the chunk start
/// (`None`: decode from the beginning). Returns `Ok(None)` when seeking landed
/// after the chunk's first frame and the caller should seek earlier.
/// Long (about 110 lines): one decode loop with its seek, drop-before-start
/// and flush steps, which share the pipeline.
fn run(
    src: &str,
    targets: &[(&VideoSettings, PathBuf)],
    task: &EncodeTask,
    backoff_secs: Option<i64>,
    ctl: &Control,
    hw: Hardware,
) -> Result<Option<Made>> {
    let mut ictx = input::open_uri(src, ctl)?;
    let index = task.video_stream as usize;
    let stream = ictx.stream(index).ok_or_else(|| Error::BadInput {
        path: task.input.clone(),
        reason: format!("no stream {index}"),
    })?;
    let tb = stream.time_base();
    let rotation = ffi::streams::rotation(&stream).unwrap_or(0.0);
    let mut dctx = codec::context::Context::from_parameters(stream.parameters())
        .map_err(Error::ff("decoder parameters"))?;
    if let Some(gpu) = hw.decode_gpu() {
        let dev = ffi::cuda_device(gpu).map_err(|reason| Error::Encoder {
            encoder: format!("NVDEC on CUDA device {gpu}"),
            reason,
        })?;
        ffi::decode_on(&mut dctx, &dev);
    } else {
        dctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 0,
            ..Default::default()
        });
    }
    let mut decoder = dctx.decoder().video().map_err(Error::ff("open decoder"))?;
    ffi::attribute_codec_log(&decoder);
    if let Some(secs) = backoff_secs {
        let per_sec = i64::from(tb.denominator()) / i64::from(tb.numerator().max(1));
        let ts = task.chunk.start_pts - secs.saturating_mul(per_sec.max(1));
        if ffi::seek_stream_backward(&mut ictx, index, ts).is_err() {
            return Ok(None);
        }
    }

    let mut cut = Cutter {
        task,
        tb,
        targets,
        ctl,
        hw,
        rotation,
        pipelines: Vec::new(),
        started: false,
        done: false,
        too_late: false,
        kept: 0,
        last_pts: None,
    };
    let mut decoded = frame::Video::empty();
    for (stream, packet) in ictx.packets() {
        if stream.index() != index {
            continue;
        }
        // A corrupt packet fails to decode; the frame count check below
        // catches any frame that goes missing because of it.
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            cut.take(&decoded)?;
            if cut.done || cut.too_late {
                break;
            }
        }
        if cut.done || cut.too_late {
            break;
        }
    }
    if cut.too_late {
        return Ok(None);
    }
    if !cut.done {
        // The input ended before the chunk did: truly, or by a failed read.
        input::read_ok(&ictx, ctl, src)?;
        let _ = decoder.send_eof();
        while decoder.receive_frame(&mut decoded).is_ok() && !cut.done && !cut.too_late {
            cut.take(&decoded)?;
        }
        if cut.too_late {
            return Ok(None);
        }
    }
    if cut.pipelines.is_empty() {
        return if cut.started {
            Err(Error::Verify("no frames to encode".into()))
        } else {
            Ok(None)
        };
    }
    let planned = task.chunk.frames();
    let mut quality = Vec::new();
    for pipeline in std::mem::take(&mut cut.pipelines) {
        let (written, q) = pipeline.finish(ctl)?;
        let measured = q.as_ref().map_or(planned, |q| q.frames);
        if written != planned || cut.kept != planned || measured != planned {
            return Err(Error::Verify(format!(
                "chunk {} encoded {written} frames ({measured} measured) from {} decoded, plan says {planned}",
                task.chunk.index, cut.kept
            )));
        }
        quality.push(q);
    }
    Ok(Some((planned, quality)))
}

/// Keeps the frames inside the chunk and feeds them to every rendition's
/// pipeline.
struct Cutter<'a> {
    task: &'a EncodeTask,
    tb: Rational,
    /// Each rendition's settings and the file it is written to.
    targets: &'a [(&'a VideoSettings, PathBuf)],
    hw: Hardware,
    /// The source's display rotation (degrees), applied with `autorotate`.
    rotation: f64,
    ctl: &'a Control,
    pipelines: Vec<Pipeline>,
    started: bool,
    done: bool,
    too_late: bool,
    kept: u64,
    /// The last kept frame's time.
    last_pts: Option<i64>,
}

impl Cutter<'_> {
    fn take(&mut self, decoded: &frame::Video) -> Result<()> {
        self.ctl.check()?;
        let Some(pts) = decoded.timestamp().or(decoded.pts()) else {
            return Ok(());
        };
        let chunk = &self.task.chunk;
        if pts < chunk.start_pts {
            return Ok(());
        }
        if !self.started {
            if pts != chunk.start_pts {
                self.too_late = true;
                return Ok(());
            }
            self.started = true;
        }
        if chunk.end_pts.is_some_and(|end| pts >= end) {
            self.done = true;
            return Ok(());
        }
        // Output frames keep the source's times: two frames at one time (or
        // going back) cannot both be placed, and a muxer would refuse them
        // with a bare "Invalid argument".
        if let Some(last) = self.last_pts.filter(|&l| pts <= l) {
            let secs = |ts: i64| ts as f64 * f64::from(self.tb);
            return Err(Error::BadInput {
                path: self.task.input.clone(),
                reason: format!(
                    "frames are not in time order: one at {:.3} s follows one at {:.3} s \
                     (the source's timestamps are broken)",
                    secs(pts),
                    secs(last)
                ),
            });
        }
        self.last_pts = Some(pts);
        let mut f = decoded.clone();
        f.set_pts(Some(pts - self.task.origin_pts));
        f.set_kind(ffmpeg::picture::Type::None);
        if self.pipelines.is_empty() {
            for (i, (video, part)) in self.targets.iter().enumerate() {
                let params = self.task.identities.get(i).map_or("", |id| &id.params);
                self.pipelines.push(Pipeline::new(
                    &f,
                    self.tb,
                    (video, params),
                    self.task,
                    part,
                    self.hw,
                    self.rotation,
                )?);
            }
        }
        // The buffer source takes the frame's references, leaving it empty:
        // every pipeline but the last gets its own reference.
        let last = self.pipelines.len() - 1;
        for (i, p) in self.pipelines.iter_mut().enumerate() {
            if i == last {
                p.push(Some(&f), self.ctl)?;
            } else {
                p.push(Some(&f.clone()), self.ctl)?;
            }
        }
        self.kept += 1;
        self.ctl.set_frames(self.kept);
        Ok(())
    }
}

pub use spotenc_proto::domain::output_size;

/// Filter graph (scale, convert to yuv420p) plus encoder plus chunk muxer.
struct Pipeline {
    graph: filter::Graph,
    encoder: codec::encoder::video::Encoder,
    octx: format::context::Output,
    enc_tb: Rational,
    ost_tb: Rational,
    packets: u64,
    encoder_name: &'static str,
    /// Measures the output against the frames the encoder is given.
    meter: Option<Meter>,
}

impl Pipeline {
    /// Long (about 215 lines) on purpose: it opens the decoder, the filter
    /// graph and one encoder and muxer per rendition in the order FFmpeg
    /// needs, each step reading what the one before opened; split, the
    /// pieces would pass the half-built pipeline around.
    fn new(
        first: &frame::Video,
        tb: Rational,
        (video, params): (&VideoSettings, &str),
        task: &EncodeTask,
        part: &Path,
        hw: Hardware,
        rotation: f64,
    ) -> Result<Self> {
        let turn = if video.autorotate {
            Turn::of(rotation)
        } else {
            Turn::None
        };
        let (fw, fh) = if turn.swaps() {
            (first.height(), first.width())
        } else {
            (first.width(), first.height())
        };
        let (w, h) = output_size(fw, fh, video.max_size, video.allow_upscale);
        let sar = match first.aspect_ratio() {
            r if r.numerator() > 0 && r.denominator() > 0 => r,
            _ => Rational::new(1, 1),
        };
        let out_sar = if turn.swaps() {
            Rational::new(sar.denominator(), sar.numerator())
        } else {
            sar
        };
        let tonemap = video.tonemap && ffi::streams::is_hdr_frame(first);
        // Filters on the decoded picture before it is scaled: the display
        // rotation applied, HDR tone-mapped to BT.709 SDR.
        let mut pre = turn.filter().to_string();
        if tonemap {
            let deep = video.depth_for(8) > 8;
            pre.push_str(&tonemap_filters(if deep {
                "yuv420p10le"
            } else {
                "yuv420p"
            }));
        }
        let args = format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect={}/{}",
            first.width(),
            first.height(),
            ffmpeg::ffi::AVPixelFormat::from(first.format()) as i32,
            tb.numerator(),
            tb.denominator(),
            sar.numerator(),
            sar.denominator()
        );
        let on_gpu = ffi::is_cuda_frame(first);
        let deep = video.depth_for(if tonemap {
            8
        } else {
            ffi::streams::frame_depth(first)
        }) > 8;
        // A full-range source stays full range through the scaler.
        let range = if ffi::streams::is_full_range(first) {
            ":out_range=full"
        } else {
            ""
        };
        // QSV takes NV12 (P010 at 10 bits); NVENC takes the GPU frames as
        // they are; the rest take planar 4:2:0, 8 or 10 bits.
        // GPU frames stay there for NVENC unless a CPU filter needs them.
        let gpu_only = on_gpu && pre.is_empty() && matches!(hw, Hardware::Nvenc { .. });
        let (pix, spec) = match (hw, on_gpu, deep) {
            (Hardware::Nvenc { .. }, true, false) if gpu_only => {
                (format::Pixel::CUDA, format!("scale_cuda={w}:{h}"))
            }
            (Hardware::Nvenc { .. }, true, true) if gpu_only => (
                format::Pixel::CUDA,
                format!("scale_cuda={w}:{h}:format=p010le"),
            ),
            (_, true, _) => {
                let sw = if deep { "yuv420p10le" } else { "yuv420p" };
                (
                    if deep {
                        format::Pixel::YUV420P10LE
                    } else {
                        format::Pixel::YUV420P
                    },
                    if pre.is_empty() {
                        format!(
                            "scale_cuda={w}:{h},hwdownload,format=nv12|p010le|p016le|yuv444p|yuv444p16le,format={sw}"
                        )
                    } else {
                        // Rotation and tone mapping run on the CPU.
                        format!(
                            "hwdownload,format=nv12|p010le|p016le|yuv444p|yuv444p16le,{pre}scale={w}:{h}:flags=bicubic{range},format={sw}"
                        )
                    },
                )
            }
            (Hardware::Qsv, false, false) => (
                format::Pixel::NV12,
                format!("{pre}scale={w}:{h}:flags=bicubic{range},format=nv12"),
            ),
            (Hardware::Qsv, false, true) => (
                format::Pixel::P010LE,
                format!("{pre}scale={w}:{h}:flags=bicubic{range},format=p010le"),
            ),
            (_, false, false) => (
                format::Pixel::YUV420P,
                format!("{pre}scale={w}:{h}:flags=bicubic{range},format=yuv420p"),
            ),
            (_, false, true) => (
                format::Pixel::YUV420P10LE,
                format!("{pre}scale={w}:{h}:flags=bicubic{range},format=yuv420p10le"),
            ),
        };
        let mut graph = if on_gpu {
            gpu_graph(&args, &spec, first).map_err(|e| Error::Encoder {
                encoder: "scale_cuda".into(),
                reason: e.to_string(),
            })?
        } else {
            crate::filter_graph("buffer", &args, &spec)?
        };
        let ff = Error::ff;

        let encoder_name = hw.encoder(video.codec);
        let enc_codec = codec::encoder::find_by_name(encoder_name).ok_or_else(|| {
            Error::Unsupported(format!(
                "encoder {encoder_name} is not in this FFmpeg build"
            ))
        })?;
        let mut octx =
            format::output_as(part, super::encode::CHUNK_MUXER).map_err(ff("open chunk output"))?;
        let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);

        let mut enc = codec::context::Context::new_with_codec(enc_codec)
            .encoder()
            .video()
            .map_err(ff("encoder context"))?;
        let rate = Rational::new(task.source_frame_rate.num, task.source_frame_rate.den);
        let rate = if rate.numerator() > 0 && rate.denominator() > 0 {
            rate
        } else {
            Rational::new(25, 1)
        };
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(pix);
        enc.set_time_base(tb);
        enc.set_frame_rate(Some(rate));
        // The output's display aspect stays the source's: scaling keeps the
        // aspect ratio, so the sample aspect ratio carries over.
        enc.set_aspect_ratio(out_sar);
        // The source's colour description goes into the stream (VUI) and,
        // through the chunk's parameters, into the output's container.
        ffi::streams::copy_color(&mut enc, first);
        if tonemap {
            ffi::streams::set_bt709(&mut enc);
        }
        let fps = f64::from(rate.numerator()) / f64::from(rate.denominator());
        let gop = video
            .keyint
            .unwrap_or_else(|| (2.0 * fps).round().max(1.0) as u32);
        enc.set_gop(gop);
        let mut flags = codec::Flags::CLOSED_GOP;
        if global_header {
            flags |= codec::Flags::GLOBAL_HEADER;
        }
        ffi::add_codec_flags(&mut enc, flags);
        if pix == format::Pixel::CUDA {
            let mut sink = graph.get("out").expect("out");
            ffi::encode_hw_frames_of(&mut enc, &mut sink).map_err(|e| Error::Encoder {
                encoder: encoder_name.into(),
                reason: format!("no GPU frames to encode: {e}"),
            })?;
        }
        let opts = match hw {
            Hardware::Software | Hardware::Nvdec { .. } => {
                let hdr = if tonemap {
                    vec![]
                } else {
                    ffi::streams::x265_hdr_params(first)
                };
                encoder_options(video, gop, &hdr, params)
            }
            Hardware::Nvenc { gpu } => nvenc_options(video, gpu),
            Hardware::Qsv => qsv_options(video),
        };
        let encoder = enc
            .open_as_with(enc_codec, opts)
            .map_err(|e| Error::Encoder {
                encoder: encoder_name.into(),
                reason: format!("open failed: {e}"),
            })?;
        ffi::attribute_codec_log(&encoder);
        let enc_tb = tb;
        {
            let mut ost = octx.add_stream(enc_codec).map_err(ff("add chunk stream"))?;
            ost.set_parameters(&encoder);
            ost.set_time_base(enc_tb);
        }
        // NUT stores no DTS and the stitcher rebuilds it from the PTS; keep
        // the PTS exactly as encoded instead of shifting the chunk so its
        // (negative, B-frame) DTS starts at 0.
        let mut mux_opts = ffmpeg::Dictionary::new();
        mux_opts.set("avoid_negative_ts", "disabled");
        octx.write_header_with(mux_opts)
            .map_err(ff("write chunk header"))?;
        let ost_tb = octx.stream(0).expect("one stream").time_base();
        let meter = if task.measure_quality {
            let params = octx.stream(0).expect("one stream").parameters();
            Some(Meter::new(params, enc_tb, rate)?)
        } else {
            None
        };
        Ok(Pipeline {
            graph,
            encoder,
            octx,
            enc_tb,
            ost_tb,
            packets: 0,
            encoder_name,
            meter,
        })
    }

    /// Feeds one frame, or `None` to flush.
    fn push(&mut self, f: Option<&frame::Video>, ctl: &Control) -> Result<()> {
        {
            let mut src = self.graph.get("in").expect("in");
            let mut src = src.source();
            match f {
                Some(f) => src.add(f).map_err(Error::ff("filter input"))?,
                None => src.flush().map_err(Error::ff("filter flush"))?,
            }
        }
        loop {
            let mut filtered = frame::Video::empty();
            let got = self
                .graph
                .get("out")
                .expect("out")
                .sink()
                .frame(&mut filtered);
            if got.is_err() {
                break;
            }
            let sent = if ctl.damages_frames() {
                damaged(&filtered)
            } else {
                None
            };
            self.encoder
                .send_frame(sent.as_ref().unwrap_or(&filtered))
                .map_err(|e| self.encoder_error(e))?;
            // The encoder took its own reference: the meter keeps this one.
            if let Some(meter) = &mut self.meter {
                meter.given(filtered)?;
            }
            self.drain(ctl)?;
        }
        Ok(())
    }

    fn encoder_error(&self, e: ffmpeg::Error) -> Error {
        Error::Encoder {
            encoder: self.encoder_name.into(),
            reason: e.to_string(),
        }
    }

    /// Writes what the encoder has ready; every packet counts as progress
    /// (an encoder's flush emits many without taking a frame).
    fn drain(&mut self, ctl: &Control) -> Result<()> {
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            ctl.progress
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(meter) = &mut self.meter {
                meter.packet(&packet)?;
            }
            packet.set_stream(0);
            packet.rescale_ts(self.enc_tb, self.ost_tb);
            packet
                .write_interleaved(&mut self.octx)
                .map_err(Error::ff("write chunk packet"))?;
            self.packets += 1;
        }
        Ok(())
    }

    fn finish(mut self, ctl: &Control) -> Result<(u64, Option<ChunkQuality>)> {
        self.push(None, ctl)?;
        self.encoder.send_eof().map_err(|e| self.encoder_error(e))?;
        self.drain(ctl)?;
        self.octx
            .write_trailer()
            .map_err(Error::ff("write chunk trailer"))?;
        let quality = self.meter.map(Meter::finish).transpose()?;
        Ok((self.packets, quality))
    }
}

/// The test hook's damage ([`Control::damage_frames`](crate::Control::damage_frames)): a copy of a CPU
/// frame with its luma inverted, the same size and count, as a failing
/// encoder might emit. `None` for GPU frames.
fn damaged(f: &frame::Video) -> Option<frame::Video> {
    if ffi::is_cuda_frame(f) {
        return None;
    }
    let mut copy = f.clone();
    let deep = f.format() == ffmpeg::format::Pixel::YUV420P10LE
        || f.format() == ffmpeg::format::Pixel::P010LE;
    let luma = copy.data_mut(0);
    if deep {
        for px in luma.chunks_exact_mut(2) {
            let v = u16::from_le_bytes([px[0], px[1]]);
            px.copy_from_slice(&(1023u16.saturating_sub(v)).to_le_bytes());
        }
    } else {
        for b in luma {
            *b = 255 - *b;
        }
    }
    Some(copy)
}

/// A filter graph whose source takes the GPU frames of `first` (their
/// frames context must be known before the graph is configured).
fn gpu_graph(
    args: &str,
    spec: &str,
    first: &frame::Video,
) -> std::result::Result<filter::Graph, ffmpeg::Error> {
    let mut graph = filter::Graph::new();
    let buffer = filter::find("buffer").ok_or(ffmpeg::Error::FilterNotFound)?;
    let sink = filter::find("buffersink").ok_or(ffmpeg::Error::FilterNotFound)?;
    graph.add(&buffer, "in", args)?;
    ffi::source_takes_hw_frames(&mut graph.get("in").expect("just added"), first)?;
    graph.add(&sink, "out", "")?;
    graph.output("in", 0)?.input("out", 0)?.parse(spec)?;
    graph.validate()?;
    Ok(graph)
}
