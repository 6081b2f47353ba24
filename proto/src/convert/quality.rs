//! Quality settings, chunk measurements and the per-output report, between
//! [`crate::domain`] and [`crate::pb`].

use crate::domain as d;
use crate::{pb, Error, Result};

impl From<d::QualitySettings> for pb::QualitySettings {
    fn from(q: d::QualitySettings) -> Self {
        pb::QualitySettings {
            metrics_off: !q.metrics,
            min_psnr: q.min_psnr.unwrap_or(0.0),
            seam_step_db: q.seam_step_db,
            outlier_db: q.outlier_db,
        }
    }
}

/// Wire to domain: zeros are the defaults; negative or non-finite figures
/// are refused.
impl TryFrom<Option<pb::QualitySettings>> for d::QualitySettings {
    type Error = Error;
    fn try_from(q: Option<pb::QualitySettings>) -> Result<Self> {
        let q = q.unwrap_or_default();
        for (name, v) in [
            ("min_psnr", q.min_psnr),
            ("seam_step_db", q.seam_step_db),
            ("outlier_db", q.outlier_db),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::invalid(format!(
                    "quality.{name} must be a number of dB, at least 0 (got {v})"
                )));
            }
        }
        let or = |v: f64, default: f64| if v == 0.0 { default } else { v };
        Ok(d::QualitySettings {
            metrics: !q.metrics_off,
            min_psnr: (q.min_psnr > 0.0).then_some(q.min_psnr),
            seam_step_db: or(q.seam_step_db, d::QualitySettings::DEFAULT_SEAM_STEP_DB),
            outlier_db: or(q.outlier_db, d::QualitySettings::DEFAULT_OUTLIER_DB),
        })
    }
}

impl From<d::ChunkQuality> for pb::ChunkQuality {
    fn from(q: d::ChunkQuality) -> Self {
        pb::ChunkQuality {
            frames: q.frames,
            seconds: q.seconds,
            start_seconds: q.start_seconds,
            width: q.width,
            height: q.height,
            psnr: q.psnr,
            psnr_y: q.psnr_y,
            psnr_min: q.psnr_min,
            psnr_p5: q.psnr_p5,
            psnr_first: q.psnr_first,
            psnr_last: q.psnr_last,
            ssim: q.ssim,
            ssim_min: q.ssim_min,
            bitrate_bps: q.bitrate_bps,
            vmaf: q.vmaf,
            vmaf_unavailable: q.vmaf_unavailable,
        }
    }
}

impl From<pb::ChunkQuality> for d::ChunkQuality {
    fn from(q: pb::ChunkQuality) -> Self {
        d::ChunkQuality {
            frames: q.frames,
            seconds: q.seconds,
            start_seconds: q.start_seconds,
            width: q.width,
            height: q.height,
            psnr: q.psnr,
            psnr_y: q.psnr_y,
            psnr_min: q.psnr_min,
            psnr_p5: q.psnr_p5,
            psnr_first: q.psnr_first,
            psnr_last: q.psnr_last,
            ssim: q.ssim,
            ssim_min: q.ssim_min,
            bitrate_bps: q.bitrate_bps,
            vmaf: q.vmaf,
            vmaf_unavailable: q.vmaf_unavailable,
        }
    }
}

impl From<d::RenditionQuality> for pb::RenditionQuality {
    fn from(r: d::RenditionQuality) -> Self {
        pb::RenditionQuality {
            output: r.output,
            chunks_measured: r.chunks_measured,
            psnr: r.psnr,
            psnr_min: r.psnr_min,
            ssim: r.ssim,
            ssim_min: r.ssim_min,
            bitrate_bps: r.bitrate_bps,
            bytes: r.bytes,
            worst_chunk: r.worst_chunk,
            worst_chunk_psnr: r.worst_chunk_psnr,
            seams: r
                .seams
                .into_iter()
                .map(|s| pb::Seam {
                    chunk: s.chunk,
                    at_seconds: s.at_seconds,
                    step_db: s.step_db,
                })
                .collect(),
            reencoded: r
                .reencoded
                .into_iter()
                .map(|e| pb::Reencode {
                    chunk: e.chunk,
                    worker_id: e.worker_id,
                    reason: e.reason,
                })
                .collect(),
            vmaf: r.vmaf,
            vmaf_unavailable: r.vmaf_unavailable,
        }
    }
}
