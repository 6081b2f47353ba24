//! Job options shared by `transcode` and `submit`, and their mapping to a
//! [`JobSpec`].

use clap::Args;
use spotenc_proto::domain::{
    AudioSettings, Codec, Container, JobSpec, Priority, QualitySettings, RateControl, Rendition,
    VideoSettings,
};

#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// Video codec: h264 (libx264) or hevc (libx265)
    #[arg(long, default_value = "h264")]
    pub codec: String,
    /// Constant rate factor, 0-51 (default 23 unless --bitrate is given)
    #[arg(long, conflicts_with = "bitrate")]
    pub crf: Option<u32>,
    /// Target bitrate, e.g. 4M or 2500k
    #[arg(long)]
    pub bitrate: Option<String>,
    /// VBV maximum rate with --bitrate (default: the bitrate)
    #[arg(long, requires = "bitrate")]
    pub maxrate: Option<String>,
    /// VBV buffer size in bits with --bitrate (default: twice the maxrate)
    #[arg(long, requires = "bitrate")]
    pub bufsize: Option<String>,
    /// Encoder preset, ultrafast..placebo
    #[arg(long, default_value = "medium")]
    pub preset: String,
    /// Encoder profile (h264: baseline, main, high; hevc: main)
    #[arg(long)]
    pub profile: Option<String>,
    /// Bits per sample, 8 or 10 (default: HEVC keeps a 10-bit source at 10,
    /// everything else is 8-bit)
    #[arg(long)]
    pub bit_depth: Option<u32>,
    /// Tone-map an HDR (PQ or HLG) source to BT.709 SDR (needed for H.264
    /// or 8-bit outputs of HDR)
    #[arg(long)]
    pub tonemap: bool,
    /// Apply the source's display rotation to the pixels instead of keeping
    /// it as metadata (--scale then fits the displayed orientation)
    #[arg(long)]
    pub autorotate: bool,
    /// Keyframe interval in frames (default: 2 seconds of frames)
    #[arg(long)]
    pub keyint: Option<u32>,
    /// Fit the output inside WxH, keeping the aspect ratio (even sides)
    #[arg(long, value_name = "WxH")]
    pub scale: Option<String>,
    /// Let --scale (and renditions' scale) enlarge a smaller source; by
    /// default outputs are never larger than the source
    #[arg(long)]
    pub allow_upscale: bool,
    /// Target chunk length; boundaries snap to source keyframes
    #[arg(long, default_value_t = JobSpec::DEFAULT_CHUNK_SECONDS)]
    pub chunk_seconds: f64,
    /// A further output from the same decode:
    /// OUTPUT[,scale=WxH][,crf=N|,bitrate=RATE][,codec=C][,preset=P];
    /// unset settings are the main output's. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub rendition: Vec<String>,
    /// Shortest chunk (default: a quarter of --chunk-seconds)
    #[arg(long)]
    pub min_chunk_seconds: Option<f64>,
    /// Output container: mp4 (faststart) or mkv (default: from the output name)
    #[arg(long)]
    pub container: Option<String>,
    /// AAC bitrate of every encoded audio track (default: 64k a channel,
    /// so stereo 128k and 5.1 384k)
    #[arg(long)]
    pub audio_bitrate: Option<String>,
    /// Audio tracks to keep: all, none, positions among the audio tracks
    /// (0,2) or languages (lang:eng,spa); `spotenc probe` lists them
    #[arg(long, default_value = "all", value_name = "all|none|LIST")]
    pub audio: String,
    /// Subtitle tracks to keep: all, none, positions (0,1) or languages
    /// (lang:eng); picture subtitles need --container mkv
    #[arg(long, default_value = "all", value_name = "all|none|LIST")]
    pub subtitles: String,
    /// Re-encode AAC audio instead of copying it
    #[arg(long)]
    pub audio_reencode: bool,
    /// cost (spot capacity) or latency (on-demand)
    #[arg(long, default_value = "cost")]
    pub priority: String,
    /// Attempts per task before the job fails
    #[arg(long, default_value_t = JobSpec::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// A spot task that failed or lost its lease this many times moves to
    /// on-demand workers
    #[arg(long, default_value_t = JobSpec::DEFAULT_ESCALATE_AFTER_ATTEMPTS)]
    pub escalate_after_attempts: u32,
    /// A spot task pending longer than this moves to on-demand workers
    #[arg(long, default_value_t = JobSpec::DEFAULT_ESCALATE_AFTER_WAIT_SECONDS)]
    pub escalate_after_wait_seconds: u32,
    /// Per-chunk PSNR/SSIM against the source (on), with the seam check and
    /// the outlier guard; off measures nothing and checks nothing
    #[arg(long, default_value = "on", value_name = "on|off")]
    pub quality_metrics: String,
    /// A chunk whose mean PSNR (dB) is under this is encoded again once, on
    /// another worker; under it again, the job fails
    #[arg(long, value_name = "DB")]
    pub min_psnr: Option<f64>,
    /// Flag a seam whose PSNR step exceeds this many dB
    #[arg(long, default_value_t = QualitySettings::DEFAULT_SEAM_STEP_DB, value_name = "DB")]
    pub seam_step_db: f64,
    /// A chunk this many dB under its output's median chunk is encoded again
    /// once, on another worker
    #[arg(long, default_value_t = QualitySettings::DEFAULT_OUTLIER_DB, value_name = "DB")]
    pub outlier_db: f64,
}

/// Parses `4M`, `2500k` or `800000` as bits per second.
pub fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000.0),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000.0),
        _ => (s, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid rate {s:?} (expected e.g. 4M, 2500k or 800000)"))?;
    Ok((v * mult).round() as u64)
}

fn parse_scale(s: &str) -> anyhow::Result<(u32, u32)> {
    let err = || anyhow::anyhow!("invalid scale {s:?} (expected WxH, e.g. 1280x720)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    Ok((w.parse().map_err(|_| err())?, h.parse().map_err(|_| err())?))
}

impl JobArgs {
    pub fn to_spec(&self, input: String, output: String) -> anyhow::Result<JobSpec> {
        let rate = match &self.bitrate {
            Some(b) => {
                let bitrate_bps = parse_rate(b)?;
                let maxrate_bps = self
                    .maxrate
                    .as_deref()
                    .map(parse_rate)
                    .transpose()?
                    .unwrap_or(bitrate_bps);
                let bufsize_bits = self
                    .bufsize
                    .as_deref()
                    .map(parse_rate)
                    .transpose()?
                    .unwrap_or(maxrate_bps * 2);
                RateControl::Bitrate {
                    bitrate_bps,
                    maxrate_bps,
                    bufsize_bits,
                }
            }
            None => RateControl::Crf(self.crf.unwrap_or(23)),
        };
        let container = match &self.container {
            Some(c) => c.parse::<Container>()?,
            None => Container::from_path(&output).ok_or_else(|| {
                anyhow::anyhow!("cannot tell the container of {output:?}: name it .mp4 or .mkv, or pass --container")
            })?,
        };
        let video = VideoSettings {
            codec: self.codec.parse::<Codec>()?,
            rate,
            preset: self.preset.clone(),
            profile: self.profile.clone(),
            keyint: self.keyint,
            max_size: self.scale.as_deref().map(parse_scale).transpose()?,
            allow_upscale: self.allow_upscale,
            bit_depth: self.bit_depth,
            tonemap: self.tonemap,
            autorotate: self.autorotate,
        };
        let renditions = self
            .rendition
            .iter()
            .map(|r| parse_rendition(r, &video))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let spec = JobSpec {
            renditions,
            input,
            output,
            video,
            audio: AudioSettings {
                copy_if_aac: !self.audio_reencode,
                bitrate_bps: self.audio_bitrate.as_deref().map_or(Ok(0), parse_rate)?,
            },
            audio_tracks: self.audio.parse()?,
            subtitle_tracks: self.subtitles.parse()?,
            container,
            chunk_seconds: self.chunk_seconds,
            min_chunk_seconds: self.min_chunk_seconds.unwrap_or(self.chunk_seconds / 4.0),
            priority: match self.priority.as_str() {
                "cost" => Priority::Cost,
                "latency" => Priority::Latency,
                p => anyhow::bail!("invalid priority {p:?} (expected cost or latency)"),
            },
            max_attempts: self.max_attempts,
            escalate_after_attempts: self.escalate_after_attempts,
            escalate_after_wait_seconds: self.escalate_after_wait_seconds,
            quality: QualitySettings {
                metrics: match self.quality_metrics.as_str() {
                    "on" => true,
                    "off" => false,
                    q => anyhow::bail!("invalid --quality-metrics {q:?} (expected on or off)"),
                },
                min_psnr: self.min_psnr,
                seam_step_db: self.seam_step_db,
                outlier_db: self.outlier_db,
            },
        };
        spec.validate()?;
        Ok(spec)
    }
}

/// `OUTPUT[,key=value...]`: a further rendition with `base`'s settings
/// except those named.
fn parse_rendition(spec: &str, base: &VideoSettings) -> anyhow::Result<Rendition> {
    let mut parts = spec.split(',');
    let output = absolute(parts.next().unwrap_or_default().trim());
    let mut video = base.clone();
    for kv in parts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("rendition {spec:?}: expected key=value, got {kv:?}"))?;
        match k.trim() {
            "scale" => video.max_size = Some(parse_scale(v)?),
            "crf" => video.rate = RateControl::Crf(v.parse()?),
            "bitrate" => {
                let b = parse_rate(v)?;
                video.rate = RateControl::Bitrate {
                    bitrate_bps: b,
                    maxrate_bps: b,
                    bufsize_bits: 2 * b,
                }
            }
            "codec" => {
                video.codec = v.parse::<Codec>()?;
                video.profile = None;
            }
            "preset" => video.preset = v.to_string(),
            other => anyhow::bail!(
                "rendition {spec:?}: unknown key {other:?} (expected scale, crf, bitrate, codec or preset)"
            ),
        }
    }
    let container = Container::from_path(&output).ok_or_else(|| {
        anyhow::anyhow!("cannot tell the container of rendition {output:?}: name it .mp4 or .mkv")
    })?;
    Ok(Rendition {
        video,
        output,
        container,
    })
}

/// The canonical absolute form of a path the user typed. The file itself
/// need not exist (an output, or a missing input the job will report); its
/// directory is canonicalised when it exists.
pub fn absolute(path: &str) -> String {
    if path.contains("://") {
        return path.to_string();
    }
    let p = std::path::Path::new(path);
    if let Ok(c) = p.canonicalize() {
        return c.display().to_string();
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    match (
        abs.parent().and_then(|d| d.canonicalize().ok()),
        abs.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name).display().to_string(),
        _ => abs.display().to_string(),
    }
}
