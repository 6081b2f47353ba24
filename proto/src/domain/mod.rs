//! Domain types shared by the coordinator, the workers and the media crate.
//!
//! They are plain Rust with serde, so the state store can persist them and the
//! media crate can take them without touching protobuf. Jobs, their
//! settings and tasks are here; job and task states, attempts, costs and
//! the job view in `records`; workers, GPUs, telemetry and the pool and cost
//! views in `fleet`; encoder identities in `identity`; quality settings,
//! measurements and reports in `quality`; track selection in `tracks` (all
//! re-exported).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

mod fleet;
mod identity;
mod quality;
mod records;
mod tracks;
pub use fleet::*;
pub use identity::*;
pub use quality::*;
pub use records::*;
pub use tracks::*;

/// The video codec of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Codec {
    H264,
    Hevc,
}

impl Codec {
    /// The name [`Codec::from_str`](std::str::FromStr) reads: `h264` or
    /// `hevc`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
        }
    }

    /// The FFmpeg software encoder for this codec.
    pub fn software_encoder(self) -> &'static str {
        match self {
            Codec::H264 => "libx264",
            Codec::Hevc => "libx265",
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "h264" | "avc" => Ok(Codec::H264),
            "hevc" | "h265" => Ok(Codec::Hevc),
            other => Err(Error::invalid(format!(
                "invalid codec {other:?} (expected h264 or hevc)"
            ))),
        }
    }
}

/// The output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Container {
    Mp4,
    Mkv,
}

impl Container {
    /// The FFmpeg muxer name.
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mkv => "matroska",
        }
    }

    /// Picks the container from an output path's extension.
    pub fn from_path(path: &str) -> Option<Container> {
        let ext = path.rsplit('.').next()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" | "m4v" | "mov" => Some(Container::Mp4),
            "mkv" => Some(Container::Mkv),
            _ => None,
        }
    }
}

impl std::str::FromStr for Container {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mp4" => Ok(Container::Mp4),
            "mkv" | "matroska" => Ok(Container::Mkv),
            other => Err(Error::invalid(format!(
                "invalid container {other:?} (expected mp4 or mkv)"
            ))),
        }
    }
}

/// Where a job's work may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Priority {
    /// Spot capacity first.
    Cost,
    /// On-demand capacity.
    Latency,
}

/// A worker's capacity class, and the queue partition a task waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capacity {
    Spot,
    OnDemand,
}

impl std::str::FromStr for Capacity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "spot" => Ok(Capacity::Spot),
            "on-demand" | "ondemand" => Ok(Capacity::OnDemand),
            other => Err(Error::invalid(format!(
                "invalid capacity {other:?} (expected spot or on-demand)"
            ))),
        }
    }
}

/// Rate control for the video encoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RateControl {
    Crf(u32),
    Bitrate {
        bitrate_bps: u64,
        maxrate_bps: u64,
        bufsize_bits: u64,
    },
}

/// One video rendition's encoder settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoSettings {
    pub codec: Codec,
    pub rate: RateControl,
    pub preset: String,
    /// `None` means the encoder's default.
    pub profile: Option<String>,
    /// Keyframe interval in frames; `None` means two seconds of frames.
    pub keyint: Option<u32>,
    /// Bounding box that keeps the aspect ratio; `None` keeps the source size.
    pub max_size: Option<(u32, u32)>,
    /// Let a bounding box larger than the source enlarge it (off: the
    /// output is never larger than the source).
    pub allow_upscale: bool,
    /// 8 or 10 bits per sample; `None`: HEVC keeps a source deeper than 8
    /// bits at 10 (Main10), everything else is 8-bit ([`Self::depth_for`]).
    #[serde(default)]
    pub bit_depth: Option<u32>,
    /// Tone-map an HDR (PQ or HLG) source to BT.709 SDR.
    #[serde(default)]
    pub tonemap: bool,
    /// Apply the source's display rotation to the pixels (and `max_size` to
    /// the displayed orientation) instead of keeping the rotation as
    /// metadata.
    #[serde(default)]
    pub autorotate: bool,
}

const PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

impl VideoSettings {
    /// The bit depth of the output of a source `source_depth` bits deep.
    pub fn depth_for(&self, source_depth: u32) -> u32 {
        match (self.bit_depth, self.codec) {
            (Some(d), _) => d,
            (None, Codec::Hevc) if source_depth > 8 && !self.tonemap => 10,
            (None, _) => 8,
        }
    }

    pub fn validate(&self) -> Result<()> {
        match self.rate {
            RateControl::Crf(crf) if crf > 51 => {
                return Err(Error::invalid(format!(
                    "invalid crf {crf} (expected 0..=51)"
                )));
            }
            RateControl::Bitrate {
                bitrate_bps,
                maxrate_bps,
                bufsize_bits,
            } => {
                if !(16_000..=800_000_000).contains(&bitrate_bps) {
                    return Err(Error::invalid(format!(
                        "invalid bitrate {bitrate_bps} bit/s (expected 16000..=800000000)"
                    )));
                }
                if maxrate_bps != 0 && !(bitrate_bps..=800_000_000).contains(&maxrate_bps) {
                    return Err(Error::invalid(format!(
                        "invalid maxrate {maxrate_bps} bit/s (expected bitrate {bitrate_bps}..=800000000)"
                    )));
                }
                // The VBV buffer: at least a frame's worth at 16 kbit/s, at
                // most 10 s of the highest rate.
                if bufsize_bits != 0 && !(16_000..=8_000_000_000).contains(&bufsize_bits) {
                    return Err(Error::invalid(format!(
                        "invalid bufsize {bufsize_bits} bits (expected 16000..=8000000000)"
                    )));
                }
            }
            RateControl::Crf(_) => {}
        }
        if !PRESETS.contains(&self.preset.as_str()) {
            return Err(Error::invalid(format!(
                "invalid preset {:?} (expected one of {})",
                self.preset,
                PRESETS.join(", ")
            )));
        }
        if let Some(profile) = &self.profile {
            let allowed: &[&str] = match self.codec {
                Codec::H264 => &["baseline", "main", "high"],
                Codec::Hevc => &["main", "main10"],
            };
            if !allowed.contains(&profile.as_str()) {
                return Err(Error::invalid(format!(
                    "invalid profile {profile:?} for {:?} (expected one of {})",
                    self.codec,
                    allowed.join(", ")
                )));
            }
        }
        if let Some(d) = self.bit_depth {
            if d != 8 && d != 10 {
                return Err(Error::invalid(format!(
                    "invalid bit depth {d} (expected 8 or 10)"
                )));
            }
        }
        if let Some(k) = self.keyint {
            if !(1..=1000).contains(&k) {
                return Err(Error::invalid(format!(
                    "invalid keyint {k} (expected 1..=1000)"
                )));
            }
        }
        if let Some((w, h)) = self.max_size {
            if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
                return Err(Error::invalid(format!(
                    "invalid scale {w}x{h} (expected each side 16..=8192)"
                )));
            }
        }
        Ok(())
    }
}

/// Audio handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioSettings {
    /// Remux the source track instead of encoding when it is already AAC.
    pub copy_if_aac: bool,
    /// The AAC bitrate of every encoded track; 0: by channel count
    /// ([`AudioSettings::bitrate_for`]).
    pub bitrate_bps: u64,
}

impl AudioSettings {
    /// AAC bitrate per channel when the job gives none.
    pub const AUTO_BPS_PER_CHANNEL: u64 = 64_000;

    /// The bitrate for a track of `channels` channels: the job's, else
    /// [`Self::AUTO_BPS_PER_CHANNEL`] per channel (stereo 128 kbit/s,
    /// 5.1 384 kbit/s), within AAC's 16 kbit/s..1 Mbit/s.
    pub fn bitrate_for(&self, channels: u32) -> u64 {
        if self.bitrate_bps != 0 {
            return self.bitrate_bps;
        }
        (Self::AUTO_BPS_PER_CHANNEL * u64::from(channels.max(1))).clamp(16_000, 1_024_000)
    }
}

/// Everything a client asks for in one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub input: String,
    pub output: String,
    pub video: VideoSettings,
    pub audio: AudioSettings,
    pub container: Container,
    pub chunk_seconds: f64,
    pub min_chunk_seconds: f64,
    pub priority: Priority,
    pub max_attempts: u32,
    /// A spot task that failed or lost its lease this many times moves to
    /// on-demand capacity.
    pub escalate_after_attempts: u32,
    /// A spot task pending longer than this moves to on-demand capacity.
    pub escalate_after_wait_seconds: u32,
    /// Further outputs of the same source from the same decode.
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    /// The source's audio tracks the outputs keep (default: all).
    #[serde(default)]
    pub audio_tracks: TrackSelection,
    /// The source's subtitle tracks the outputs keep (default: all).
    #[serde(default)]
    pub subtitle_tracks: TrackSelection,
    /// What is measured of each chunk and checked before the stitch.
    #[serde(default)]
    pub quality: QualitySettings,
}

/// A further output of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    pub video: VideoSettings,
    pub output: String,
    pub container: Container,
}

/// A further rendition an encode task writes, from the same decode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionTarget {
    pub video: VideoSettings,
    pub output: String,
}

impl JobSpec {
    pub const DEFAULT_CHUNK_SECONDS: f64 = 300.0;
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    pub const DEFAULT_ESCALATE_AFTER_ATTEMPTS: u32 = 2;
    pub const DEFAULT_ESCALATE_AFTER_WAIT_SECONDS: u32 = 900;
    /// Renditions besides the output, at most.
    pub const MAX_RENDITIONS: usize = 8;

    /// Every output with its settings and container: the job's output
    /// first, then the further renditions.
    pub fn outputs(&self) -> Vec<(&str, &VideoSettings, Container)> {
        std::iter::once((self.output.as_str(), &self.video, self.container))
            .chain(
                self.renditions
                    .iter()
                    .map(|r| (r.output.as_str(), &r.video, r.container)),
            )
            .collect()
    }

    /// The partition this job's tasks start in.
    pub fn partition(&self) -> Capacity {
        match self.priority {
            Priority::Cost => Capacity::Spot,
            Priority::Latency => Capacity::OnDemand,
        }
    }

    /// Checks every field and names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if self.input.is_empty() {
            return Err(Error::invalid("input is empty"));
        }
        if self.output.is_empty() {
            return Err(Error::invalid("output is empty"));
        }
        let paths = [("input", &self.input), ("output", &self.output)]
            .into_iter()
            .chain(
                self.renditions
                    .iter()
                    .map(|r| ("rendition output", &r.output)),
            );
        for (what, path) in paths {
            check_path(what, path)?;
        }
        self.video.validate()?;
        if self.renditions.len() > Self::MAX_RENDITIONS {
            return Err(Error::invalid(format!(
                "{} renditions (expected at most {} besides the output)",
                self.renditions.len(),
                Self::MAX_RENDITIONS
            )));
        }
        let mut outputs = vec![self.output.as_str()];
        for (i, r) in self.renditions.iter().enumerate() {
            let n = i + 1;
            if r.output.is_empty() {
                return Err(Error::invalid(format!("rendition {n}: output is empty")));
            }
            if outputs.contains(&r.output.as_str()) {
                return Err(Error::invalid(format!(
                    "rendition {n}: output {} is used twice",
                    r.output
                )));
            }
            outputs.push(&r.output);
            r.video
                .validate()
                .map_err(|e| Error::invalid(format!("rendition {n}: {e}")))?;
        }
        if self.audio.bitrate_bps != 0 && !(16_000..=1_024_000).contains(&self.audio.bitrate_bps) {
            return Err(Error::invalid(format!(
                "invalid audio bitrate {} bit/s (expected 16000..=1024000, or 0 for 64000 a channel)",
                self.audio.bitrate_bps
            )));
        }
        if !(self.chunk_seconds.is_finite() && (0.5..=3600.0).contains(&self.chunk_seconds)) {
            return Err(Error::invalid(format!(
                "invalid chunk seconds {} (expected 0.5..=3600)",
                self.chunk_seconds
            )));
        }
        if !(self.min_chunk_seconds.is_finite()
            && (0.0..=self.chunk_seconds).contains(&self.min_chunk_seconds))
        {
            return Err(Error::invalid(format!(
                "invalid min chunk seconds {} (expected 0..={})",
                self.min_chunk_seconds, self.chunk_seconds
            )));
        }
        if !(1..=20).contains(&self.max_attempts) {
            return Err(Error::invalid(format!(
                "invalid max attempts {} (expected 1..=20)",
                self.max_attempts
            )));
        }
        if !(1..=20).contains(&self.escalate_after_attempts) {
            return Err(Error::invalid(format!(
                "invalid escalate-after attempts {} (expected 1..=20)",
                self.escalate_after_attempts
            )));
        }
        if !(1..=86_400).contains(&self.escalate_after_wait_seconds) {
            return Err(Error::invalid(format!(
                "invalid escalate-after wait {} s (expected 1..=86400)",
                self.escalate_after_wait_seconds
            )));
        }
        Ok(())
    }
}

/// The longest input or output a job may name, in bytes (Linux's PATH_MAX;
/// S3 keys stop at 1024 bytes, which the store reports itself).
pub const MAX_PATH_BYTES: usize = 4096;

/// A path or URL a job names: bounded, and free of NUL and other control
/// characters, which no file system or object key should carry and which
/// would let a name forge log lines.
fn check_path(what: &str, path: &str) -> Result<()> {
    check_text(what, path, MAX_PATH_BYTES)
}

/// Text a client names (a path, a key): at most `max` bytes, and free of
/// control characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::invalid(format!(
            "{what} is {} bytes long (at most {max})",
            text.len()
        )));
    }
    if let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(Error::invalid(format!(
            "{what} has a control character U+{:04X} at byte {at}",
            u32::from(c)
        )));
    }
    Ok(())
}

/// An exact rational, as FFmpeg uses for time bases and rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    pub num: i32,
    pub den: i32,
}

impl Rational {
    pub fn new(num: i32, den: i32) -> Self {
        Rational { num, den }
    }

    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }
}

/// A source keyframe: its index in presentation order and its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyframe {
    pub frame: u64,
    pub pts: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStreamInfo {
    pub stream_index: u32,
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub pix_fmt: String,
    pub time_base: Rational,
    pub avg_frame_rate: Rational,
    /// Presentation time of the first frame, in `time_base`.
    pub start_pts: i64,
    /// One past the last frame's presentation time, in `time_base`.
    pub end_pts: i64,
    pub frame_count: u64,
    /// Every keyframe in presentation order; the first frame is always one.
    /// Shared, not copied: a job keeps its probe and so does the probe's
    /// task, and an hour of video has thousands of keyframes.
    pub keyframes: Arc<[Keyframe]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStreamInfo {
    pub stream_index: u32,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    /// Where the audio starts relative to the first video frame (seconds;
    /// negative: before it).
    #[serde(default)]
    pub start_offset_seconds: f64,
}

/// What a probe task learns about an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    pub format_name: String,
    pub duration_seconds: f64,
    /// `container-index` or `packet-scan`.
    pub index_source: String,
    pub video: VideoStreamInfo,
    /// The input's best audio stream (what jobs before multi-track audio
    /// kept).
    pub audio: Option<AudioStreamInfo>,
    /// Every stream of the input, in container order; empty in probes made
    /// before streams were listed.
    #[serde(default)]
    pub streams: Vec<StreamInfo>,
    #[serde(default)]
    pub chapters: u32,
    /// The video stream's colour description, bit depth and rotation.
    #[serde(default)]
    pub color: ColorInfo,
}

/// One chunk of a plan: the frames `[start_frame, end_frame)` in presentation
/// order, from the keyframe at `start_pts` up to (not including) `end_pts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRange {
    pub index: u32,
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_pts: i64,
    /// `None` for the last chunk.
    pub end_pts: Option<i64>,
}

impl ChunkRange {
    pub fn frames(&self) -> u64 {
        self.end_frame - self.start_frame
    }
}

/// A stored object a task produced, with what the stitcher verifies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputObject {
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub frames: u64,
    /// An encode task's further renditions, in the order of its targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub renditions: Vec<OutputObject>,
    /// The encoder that actually ran, after any fallback (encode tasks).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encoder: String,
    /// Wall time of the encode (encode tasks), for the cost model.
    #[serde(default)]
    pub encode_ms: u64,
    /// The chunk's quality against the source (encode tasks that measured
    /// it).
    /// (Boxed: most objects have none, and stitch tasks hold many.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Box<ChunkQuality>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTask {
    pub input: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeTask {
    pub input: String,
    pub output: String,
    pub chunk: ChunkRange,
    pub video: VideoSettings,
    pub origin_pts: i64,
    pub video_stream: u32,
    pub source_frame_rate: Rational,
    /// Further renditions of this chunk, from the same decode.
    #[serde(default)]
    pub renditions: Vec<RenditionTarget>,
    /// The encoder identity of each output: this chunk's, then each further
    /// rendition's, set at lease. A worker encodes with exactly these or
    /// hands the task back; empty: the worker's own choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identities: Vec<EncoderIdentity>,
    /// Measure each output's PSNR/SSIM against the source.
    #[serde(default)]
    pub measure_quality: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioTask {
    pub input: String,
    pub output: String,
    pub audio: AudioSettings,
    pub origin_seconds: f64,
    pub duration_seconds: f64,
    /// The source stream this task makes; `None` in tasks made before
    /// multi-track audio: the input's best audio stream.
    #[serde(default)]
    pub stream: Option<u32>,
}

/// What a stitch takes straight from the source: stream tags and
/// dispositions, the video's display matrix and HDR side data, subtitle
/// and attachment streams, chapters and the global tags. Streams are
/// copied, rebased to the job's origin and cut at its duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceCarry {
    pub input: String,
    pub video_stream: u32,
    /// The source stream of each audio object, in the stitch's audio order.
    pub audio_streams: Vec<u32>,
    pub subtitle_streams: Vec<u32>,
    pub attachment_streams: Vec<u32>,
    pub origin_seconds: f64,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StitchTask {
    pub chunks: Vec<OutputObject>,
    /// The first audio track.
    pub audio: Option<OutputObject>,
    /// Further audio tracks, in source order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_audio: Vec<OutputObject>,
    /// `None` in tasks made before streams were carried from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carry: Option<SourceCarry>,
    /// The source's nominal frame rate, for the output's (a VFR source
    /// keeps its own); `None`: the most common frame duration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<Rational>,
    /// The chunks have the source's display rotation applied to their
    /// pixels: the output must not rotate them again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autorotated: bool,
    pub output: String,
    pub container: Container,
    pub expected_frames: u64,
    /// Presigned UploadPart URLs when the output goes up in parts; empty
    /// when it goes up with one PUT to `output`.
    #[serde(default)]
    pub part_urls: Vec<String>,
    #[serde(default)]
    pub part_size_bytes: u64,
    /// 0: the job's output; n: its n-th further rendition.
    #[serde(default)]
    pub rendition: u32,
}

impl StitchTask {
    /// Every audio object, in output order.
    pub fn audio_objects(&self) -> impl Iterator<Item = &OutputObject> {
        self.audio.iter().chain(&self.more_audio)
    }
}

/// The work inside a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Work {
    Probe(ProbeTask),
    Encode(EncodeTask),
    Audio(AudioTask),
    Stitch(StitchTask),
}

impl Work {
    pub fn kind(&self) -> TaskKind {
        match self {
            Work::Probe(_) => TaskKind::Probe,
            Work::Encode(_) => TaskKind::Encode,
            Work::Audio(_) => TaskKind::Audio,
            Work::Stitch(_) => TaskKind::Stitch,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    Probe,
    Encode,
    Audio,
    Stitch,
}

/// A leased task as a worker sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeasedTask {
    pub task_id: String,
    pub job_id: String,
    /// The fencing token.
    pub attempt: u32,
    pub lease_ttl_ms: u32,
    pub work: Work,
}

/// What a finished task reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "one outcome per finished task, moved once into the store; a probe is the largest"
)]
pub enum TaskOutcome {
    Probe(ProbeInfo),
    Encode(OutputObject),
    Audio(OutputObject),
    Stitch(OutputObject),
}

/// The output size: the largest size with the source's aspect ratio that fits
/// the bounding box (or the source size), with even sides as 4:2:0 needs.
/// Never larger than the source unless `upscale`.
pub fn output_size(src_w: u32, src_h: u32, max: Option<(u32, u32)>, upscale: bool) -> (u32, u32) {
    let (w, h) = match max {
        None => (src_w, src_h),
        Some((mw, mh)) => {
            let fit = (f64::from(mw) / f64::from(src_w)).min(f64::from(mh) / f64::from(src_h));
            let scale = if upscale { fit } else { fit.min(1.0) };
            (
                (f64::from(src_w) * scale).round() as u32,
                (f64::from(src_h) * scale).round() as u32,
            )
        }
    };
    ((w & !1).max(2), (h & !1).max(2))
}
