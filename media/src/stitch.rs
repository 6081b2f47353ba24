//! Verify the chunks, then remux them with the audio tracks and what the
//! source carries (tags, dispositions, subtitles, attachments, chapters;
//! see `carry`) into the output.
//!
//! Every chunk is checked before anything is written: present, the size and
//! SHA-256 the encoder reported, the planned frame count, and the same codec
//! parameters as the first chunk. Packets are copied, never re-encoded; they
//! already carry the job's timeline, so stitching is a merge by time.

use std::collections::HashMap;
use std::path::Path;

use spotenc_proto::domain::{Container, OutputObject, StitchTask};

use crate::ffmpeg::{self, codec, format, Rational};
use crate::{ffi, input, Control, Error, Result};

/// Checks one stored object against what its task reported.
pub fn verify_object(what: &str, obj: &OutputObject) -> Result<()> {
    let path = input::local_path(&obj.path)?;
    if !path.exists() {
        return Err(Error::Verify(format!("{what} is missing at {}", obj.path)));
    }
    let (size, sha) = crate::file_digest(path)?;
    if size != obj.size_bytes {
        return Err(Error::Verify(format!(
            "{what} is {size} bytes, expected {}",
            obj.size_bytes
        )));
    }
    if sha != obj.sha256 {
        return Err(Error::Verify(format!("{what} checksum mismatch")));
    }
    Ok(())
}

/// The presentation timestamps of the first stream of a stored object, in
/// decode order, with that stream's time base.
fn stream_pts(path: &Path) -> Result<(Vec<i64>, Rational)> {
    let mut ictx = input::open(path)?;
    let tb = ictx.stream(0).expect("stream").time_base();
    let pts = ictx
        .packets()
        .filter(|(s, _)| s.index() == 0)
        .map(|(_, p)| p.pts().or(p.dts()).unwrap_or(0))
        .collect();
    Ok((pts, tb))
}

/// A valid DTS for every packet, in decode order, from the PTS alone.
///
/// With `sorted` the PTS in presentation order and `d` the deepest reorder
/// (how many packets any packet is decoded ahead of its presentation rank),
/// packet `i` gets `sorted[i - d]`: strictly increasing, and never after its
/// own PTS. Chunks do not store DTS, and their own would restart at each
/// chunk boundary.
fn rebuild_dts(decode_order: &[i64], sorted: &[i64]) -> Vec<i64> {
    let rank: HashMap<i64, usize> = sorted.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let d = decode_order
        .iter()
        .enumerate()
        .map(|(i, p)| i.saturating_sub(rank[p]))
        .max()
        .unwrap_or(0);
    let step = match sorted {
        [a, b, ..] => (b - a).max(1),
        _ => 1,
    };
    (0..decode_order.len())
        .map(|i| {
            if i >= d {
                sorted[i - d]
            } else {
                sorted[0] - (d - i) as i64 * step
            }
        })
        .collect()
}

/// Each frame's duration from the next frame's timestamp. Chunk containers
/// do not keep durations, and MP4 needs them: its edit list drops a last
/// frame without one. The final frame lasts as long as the one before it.
fn frame_durations(all_pts: &[i64]) -> HashMap<i64, i64> {
    let mut map = HashMap::with_capacity(all_pts.len());
    let mut last = 1;
    for w in all_pts.windows(2) {
        last = (w[1] - w[0]).max(1);
        map.insert(w[0], last);
    }
    if let Some(&p) = all_pts.last() {
        map.insert(p, last);
    }
    map
}

/// Verifies every chunk and the audio track, then writes the stitched output
/// to `task.output` and returns it.
pub fn stitch(task: &StitchTask, ctl: &Control) -> Result<OutputObject> {
    if task.chunks.is_empty() {
        return Err(Error::Verify("no chunks to stitch".into()));
    }
    let mut first_extradata: Option<Vec<u8>> = None;
    let mut first_tb: Option<Rational> = None;
    let mut all_pts: Vec<i64> = Vec::new();
    let mut decode_order: Vec<i64> = Vec::new();
    for (i, chunk) in task.chunks.iter().enumerate() {
        ctl.check()?;
        let what = format!("chunk {i}");
        verify_object(&what, chunk)?;
        let path = input::local_path(&chunk.path)?;
        let (pts, tb) = stream_pts(path)?;
        decode_order.extend_from_slice(&pts);
        let mut pts = pts;
        pts.sort_unstable();
        pts.dedup();
        let frames = pts.len() as u64;
        if *first_tb.get_or_insert(tb) != tb {
            return Err(Error::Verify(format!("{what} has a different time base")));
        }
        if let (Some(&prev), Some(&first)) = (all_pts.last(), pts.first()) {
            if first <= prev {
                return Err(Error::Verify(format!(
                    "{what} overlaps the chunk before it"
                )));
            }
        }
        all_pts.extend(pts);
        if frames != chunk.frames {
            return Err(Error::Verify(format!(
                "{what} has {frames} frames, expected {}",
                chunk.frames
            )));
        }
        let ictx = input::open(path)?;
        let extradata = ffi::extradata(&ictx.stream(0).expect("stream").parameters());
        match &first_extradata {
            None => first_extradata = Some(extradata),
            Some(first) if *first != extradata => {
                let by = |c: &OutputObject| match c.encoder.as_str() {
                    "" => "an unnamed encoder".to_string(),
                    e => e.to_string(),
                };
                return Err(Error::Verify(format!(
                    "{what} has codec parameters (SPS/PPS/VPS) that differ from chunk 0: \
                     {what} was encoded by {}, chunk 0 by {}; one track holds one \
                     parameter set, so every chunk of a rendition must come from one \
                     encoder identity",
                    by(chunk),
                    by(&task.chunks[0])
                )));
            }
            Some(_) => {}
        }
    }
    let planned: u64 = task.chunks.iter().map(|c| c.frames).sum();
    if planned != task.expected_frames {
        return Err(Error::Verify(format!(
            "chunks hold {planned} frames, the job expects {}",
            task.expected_frames
        )));
    }
    for (i, audio) in task.audio_objects().enumerate() {
        verify_object(&format!("audio track {i}"), audio)?;
    }

    let dst = input::local_path(&task.output)?.to_path_buf();
    if decode_order.len() != all_pts.len() {
        return Err(Error::Verify("chunks repeat a timestamp".into()));
    }
    let timing = VideoTiming {
        durations: frame_durations(&all_pts),
        dts: rebuild_dts(&decode_order, &all_pts),
    };
    let frames = mux(task, &dst, timing, ctl).inspect_err(|_| {
        let _ = std::fs::remove_file(&dst);
    })?;
    if frames != task.expected_frames {
        let _ = std::fs::remove_file(&dst);
        return Err(Error::Verify(format!(
            "stitched {frames} frames, expected {}",
            task.expected_frames
        )));
    }
    crate::stored_object(&task.output, &dst, frames)
}

/// A source of packets for one output stream: the chunks in order, or the
/// audio track.
struct Feed {
    inputs: Vec<format::context::Input>,
    current: usize,
    /// Packets held in memory (subtitles), used once `inputs` is empty.
    queued: std::collections::VecDeque<ffmpeg::Packet>,
    params: Option<codec::Parameters>,
    out_index: usize,
    in_tb: Rational,
    out_tb: Rational,
    next: Option<ffmpeg::Packet>,
    last_dts: Option<i64>,
    /// Rebuilt timing (video only).
    timing: Option<VideoTiming>,
    /// The source's nominal frame rate (video only).
    frame_rate: Option<Rational>,
    written: usize,
}

/// Video packet timing the chunks do not store.
struct VideoTiming {
    /// By PTS.
    durations: HashMap<i64, i64>,
    /// By decode-order index.
    dts: Vec<i64>,
}

impl VideoTiming {
    /// The most common frame duration as a rate, for containers that store
    /// a default frame duration.
    fn frame_rate(&self, tb: Rational) -> Option<Rational> {
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for d in self.durations.values() {
            *counts.entry(*d).or_default() += 1;
        }
        let (dur, _) = counts.into_iter().max_by_key(|(d, n)| (*n, *d))?;
        let den = i64::from(tb.numerator()) * dur;
        let num = i64::from(tb.denominator());
        (den > 0 && den <= i64::from(i32::MAX))
            .then(|| Rational::new(num as i32, den as i32).reduce())
    }
}

impl Feed {
    fn new(paths: &[&Path]) -> Result<Self> {
        let inputs = paths
            .iter()
            .map(|p| input::open(p))
            .collect::<Result<Vec<_>>>()?;
        let in_tb = inputs[0].stream(0).expect("stream").time_base();
        Ok(Feed::with(inputs, vec![], None, in_tb))
    }

    /// A feed of packets already read, in `tb`.
    fn of_packets(params: codec::Parameters, tb: Rational, packets: Vec<ffmpeg::Packet>) -> Self {
        Feed::with(vec![], packets, Some(params), tb)
    }

    fn with(
        inputs: Vec<format::context::Input>,
        queued: Vec<ffmpeg::Packet>,
        params: Option<codec::Parameters>,
        in_tb: Rational,
    ) -> Self {
        Feed {
            inputs,
            current: 0,
            queued: queued.into(),
            params,
            out_index: 0,
            in_tb,
            out_tb: in_tb,
            next: None,
            last_dts: None,
            timing: None,
            frame_rate: None,
            written: 0,
        }
    }

    fn parameters(&self) -> codec::Parameters {
        match &self.params {
            Some(p) => p.clone(),
            None => self.inputs[0].stream(0).expect("stream").parameters(),
        }
    }

    /// Loads the next packet, moving on to the next input at the end of one.
    fn advance(&mut self) -> Result<()> {
        self.next = None;
        if self.inputs.is_empty() {
            self.next = self.queued.pop_front();
            return Ok(());
        }
        while self.current < self.inputs.len() {
            let mut p = ffmpeg::Packet::empty();
            match p.read(&mut self.inputs[self.current]) {
                Ok(()) => {
                    if p.stream() != 0 {
                        continue;
                    }
                    self.next = Some(p);
                    return Ok(());
                }
                Err(ffmpeg::Error::Eof) => self.current += 1,
                Err(e) => return Err(Error::ff("read chunk")(e)),
            }
        }
        Ok(())
    }

    fn next_dts(&self, p: &ffmpeg::Packet) -> i64 {
        match &self.timing {
            Some(t) => t.dts.get(self.written).copied().unwrap_or(i64::MAX),
            None => p.dts().or(p.pts()).unwrap_or(0),
        }
    }

    /// The next packet's decode time in seconds, for merging.
    fn next_time(&self) -> Option<f64> {
        self.next.as_ref().map(|p| {
            let ts = self.next_dts(p);
            ts as f64 * f64::from(self.in_tb.numerator()) / f64::from(self.in_tb.denominator())
        })
    }

    fn write_next(&mut self, octx: &mut format::context::Output) -> Result<()> {
        let mut p = self.next.take().expect("a packet");
        p.set_stream(self.out_index);
        p.set_position(-1);
        if let Some(t) = &self.timing {
            p.set_dts(Some(self.next_dts(&p)));
            if let Some(&d) = p.pts().and_then(|pts| t.durations.get(&pts)) {
                p.set_duration(d);
            }
        }
        self.written += 1;
        p.rescale_ts(self.in_tb, self.out_tb);
        // Keep the video's DTS strictly increasing across chunk boundaries
        // (subtitle events may share a time, and their DTS is their PTS).
        if let (Some(dts), Some(last), true) = (p.dts(), self.last_dts, self.timing.is_some()) {
            if dts <= last {
                p.set_dts(Some(last + 1));
            }
        }
        self.last_dts = p.dts();
        p.write_interleaved(octx)
            .map_err(Error::ff("write output packet"))?;
        Ok(())
    }
}

fn mux(task: &StitchTask, dst: &Path, timing: VideoTiming, ctl: &Control) -> Result<u64> {
    let chunk_paths = task
        .chunks
        .iter()
        .map(|c| input::local_path(&c.path))
        .collect::<Result<Vec<_>>>()?;
    let mut carried = match &task.carry {
        Some(c) => crate::carry::load(c, task.container, ctl)?,
        None => crate::carry::Carried::default(),
    };
    // Video first, then audio, then subtitles, each with its source meta.
    let mut video = Feed::new(&chunk_paths)?;
    let hdr = ffi::streams::is_hdr_params(&video.parameters());
    carried.video.keep_side_data(!task.autorotated, hdr);
    video.timing = Some(timing);
    video.frame_rate = task
        .frame_rate
        .filter(|r| r.num > 0 && r.den > 0)
        .map(|r| Rational::new(r.num, r.den));
    let mut feeds = vec![(video, carried.video.clone())];
    for (i, a) in task.audio_objects().enumerate() {
        let meta = carried.audio.get(i).cloned().unwrap_or_default();
        feeds.push((Feed::new(&[input::local_path(&a.path)?])?, meta));
    }
    for sub in std::mem::take(&mut carried.subtitles) {
        let feed = Feed::of_packets(sub.params, sub.time_base, sub.packets);
        feeds.push((feed, sub.meta));
    }
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    let mut octx =
        format::output_as(dst, task.container.muxer()).map_err(Error::ff("open output"))?;
    add_streams(&mut octx, &mut feeds, &carried)?;
    let mut opts = ffmpeg::Dictionary::new();
    if task.container == Container::Mp4 {
        opts.set("movflags", "+faststart");
    }
    octx.write_header_with(opts)
        .map_err(Error::ff("write output header"))?;
    for (feed, _) in &mut feeds {
        feed.out_tb = octx.stream(feed.out_index).expect("stream").time_base();
        feed.advance()?;
    }
    let frames = merge(&mut octx, &mut feeds, ctl)?;
    octx.write_trailer()
        .map_err(Error::ff("write output trailer"))?;
    ctl.set_frames(frames);
    Ok(frames)
}

/// One output stream per feed, then the attachments, with their source
/// meta; the chapters and global tags.
fn add_streams(
    octx: &mut format::context::Output,
    feeds: &mut [(Feed, crate::carry::StreamMeta)],
    carried: &crate::carry::Carried,
) -> Result<()> {
    for (i, (feed, meta)) in feeds.iter_mut().enumerate() {
        let mut ost = octx
            .add_stream(codec::encoder::find(codec::Id::None))
            .map_err(Error::ff("add output stream"))?;
        ost.set_parameters(feed.parameters());
        ffi::clear_codec_tag(&mut ost);
        ost.set_time_base(feed.in_tb);
        // Matroska writes a default duration from this; without it the last
        // frame has no duration. The source's nominal rate where known: a
        // VFR source's frames do not share one duration.
        let rate = feed
            .frame_rate
            .or_else(|| feed.timing.as_ref().and_then(|t| t.frame_rate(feed.in_tb)));
        if let Some(rate) = rate {
            ost.set_avg_frame_rate(rate);
            ost.set_rate(rate);
        }
        meta.apply(&mut ost)?;
        feed.out_index = i;
    }
    for a in &carried.attachments {
        let mut ost = octx
            .add_stream(codec::encoder::find(codec::Id::None))
            .map_err(Error::ff("add attachment stream"))?;
        ost.set_parameters(a.params.clone());
        a.meta.apply(&mut ost)?;
    }
    crate::carry::apply_global(carried, octx)
}

/// Writes every feed's packets in decode-time order (video first on a tie)
/// and returns the video frames written.
fn merge(
    octx: &mut format::context::Output,
    feeds: &mut [(Feed, crate::carry::StreamMeta)],
    ctl: &Control,
) -> Result<u64> {
    let mut frames = 0u64;
    loop {
        let next = feeds
            .iter()
            .enumerate()
            .filter_map(|(i, (f, _))| f.next_time().map(|t| (i, t)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let Some((i, _)) = next else { break };
        let feed = &mut feeds[i].0;
        feed.write_next(octx)?;
        feed.advance()?;
        if i == 0 {
            frames += 1;
            if frames.is_multiple_of(256) {
                ctl.check()?;
                ctl.set_frames(frames);
            }
        }
    }
    Ok(frames)
}
