//! Output quality: what a worker measures of each chunk it encodes, what a
//! job asks to be checked, and the per-output report.

use serde::{Deserialize, Serialize};

/// What a job measures and checks. The default: metrics on, a seam step of
/// 1 dB, outliers 6 dB under the median, no floor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySettings {
    /// Workers measure PSNR/SSIM of every chunk against the source.
    pub metrics: bool,
    /// A chunk whose mean PSNR (dB) is under this is re-encoded once.
    pub min_psnr: Option<f64>,
    /// A seam whose step exceeds this many dB PSNR is flagged.
    pub seam_step_db: f64,
    /// A chunk this many dB under its output's median chunk PSNR is
    /// re-encoded once.
    pub outlier_db: f64,
}

impl QualitySettings {
    pub const DEFAULT_SEAM_STEP_DB: f64 = 1.0;
    pub const DEFAULT_OUTLIER_DB: f64 = 6.0;
}

impl Default for QualitySettings {
    fn default() -> Self {
        QualitySettings {
            metrics: true,
            min_psnr: None,
            seam_step_db: Self::DEFAULT_SEAM_STEP_DB,
            outlier_db: Self::DEFAULT_OUTLIER_DB,
        }
    }
}

/// One encoded chunk's quality against the source frames at the output's
/// size and bit depth. PSNR figures are of the mean squared error, as
/// FFmpeg's psnr filter averages them; a lossless frame counts as
/// [`ChunkQuality::LOSSLESS_DB`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkQuality {
    pub frames: u64,
    pub seconds: f64,
    /// Where the chunk starts on the job's timeline.
    pub start_seconds: f64,
    pub width: u32,
    pub height: u32,
    /// Y, U and V weighted by plane size.
    pub psnr: f64,
    pub psnr_y: f64,
    /// The worst frame's.
    pub psnr_min: f64,
    /// The 5th percentile of the frames'.
    pub psnr_p5: f64,
    /// Of the chunk's first second.
    pub psnr_first: f64,
    /// Of the chunk's last second.
    pub psnr_last: f64,
    /// SSIM of all planes: the mean and the worst frame's.
    pub ssim: f64,
    pub ssim_min: f64,
    pub bitrate_bps: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmaf: Option<f64>,
    /// Why VMAF was not measured.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vmaf_unavailable: String,
}

impl ChunkQuality {
    /// The PSNR a frame identical to the source counts as.
    pub const LOSSLESS_DB: f64 = 100.0;

    /// Video bits per pixel of the chunk (its packets' bits, from the
    /// bitrate over its duration).
    pub fn bits_per_pixel(&self) -> f64 {
        let pixels = self.frames as f64 * f64::from(self.width) * f64::from(self.height);
        self.bitrate_bps as f64 * self.seconds / pixels.max(1.0)
    }
}

/// PSNR in dB of a mean squared error relative to the peak squared
/// (`mse / max²`), capped at [`ChunkQuality::LOSSLESS_DB`].
pub fn psnr_of(relative_mse: f64) -> f64 {
    if relative_mse <= 0.0 {
        ChunkQuality::LOSSLESS_DB
    } else {
        (-10.0 * relative_mse.log10()).min(ChunkQuality::LOSSLESS_DB)
    }
}

/// The relative mean squared error a PSNR stands for (`psnr_of`'s
/// inverse), to average PSNRs as FFmpeg does.
pub fn mse_of(psnr: f64) -> f64 {
    10f64.powf(-psnr / 10.0)
}

/// What one output's chunks measured and what the checks found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenditionQuality {
    pub output: String,
    pub chunks_measured: u32,
    pub psnr: f64,
    pub psnr_min: f64,
    pub ssim: f64,
    pub ssim_min: f64,
    pub bitrate_bps: u64,
    pub bytes: u64,
    /// The chunk with the lowest mean PSNR, and that PSNR.
    pub worst_chunk: u32,
    pub worst_chunk_psnr: f64,
    #[serde(default)]
    pub seams: Vec<Seam>,
    #[serde(default)]
    pub reencoded: Vec<Reencode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmaf: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vmaf_unavailable: String,
}

/// A flagged boundary: the chunk after it, where it is on the job's
/// timeline, and its step in dB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seam {
    pub chunk: u32,
    pub at_seconds: f64,
    pub step_db: f64,
}

/// A chunk the outlier guard re-encoded: the worker whose chunk was
/// rejected, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reencode {
    pub chunk: u32,
    pub worker_id: String,
    pub reason: String,
}
