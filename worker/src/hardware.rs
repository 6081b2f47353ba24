//! Which encoder a slot runs a chunk with, and hardware encoders withdrawn
//! after a failure. A chunk is encoded with exactly the encoder identities
//! its lease names (its rendition's, so the chunks stitch); a slot that
//! cannot, or whose hardware fails, hands the chunk back, never re-encodes it
//! with another family.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use spotenc_media::encode::Hardware;
use spotenc_proto::domain::{EncodeTask, NVENC, QSV};

/// Hardware families this worker does not offer now, each until a retry.
#[derive(Debug)]
pub struct Withdrawn {
    until: Mutex<BTreeMap<String, Instant>>,
    retry: Duration,
}

impl Withdrawn {
    pub fn new(retry: Duration) -> Withdrawn {
        Withdrawn {
            until: Mutex::default(),
            retry,
        }
    }

    /// Stops offering `family` for the retry period.
    pub fn withdraw(&self, family: &str) {
        let until = Instant::now() + self.retry;
        self.lock().insert(family.to_string(), until);
    }

    /// The families withdrawn now (what lease requests report).
    pub fn active(&self) -> Vec<String> {
        let now = Instant::now();
        let mut until = self.lock();
        until.retain(|_, t| *t > now);
        until.keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Instant>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hardware family of a slot's encoder, if it has one.
pub fn family_of(hw: Hardware) -> Option<&'static str> {
    match hw {
        Hardware::Nvenc { .. } => Some(NVENC),
        Hardware::Qsv => Some(QSV),
        Hardware::Software | Hardware::Nvdec { .. } => None,
    }
}

/// How `slot` encodes `task`: as its identities say (a lease without
/// identities, from tools and tests: the slot's own encoder). `Err` says
/// why this slot cannot, and the chunk goes back.
pub fn hardware_for(
    task: &EncodeTask,
    slot: Hardware,
    withdrawn: &[String],
) -> Result<Hardware, String> {
    let Some(first) = task.identities.first() else {
        return Ok(slot);
    };
    if task.identities.iter().any(|i| i.family != first.family) && first.hardware() {
        return Err(format!(
            "the chunk's renditions name different encoder families ({})",
            names(task)
        ));
    }
    if !first.hardware() {
        // libx264/libx265: the CPU encodes; NVDEC may still decode.
        return Ok(match slot {
            Hardware::Nvdec { gpu } => Hardware::Nvdec { gpu },
            _ => Hardware::Software,
        });
    }
    let family = first.family.as_str();
    if withdrawn.iter().any(|w| w == family) {
        return Err(format!(
            "{family} is withdrawn on this worker after a failure; {} needs it",
            names(task)
        ));
    }
    match family_of(slot) {
        Some(f) if f == family => Ok(slot),
        _ => Err(format!(
            "this slot has no {family} encoder; the chunk's identities are {}",
            names(task)
        )),
    }
}

fn names(task: &EncodeTask) -> String {
    task.identities
        .iter()
        .map(|i| i.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spotenc_proto::domain::{Codec, EncoderIdentity};

    fn task(families: &[&str]) -> EncodeTask {
        EncodeTask {
            input: String::new(),
            output: String::new(),
            chunk: spotenc_proto::domain::ChunkRange {
                index: 0,
                start_frame: 0,
                end_frame: 1,
                start_pts: 0,
                end_pts: None,
            },
            video: spotenc_proto::domain::VideoSettings {
                codec: Codec::H264,
                rate: spotenc_proto::domain::RateControl::Crf(23),
                preset: "medium".into(),
                profile: None,
                keyint: None,
                max_size: None,
                allow_upscale: false,
                bit_depth: None,
                tonemap: false,
                autorotate: false,
            },
            origin_pts: 0,
            video_stream: 0,
            source_frame_rate: spotenc_proto::domain::Rational::new(25, 1),
            renditions: vec![],
            identities: families
                .iter()
                .map(|f| EncoderIdentity {
                    family: f.to_string(),
                    codec: Codec::H264,
                    ten_bit: false,
                    params: String::new(),
                })
                .collect(),
            measure_quality: false,
        }
    }

    #[test]
    fn a_slot_encodes_exactly_what_the_identities_name() {
        let nv = Hardware::Nvenc { gpu: 0 };
        assert_eq!(hardware_for(&task(&[]), nv, &[]), Ok(nv));
        assert_eq!(hardware_for(&task(&["nvenc"]), nv, &[]), Ok(nv));
        // Software identity on a GPU slot: the CPU encodes it.
        assert_eq!(
            hardware_for(&task(&["libx264"]), nv, &[]),
            Ok(Hardware::Software)
        );
        assert_eq!(
            hardware_for(&task(&["libx264"]), Hardware::Nvdec { gpu: 1 }, &[]),
            Ok(Hardware::Nvdec { gpu: 1 })
        );
        // NVENC named, but this slot has none, or it is withdrawn: back.
        let e = hardware_for(&task(&["nvenc"]), Hardware::Software, &[]).unwrap_err();
        assert!(e.contains("no nvenc encoder"), "{e}");
        let e = hardware_for(&task(&["nvenc"]), nv, &["nvenc".into()]).unwrap_err();
        assert!(e.contains("withdrawn"), "{e}");
        assert!(hardware_for(&task(&["nvenc", "libx264"]), nv, &[]).is_err());
    }

    #[test]
    fn a_withdrawn_family_comes_back_after_the_retry() {
        let w = Withdrawn::new(Duration::from_millis(50));
        w.withdraw("nvenc");
        assert_eq!(w.active(), vec!["nvenc".to_string()]);
        std::thread::sleep(Duration::from_millis(80));
        assert!(w.active().is_empty());
    }
}
