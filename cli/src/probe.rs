//! `spotenc probe`: what a job would see of a file: every stream with its
//! tags, the chapters and the video's colour description.

use serde_json::json;
use spotenc_proto::domain::ProbeInfo;

/// Prints the probe of `file` as a table or JSON. `Ok(true)` once printed.
pub fn run(file: &str, as_json: bool) -> anyhow::Result<bool> {
    let p = spotenc_media::probe::probe(file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&summary(&p))?);
    } else {
        print!("{}", table(&p));
    }
    Ok(true)
}

/// The probe without its keyframe list (thousands of entries an hour).
fn summary(p: &ProbeInfo) -> serde_json::Value {
    let v = &p.video;
    json!({
        "format": p.format_name,
        "duration_seconds": p.duration_seconds,
        "video": {
            "stream_index": v.stream_index,
            "codec": v.codec,
            "width": v.width,
            "height": v.height,
            "pix_fmt": v.pix_fmt,
            "avg_frame_rate": format!("{}/{}", v.avg_frame_rate.num, v.avg_frame_rate.den),
            "frame_count": v.frame_count,
            "keyframes": v.keyframes.len(),
        },
        "color": p.color,
        "streams": p.streams,
        "chapters": p.chapters,
    })
}

fn table(p: &ProbeInfo) -> String {
    let v = &p.video;
    let c = &p.color;
    let or_unset = |s: &str| {
        if s.is_empty() {
            "unset".to_string()
        } else {
            s.to_string()
        }
    };
    let mut out = format!(
        "{} · {:.3} s · {} frames · {} keyframes · {} chapters\n",
        p.format_name,
        p.duration_seconds,
        v.frame_count,
        v.keyframes.len(),
        p.chapters
    );
    out.push_str(&format!(
        "video {}x{} {} {}-bit · primaries {} · transfer {} · matrix {} · range {} · rotation {}\n",
        v.width,
        v.height,
        v.pix_fmt,
        c.bit_depth,
        or_unset(&c.primaries),
        or_unset(&c.transfer),
        or_unset(&c.matrix),
        or_unset(&c.range),
        c.rotation
    ));
    for s in &p.streams {
        let mut line = s.describe();
        if s.sample_rate > 0 {
            line.push_str(&format!(" {} Hz", s.sample_rate));
        }
        if s.bitmap {
            line.push_str(" [pictures: MKV only]");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
