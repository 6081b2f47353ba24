//! The streams of a source besides the video a job encodes, and which of
//! them a job keeps.
//!
//! A probe lists every stream ([`StreamInfo`]); a job keeps every audio and
//! subtitle track unless its [`TrackSelection`]s say otherwise; the plan
//! resolves a selection against the probe ([`TrackSelection::resolve`]) and
//! refuses one that matches nothing, naming what exists.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamKind {
    Video,
    Audio,
    Subtitle,
    Attachment,
    Data,
}

impl StreamKind {
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Video => "video",
            StreamKind::Audio => "audio",
            StreamKind::Subtitle => "subtitle",
            StreamKind::Attachment => "attachment",
            StreamKind::Data => "data",
        }
    }

    pub fn from_name(name: &str) -> Option<StreamKind> {
        [
            StreamKind::Video,
            StreamKind::Audio,
            StreamKind::Subtitle,
            StreamKind::Attachment,
            StreamKind::Data,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One stream of a source, as the probe saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream's index in the source container.
    pub index: u32,
    pub kind: Option<StreamKind>,
    /// FFmpeg's codec name (`aac`, `subrip`, `hdmv_pgs_subtitle`, …).
    pub codec: String,
    /// ISO 639 language tag; empty when the source has none.
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub title: String,
    /// FFmpeg's disposition names that are set: `default`, `forced`,
    /// `hearing_impaired`, `visual_impaired`, `comment`, …
    #[serde(default)]
    pub disposition: Vec<String>,
    /// Audio only.
    #[serde(default)]
    pub channels: u32,
    /// Audio only: FFmpeg's layout name (`stereo`, `5.1(side)`, `7.1`).
    #[serde(default)]
    pub channel_layout: String,
    #[serde(default)]
    pub sample_rate: u32,
    /// Subtitles only: pictures (PGS, DVB, VobSub), not text.
    #[serde(default)]
    pub bitmap: bool,
    /// Where the stream starts relative to the first video frame (seconds).
    #[serde(default)]
    pub start_offset_seconds: f64,
}

impl StreamInfo {
    pub fn is(&self, kind: StreamKind) -> bool {
        self.kind == Some(kind)
    }

    /// `#2 audio aac eng "Commentary" (5.1, comment)`: how errors and
    /// `spotenc probe` name a stream.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "#{} {} {}",
            self.index,
            self.kind.map_or("unknown", StreamKind::name),
            self.codec
        );
        if !self.language.is_empty() {
            s.push_str(&format!(" {}", self.language));
        }
        if !self.title.is_empty() {
            s.push_str(&format!(" {:?}", self.title));
        }
        let mut extra: Vec<String> = Vec::new();
        if !self.channel_layout.is_empty() {
            extra.push(self.channel_layout.clone());
        }
        extra.extend(self.disposition.iter().cloned());
        if !extra.is_empty() {
            s.push_str(&format!(" ({})", extra.join(", ")));
        }
        s
    }
}

/// Which tracks of one kind a job keeps: `all` (the default), `none`, or a
/// list naming tracks by their position among that kind's tracks (`0,2`)
/// or by language (`lang:eng,spa`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TrackSelection {
    #[default]
    All,
    None,
    List(Vec<TrackRef>),
}

/// One entry of a [`TrackSelection`] list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackRef {
    /// The n-th track of the kind, from 0, in source order.
    Position(u32),
    Language(String),
}

impl std::str::FromStr for TrackSelection {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "" | "all" => return Ok(TrackSelection::All),
            "none" => return Ok(TrackSelection::None),
            _ => {}
        }
        let (langs, body) = match s.strip_prefix("lang:") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let refs = body
            .split(',')
            .map(str::trim)
            .map(|item| {
                if langs {
                    let ok = (2..=8).contains(&item.len())
                        && item.chars().all(|c| c.is_ascii_alphabetic() || c == '-');
                    ok.then(|| TrackRef::Language(item.to_ascii_lowercase()))
                } else {
                    item.parse().ok().map(TrackRef::Position)
                }
            })
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty() && v.len() <= 64)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "invalid track selection {s:?} (expected all, none, positions like 0,2 \
                     or languages like lang:eng,spa)"
                ))
            })?;
        Ok(TrackSelection::List(refs))
    }
}

impl std::fmt::Display for TrackSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackSelection::All => f.write_str("all"),
            TrackSelection::None => f.write_str("none"),
            TrackSelection::List(refs) => {
                let langs = matches!(refs.first(), Some(TrackRef::Language(_)));
                let items: Vec<String> = refs
                    .iter()
                    .map(|r| match r {
                        TrackRef::Position(n) => n.to_string(),
                        TrackRef::Language(l) => l.clone(),
                    })
                    .collect();
                if langs {
                    f.write_str("lang:")?;
                }
                f.write_str(&items.join(","))
            }
        }
    }
}

impl From<TrackSelection> for String {
    fn from(s: TrackSelection) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for TrackSelection {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl TrackSelection {
    /// The source indexes of the `kind` streams this selection keeps, in
    /// source order. A list that matches no stream is refused, naming the
    /// streams of that kind the source has.
    pub fn resolve(&self, kind: StreamKind, streams: &[StreamInfo]) -> Result<Vec<u32>> {
        let of_kind: Vec<&StreamInfo> = streams.iter().filter(|s| s.is(kind)).collect();
        let refs = match self {
            TrackSelection::All => return Ok(of_kind.iter().map(|s| s.index).collect()),
            TrackSelection::None => return Ok(vec![]),
            TrackSelection::List(refs) => refs,
        };
        let mut kept = Vec::new();
        for r in refs {
            let found: Vec<u32> = match r {
                TrackRef::Position(n) => of_kind
                    .get(*n as usize)
                    .map(|s| s.index)
                    .into_iter()
                    .collect(),
                TrackRef::Language(l) => of_kind
                    .iter()
                    .filter(|s| s.language.eq_ignore_ascii_case(l))
                    .map(|s| s.index)
                    .collect(),
            };
            if found.is_empty() {
                let what = match r {
                    TrackRef::Position(n) => format!("{} track {n}", kind.name()),
                    TrackRef::Language(l) => format!("{} track in language {l}", kind.name()),
                };
                let have = if of_kind.is_empty() {
                    "none".to_string()
                } else {
                    of_kind
                        .iter()
                        .enumerate()
                        .map(|(i, s)| format!("{i}: {}", s.describe()))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(Error::invalid(format!(
                    "the selection asks for {what}, which the source does not have \
                     (its {} tracks: {have})",
                    kind.name()
                )));
            }
            kept.extend(found);
        }
        kept.sort_unstable();
        kept.dedup();
        Ok(kept)
    }
}

/// The colour description and HDR metadata of a video stream, as FFmpeg
/// names them (`bt2020`, `smpte2084`, `bt2020nc`, `tv`); empty when unset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColorInfo {
    #[serde(default)]
    pub primaries: String,
    #[serde(default)]
    pub transfer: String,
    #[serde(default)]
    pub matrix: String,
    #[serde(default)]
    pub range: String,
    /// Bits per sample of the source's pixel format.
    #[serde(default)]
    pub bit_depth: u32,
    /// Degrees the display matrix rotates the picture (counter-clockwise,
    /// as ffprobe reports it); 0 when there is none.
    #[serde(default)]
    pub rotation: i32,
}

impl ColorInfo {
    /// PQ (HDR10) or HLG.
    pub fn is_hdr(&self) -> bool {
        matches!(self.transfer.as_str(), "smpte2084" | "arib-std-b67")
    }
}
