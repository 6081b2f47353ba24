//! Encoder identities: what fixes a rendition's parameter sets (SPS/PPS/VPS)
//! and quality behaviour. Chunks of one rendition stitch into one track only
//! when one identity made them all.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Codec;
use crate::{Error, Result};

/// The NVENC family (`h264_nvenc`, `hevc_nvenc`).
pub const NVENC: &str = "nvenc";
/// The Quick Sync family (`h264_qsv`, `hevc_qsv`).
pub const QSV: &str = "qsv";

/// The longest encoder parameter string a worker may report.
pub const MAX_PARAMS: usize = 256;

/// An encoder family, codec, bit depth and the operator's parameters for
/// the family: two chunks made with equal identities carry equal parameter
/// sets (the job's own settings, such as profile and rate control, are the
/// same for every chunk of a rendition).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncoderIdentity {
    /// `libx264`, `libx265`, [`NVENC`] or [`QSV`].
    pub family: String,
    pub codec: Codec,
    pub ten_bit: bool,
    /// The operator's x264-params / x265-params (empty: none).
    #[serde(default)]
    pub params: String,
}

impl EncoderIdentity {
    /// The stable, printable name: family, codec and depth, then a short
    /// digest of the parameters when there are any, e.g.
    /// `libx264-h264-8bit` or `libx264-h264-8bit+3f2a9c1e`.
    pub fn name(&self) -> String {
        let depth = if self.ten_bit { 10 } else { 8 };
        let mut name = format!("{}-{}-{depth}bit", self.family, self.codec.name());
        if !self.params.is_empty() {
            let digest = Sha256::digest(self.params.as_bytes());
            name.push('+');
            for b in &digest[..4] {
                name.push_str(&format!("{b:02x}"));
            }
        }
        name
    }

    /// Whether the family is a hardware encoder.
    pub fn hardware(&self) -> bool {
        self.family == NVENC || self.family == QSV
    }
}

impl std::fmt::Display for EncoderIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Checks an operator's encoder parameters for a family: `key=value` pairs
/// joined by `:`, of letters, digits and `=:._,-+/` only, at most
/// [`MAX_PARAMS`] bytes; only the software families take them.
pub fn check_params(family: &str, params: &str) -> Result<()> {
    if !matches!(family, "libx264" | "libx265") {
        return Err(Error::invalid(format!(
            "encoder parameters for {family:?}: only libx264 and libx265 take them"
        )));
    }
    if params.len() > MAX_PARAMS {
        return Err(Error::invalid(format!(
            "{family} parameters are {} bytes (at most {MAX_PARAMS})",
            params.len()
        )));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "=:._,-+/".contains(c);
    if let Some(bad) = params.chars().find(|&c| !allowed(c)) {
        return Err(Error::invalid(format!(
            "{family} parameters {params:?} contain {bad:?} (letters, digits and =:._,-+/ only)"
        )));
    }
    if params.split(':').any(|kv| !kv.contains('=')) && !params.is_empty() {
        return Err(Error::invalid(format!(
            "{family} parameters {params:?}: expected key=value pairs joined by ':'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_printable() {
        let mut id = EncoderIdentity {
            family: "libx264".into(),
            codec: Codec::H264,
            ten_bit: false,
            params: String::new(),
        };
        assert_eq!(id.name(), "libx264-h264-8bit");
        id.params = "level=3.1:ref=1".into();
        let named = id.name();
        assert!(named.starts_with("libx264-h264-8bit+"), "{named}");
        assert_eq!(named.len(), "libx264-h264-8bit+".len() + 8);
        assert_eq!(named, id.clone().name());
        id.params = "level=4.1".into();
        assert_ne!(id.name(), named);
        let nv = EncoderIdentity {
            family: NVENC.into(),
            codec: Codec::Hevc,
            ten_bit: true,
            params: String::new(),
        };
        assert_eq!(nv.name(), "nvenc-hevc-10bit");
    }

    #[test]
    fn params_are_checked() {
        assert!(check_params("libx264", "level=3.1:ref=1").is_ok());
        assert!(check_params("libx264", "").is_ok());
        assert!(check_params("nvenc", "a=b").is_err());
        assert!(check_params("libx265", "a=b;rm").is_err());
        assert!(check_params("libx265", "noequals").is_err());
        assert!(check_params("libx264", &"a=b:".repeat(100)).is_err());
    }
}
