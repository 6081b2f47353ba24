//! What `status` and `watch` say of a job's output: each output's measured
//! quality (lines for the table, and the `--json` document) and its bytes.

use spotenc_proto::pb;

/// GB of output per hour of output, from the job's cost record.
pub fn gb_per_output_hour(c: &pb::JobCost) -> Option<f64> {
    (c.output_bytes > 0 && c.output_seconds > 0.0)
        .then(|| c.output_bytes as f64 / 1e9 / (c.output_seconds / 3600.0))
}

/// One line per output, then VMAF's availability once.
pub fn quality_lines(job: &pb::Job) -> Vec<String> {
    let mut lines = Vec::new();
    for q in &job.quality {
        let mut line = format!(
            "quality {}: PSNR {:.2} dB (worst frame {:.2}), SSIM {:.4} (worst {:.4}), {} kb/s over {} chunks, worst chunk {} at {:.2} dB",
            q.output,
            q.psnr,
            q.psnr_min,
            q.ssim,
            q.ssim_min,
            q.bitrate_bps / 1000,
            q.chunks_measured,
            q.worst_chunk,
            q.worst_chunk_psnr
        );
        if q.seams.is_empty() {
            line.push_str("; no seam flagged");
        }
        for s in &q.seams {
            line.push_str(&format!(
                "; seam flagged before chunk {} at {:.2} s ({:+.2} dB)",
                s.chunk, s.at_seconds, s.step_db
            ));
        }
        lines.push(line);
    }
    if let Some(q) = job.quality.first() {
        for r in &q.reencoded {
            lines.push(format!(
                "re-encoded: chunk {} (worker {}): {}",
                r.chunk, r.worker_id, r.reason
            ));
        }
        match q.vmaf {
            Some(v) => lines.push(format!("VMAF {v:.2}")),
            None => lines.push(format!("VMAF: not measured ({})", q.vmaf_unavailable)),
        }
    }
    lines
}

/// The job as `status --json` prints it.
pub fn job_json(job: &pb::Job) -> serde_json::Value {
    let spec = job.spec.clone().unwrap_or_default();
    let cost = job.cost.unwrap_or_default();
    let quality: Vec<serde_json::Value> = job
        .quality
        .iter()
        .map(|q| {
            serde_json::json!({
                "output": q.output,
                "chunks_measured": q.chunks_measured,
                "psnr_db": q.psnr,
                "psnr_min_db": q.psnr_min,
                "ssim": q.ssim,
                "ssim_min": q.ssim_min,
                "bitrate_bps": q.bitrate_bps,
                "bytes": q.bytes,
                "worst_chunk": q.worst_chunk,
                "worst_chunk_psnr_db": q.worst_chunk_psnr,
                "seams": q.seams.iter().map(|s| serde_json::json!({
                    "chunk": s.chunk, "at_seconds": s.at_seconds, "step_db": s.step_db,
                })).collect::<Vec<_>>(),
                "reencoded": q.reencoded.iter().map(|r| serde_json::json!({
                    "chunk": r.chunk, "worker_id": r.worker_id, "reason": r.reason,
                })).collect::<Vec<_>>(),
                "vmaf": q.vmaf,
                "vmaf_unavailable": q.vmaf_unavailable,
            })
        })
        .collect();
    serde_json::json!({
        "id": job.id,
        "state": crate::client::state_name(job),
        "error": job.error,
        "input": spec.input,
        "output": spec.output,
        "chunks_done": job.chunks_done,
        "chunks_total": job.chunks_total,
        "frames_done": job.frames_done,
        "frames_total": job.frames_total,
        "identities": job.identities,
        "restarts": job.restarts,
        "left_out": job.left_out,
        "cost": {
            "spot_dollars": cost.spot_dollars,
            "on_demand_dollars": cost.on_demand_dollars,
            "wasted_dollars": cost.wasted_dollars,
            "dollars_per_output_minute": cost.dollars_per_output_minute,
            "output_seconds": cost.output_seconds,
            "output_bytes": cost.output_bytes,
            "gb_per_output_hour": gb_per_output_hour(&cost),
        },
        "quality": quality,
    })
}
