//! Per-chunk quality, measured while the chunk is encoded: the encoder's
//! packets are decoded as they come out and each picture is compared with
//! the frame the encoder was given (the source at the output's size and bit
//! depth) by FFmpeg's `psnr` and `ssim` filters, the same code as
//! `ffmpeg -lavfi psnr/ssim`. Only a compact summary is kept (see
//! [`ChunkQuality`]).
//!
//! VMAF is not measured: Debian's FFmpeg has no libvmaf, and FFmpeg 5.1's
//! `libvmaf` filter gives its score only in its log when it closes, not per
//! frame. [`vmaf_unavailable`] says which of the two applies.

use std::collections::VecDeque;

use spotenc_proto::domain::{mse_of, psnr_of, ChunkQuality};

use crate::ffmpeg::{self, codec, filter, frame, Rational};
use crate::{ffi, Error, Result};

/// Why VMAF is not measured with this FFmpeg build.
pub fn vmaf_unavailable() -> &'static str {
    crate::init();
    if filter::find("libvmaf").is_some() {
        "this FFmpeg's libvmaf filter reports no per-frame scores"
    } else {
        "this FFmpeg build has no libvmaf"
    }
}

/// One frame's scores: relative mean squared errors (to the peak squared)
/// and SSIM.
#[derive(Debug, Clone, Copy)]
struct Score {
    pts: i64,
    mse: f64,
    mse_y: f64,
    ssim: f64,
}

/// Measures one output on a thread of its own, beside the encoder: the
/// encoding thread sends it the frames it gives the encoder and the packets
/// the encoder makes, in that order, and gets the summary at the end. (On
/// the encoding thread, decoding and comparing cost x264 medium at 1080p
/// 18% more wall time here; beside it, they use what the encoder leaves
/// idle.)
pub(crate) struct Meter {
    tx: Option<std::sync::mpsc::SyncSender<Msg>>,
    thread: Option<std::thread::JoinHandle<Result<ChunkQuality>>>,
}

/// What the encoding thread sends the meter's.
enum Msg {
    Given(frame::Video),
    Packet(ffmpeg::Packet),
    /// No more: flush and summarise.
    Finish,
}

impl Meter {
    /// A meter for the stream `params` describes (the encoder's output, with
    /// its extradata), whose packets and frames are in `tb`.
    pub(crate) fn new(
        params: codec::Parameters,
        tb: Rational,
        frame_rate: Rational,
    ) -> Result<Self> {
        let scorer = Scorer::new(params, tb, frame_rate)?;
        // Bounded: the encoder waits rather than queue frames without end.
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let thread = std::thread::Builder::new()
            .name("quality".into())
            .spawn(move || scorer.run(rx))
            .map_err(|e| Error::Io {
                path: "quality meter thread".into(),
                source: e,
            })?;
        Ok(Meter {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Records a frame the encoder was given (kept until its picture comes
    /// back); GPU frames are copied to system memory here.
    pub(crate) fn given(&mut self, f: frame::Video) -> Result<()> {
        let f = if ffi::is_cuda_frame(&f) {
            ffi::download_frame(&f).map_err(Error::ff("download a frame to measure"))?
        } else {
            f
        };
        self.send(Msg::Given(f))
    }

    /// One of the encoder's packets, to decode and score.
    pub(crate) fn packet(&mut self, packet: &ffmpeg::Packet) -> Result<()> {
        self.send(Msg::Packet(packet.clone()))
    }

    /// The chunk's summary, once every frame was scored.
    pub(crate) fn finish(mut self) -> Result<ChunkQuality> {
        self.send(Msg::Finish)?;
        self.tx = None;
        self.join()
    }

    /// Sends to the meter's thread; if it stopped, its error.
    fn send(&mut self, msg: Msg) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
        if sent {
            Ok(())
        } else {
            self.tx = None;
            Err(self
                .join()
                .err()
                .unwrap_or_else(|| Error::Verify("the quality meter stopped early".into())))
        }
    }

    fn join(&mut self) -> Result<ChunkQuality> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Verify("the quality meter panicked".into())),
            None => Err(Error::Verify("the quality meter stopped early".into())),
        }
    }
}

/// Decodes one output's packets and scores each picture against the frame
/// the encoder was given for it (on the meter's thread).
struct Scorer {
    decoder: codec::decoder::Video,
    /// Frames given to the encoder and not yet matched, in presentation
    /// order (an encoder returns pictures in that order once decoded).
    given: VecDeque<frame::Video>,
    /// `[main][ref]` → psnr → ssim; made at the first pair.
    graph: Option<filter::Graph>,
    tb: Rational,
    frame_seconds: f64,
    scores: Vec<Score>,
    bits: u64,
    size: (u32, u32),
}

impl Scorer {
    fn new(params: codec::Parameters, tb: Rational, frame_rate: Rational) -> Result<Self> {
        let mut ctx = codec::context::Context::from_parameters(params)
            .map_err(Error::ff("quality decoder parameters"))?;
        // One thread: the meter already runs beside the encoder, which
        // keeps the cores busy; and every picture of decoder delay is a
        // frame kept in `given` (4K 10-bit: 24 MB).
        ctx.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            count: 1,
            ..Default::default()
        });
        let mut decoder = ctx
            .decoder()
            .video()
            .map_err(Error::ff("open quality decoder"))?;
        decoder.set_packet_time_base(tb);
        let fps = f64::from(frame_rate);
        Ok(Scorer {
            size: (decoder.width(), decoder.height()),
            decoder,
            given: VecDeque::new(),
            graph: None,
            tb,
            frame_seconds: if fps > 0.0 { 1.0 / fps } else { 1.0 / 25.0 },
            scores: Vec::new(),
            bits: 0,
        })
    }

    /// Takes messages until told to finish (then summarises) or until the
    /// encoding thread is gone (an encode that failed: nothing to say).
    fn run(mut self, rx: std::sync::mpsc::Receiver<Msg>) -> Result<ChunkQuality> {
        for msg in rx {
            match msg {
                Msg::Given(f) => self.given.push_back(f),
                Msg::Packet(p) => self.packet(&p)?,
                Msg::Finish => return self.finish(),
            }
        }
        Err(Error::Cancelled)
    }

    /// Decodes one of the encoder's packets and scores what it shows.
    fn packet(&mut self, packet: &ffmpeg::Packet) -> Result<()> {
        self.bits += packet.size() as u64 * 8;
        self.decoder
            .send_packet(packet)
            .map_err(Error::ff("decode an encoded packet to measure it"))?;
        self.receive()
    }

    fn receive(&mut self) -> Result<()> {
        let mut decoded = frame::Video::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            let Some(mut given) = self.given.pop_front() else {
                return Err(Error::Verify(
                    "the encoder made more pictures than it was given frames".into(),
                ));
            };
            let pts = given.pts();
            decoded.set_pts(pts);
            self.compare(&mut decoded, &mut given)?;
            decoded = frame::Video::empty();
        }
        Ok(())
    }

    fn compare(&mut self, main: &mut frame::Video, given: &mut frame::Video) -> Result<()> {
        if self.graph.is_none() {
            self.graph = Some(compare_graph(main, given, self.tb)?);
        }
        let graph = self.graph.as_mut().expect("made above");
        graph
            .get("main")
            .expect("main")
            .source()
            .add(main)
            .map_err(Error::ff("quality filter input"))?;
        graph
            .get("ref")
            .expect("ref")
            .source()
            .add(given)
            .map_err(Error::ff("quality filter input"))?;
        self.collect()
    }

    /// Reads the scores of the frames the filters have finished.
    fn collect(&mut self) -> Result<()> {
        let Some(graph) = self.graph.as_mut() else {
            return Ok(());
        };
        let mut out = frame::Video::empty();
        while graph
            .get("out")
            .expect("out")
            .sink()
            .frame(&mut out)
            .is_ok()
        {
            let meta = out.metadata();
            let num = |key: &str| {
                meta.get(key)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .ok_or_else(|| Error::Verify(format!("the quality filters gave no {key}")))
            };
            self.scores.push(Score {
                pts: out.pts().unwrap_or_default(),
                mse: mse_of(num("lavfi.psnr.psnr_avg")?),
                mse_y: mse_of(num("lavfi.psnr.psnr.y")?),
                ssim: num("lavfi.ssim.All")?,
            });
        }
        Ok(())
    }

    /// Flushes the decoder and the filters, checks that every frame was
    /// scored, and summarises.
    fn finish(mut self) -> Result<ChunkQuality> {
        let _ = self.decoder.send_eof();
        self.receive()?;
        if let Some(graph) = self.graph.as_mut() {
            for name in ["main", "ref"] {
                graph
                    .get(name)
                    .expect("source")
                    .source()
                    .flush()
                    .map_err(Error::ff("quality filter flush"))?;
            }
        }
        self.collect()?;
        if !self.given.is_empty() {
            return Err(Error::Verify(format!(
                "{} frames given to the encoder came back as no picture",
                self.given.len()
            )));
        }
        Ok(summarise(
            &self.scores,
            f64::from(self.tb),
            self.frame_seconds,
            self.bits,
            self.size,
        ))
    }
}

/// `[main]` (the decoded output) and `[ref]` (what the encoder was given,
/// converted to the output's pixel format if it differs, as NV12 for QSV)
/// through psnr and then ssim; both add their scores to the frame's
/// metadata.
fn compare_graph(main: &frame::Video, given: &frame::Video, tb: Rational) -> Result<filter::Graph> {
    let args = |f: &frame::Video| {
        format!(
            "video_size={}x{}:pix_fmt={}:time_base={}/{}:pixel_aspect=1/1",
            f.width(),
            f.height(),
            ffmpeg::ffi::AVPixelFormat::from(f.format()) as i32,
            tb.numerator(),
            tb.denominator().max(1),
        )
    };
    let pix = main.format().descriptor().map_or("yuv420p", |d| d.name());
    let spec = format!("[ref]format={pix},split[r1][r2];[main][r1]psnr[m2];[m2][r2]ssim[out]");
    let ff = |what: &str| Error::ff(format!("quality filter graph: {what}"));
    let find = |name: &str| {
        filter::find(name).ok_or_else(|| Error::Unsupported(format!("no {name} filter")))
    };
    let mut graph = filter::Graph::new();
    // The meter has a thread of its own beside a busy encoder: more would
    // only take turns with it.
    ffi::filter_on_one_thread(&mut graph);
    graph
        .add(&find("buffer")?, "main", &args(main))
        .map_err(ff("main"))?;
    graph
        .add(&find("buffer")?, "ref", &args(given))
        .map_err(ff("ref"))?;
    graph
        .add(&find("buffersink")?, "out", "")
        .map_err(ff("sink"))?;
    graph
        .output("main", 0)
        .and_then(|p| p.output("ref", 0))
        .and_then(|p| p.input("out", 0))
        .and_then(|p| p.parse(&spec))
        .map_err(ff("parse"))?;
    graph.validate().map_err(ff("validate"))?;
    Ok(graph)
}

/// The chunk's summary from its frames' scores (`tb`: seconds per pts
/// unit).
fn summarise(
    scores: &[Score],
    tb: f64,
    frame_seconds: f64,
    bits: u64,
    (width, height): (u32, u32),
) -> ChunkQuality {
    if scores.is_empty() {
        return ChunkQuality::default();
    }
    let secs = |s: &Score| s.pts as f64 * tb;
    let start = secs(&scores[0]);
    let end = secs(&scores[scores.len() - 1]) + frame_seconds;
    let seconds = (end - start).max(frame_seconds);
    let mean_psnr = |of: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = of.fold((0.0, 0u64), |(s, n), m| (s + m, n + 1));
        psnr_of(if n == 0 { 0.0 } else { sum / n as f64 })
    };
    let mut frame_psnr: Vec<f64> = scores.iter().map(|s| psnr_of(s.mse)).collect();
    frame_psnr.sort_by(f64::total_cmp);
    let p5 = frame_psnr[((frame_psnr.len() - 1) as f64 * 0.05).floor() as usize];
    let ssim_sum: f64 = scores.iter().map(|s| s.ssim).sum();
    ChunkQuality {
        frames: scores.len() as u64,
        seconds,
        start_seconds: start,
        width,
        height,
        psnr: mean_psnr(&mut scores.iter().map(|s| s.mse)),
        psnr_y: mean_psnr(&mut scores.iter().map(|s| s.mse_y)),
        psnr_min: frame_psnr[0],
        psnr_p5: p5,
        psnr_first: mean_psnr(
            &mut scores
                .iter()
                .filter(|s| secs(s) < start + 1.0)
                .map(|s| s.mse),
        ),
        psnr_last: mean_psnr(
            &mut scores
                .iter()
                .filter(|s| secs(s) >= end - 1.0)
                .map(|s| s.mse),
        ),
        ssim: ssim_sum / scores.len() as f64,
        ssim_min: scores.iter().map(|s| s.ssim).fold(f64::INFINITY, f64::min),
        bitrate_bps: (bits as f64 / seconds).round() as u64,
        vmaf: None,
        vmaf_unavailable: vmaf_unavailable().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(pts: i64, psnr: f64) -> Score {
        Score {
            pts,
            mse: mse_of(psnr),
            mse_y: mse_of(psnr),
            ssim: 0.9,
        }
    }

    #[test]
    fn the_summary_averages_errors_not_decibels() {
        // 2 s at 10 fps: the first second at 40 dB, the second at 30 dB.
        let scores: Vec<Score> = (0..20)
            .map(|i| score(i, if i < 10 { 40.0 } else { 30.0 }))
            .collect();
        let q = summarise(&scores, 0.1, 0.1, 2_000_000, (64, 48));
        assert!((q.seconds - 2.0).abs() < 1e-9);
        assert!((q.psnr_first - 40.0).abs() < 1e-9);
        assert!((q.psnr_last - 30.0).abs() < 1e-9);
        // 10·log10(2 / (1e-4 + 1e-3)) = 32.596 dB, not the 35 dB mean.
        assert!((q.psnr - 32.596).abs() < 1e-3, "{}", q.psnr);
        assert_eq!(q.psnr_min, 30.0);
        assert_eq!(q.bitrate_bps, 1_000_000);
        assert_eq!(q.frames, 20);
    }

    #[test]
    fn a_lossless_chunk_is_capped() {
        let q = summarise(&[score(0, f64::INFINITY)], 1.0, 1.0, 8, (2, 2));
        assert_eq!(q.psnr, ChunkQuality::LOSSLESS_DB);
    }
}
