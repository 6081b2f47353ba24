//! What a stitch takes straight from the source, so that nothing the user
//! gave is lost: each kept stream's tags and disposition, the video's
//! display matrix and HDR side data, subtitle packets (rebased to the job's
//! origin and cut at its duration; text converted to mov_text for MP4),
//! attachments (fonts), chapters and the global tags.

use spotenc_proto::domain::{Container, SourceCarry};

use crate::ffi::streams;
use crate::ffmpeg::{self, codec, format, media, Rational};
use crate::{input, Control, Error, Result};

/// Tags a remux must not copy: they describe the source file's own
/// encoding or statistics, which the output does not share.
fn stale_tag(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "encoder" | "major_brand" | "minor_version" | "compatible_brands" | "duration" | "bps"
    ) || k.starts_with("number_of_")
        || k.starts_with("_statistics_")
}

fn dictionary(tags: &[(String, String)]) -> ffmpeg::Dictionary<'static> {
    let mut dict = ffmpeg::Dictionary::new();
    for (k, v) in tags {
        dict.set(k, v);
    }
    dict
}

/// Stream `i` of the source, which must be of the `want` kind.
fn source_stream<'a>(
    ictx: &'a format::context::Input,
    carry: &SourceCarry,
    i: u32,
    want: media::Type,
) -> Result<format::stream::Stream<'a>> {
    ictx.stream(i as usize)
        .filter(|s| s.parameters().medium() == want)
        .ok_or_else(|| Error::BadInput {
            path: input::shown(&carry.input),
            reason: format!("stream {i} is not a {want:?} stream"),
        })
}

fn kept_tags(dict: ffmpeg::DictionaryRef) -> Vec<(String, String)> {
    dict.iter()
        .filter(|(k, _)| !stale_tag(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A source stream's tags, disposition and carried side data.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamMeta {
    pub tags: Vec<(String, String)>,
    pub disposition: i32,
    pub side_data: Vec<(ffmpeg::ffi::AVPacketSideDataType, Vec<u8>)>,
}

impl StreamMeta {
    fn of(s: &format::stream::Stream) -> StreamMeta {
        StreamMeta {
            tags: kept_tags(s.metadata()),
            disposition: streams::disposition(s),
            side_data: streams::CARRIED_SIDE_DATA
                .into_iter()
                .filter_map(|k| streams::side_data(s, k).map(|d| (k, d)))
                .collect(),
        }
    }

    /// Drops the display matrix where the pixels are already turned, and
    /// the HDR metadata where the output is no longer HDR (tone-mapped).
    pub fn keep_side_data(&mut self, rotation: bool, hdr: bool) {
        use crate::ffmpeg::ffi::AVPacketSideDataType as T;
        self.side_data.retain(|(k, _)| match k {
            T::AV_PKT_DATA_DISPLAYMATRIX => rotation,
            _ => hdr,
        });
    }

    /// Writes the tags, disposition and side data onto an output stream.
    pub fn apply(&self, ost: &mut format::stream::StreamMut) -> Result<()> {
        ost.set_metadata(dictionary(&self.tags));
        streams::set_disposition(ost, self.disposition);
        for (kind, data) in &self.side_data {
            streams::add_side_data(ost, *kind, data).map_err(Error::ff("stream side data"))?;
        }
        Ok(())
    }
}

/// A subtitle track, read whole (subtitles are small).
pub(crate) struct SubtitleTrack {
    pub meta: StreamMeta,
    pub params: codec::Parameters,
    pub time_base: Rational,
    pub packets: Vec<ffmpeg::Packet>,
}

/// An attachment stream (a font): parameters hold the file, tags its name
/// and MIME type.
pub(crate) struct Attachment {
    pub meta: StreamMeta,
    pub params: codec::Parameters,
}

/// Everything a stitch carries from the source.
#[derive(Default)]
pub(crate) struct Carried {
    pub video: StreamMeta,
    /// In the stitch's audio order.
    pub audio: Vec<StreamMeta>,
    pub subtitles: Vec<SubtitleTrack>,
    pub attachments: Vec<Attachment>,
    pub chapters: Vec<Chapter>,
    pub tags: Vec<(String, String)>,
}

/// Reads what `carry` names from the source, for an output in `container`.
pub(crate) fn load(carry: &SourceCarry, container: Container, ctl: &Control) -> Result<Carried> {
    let mut ictx = input::open_uri(&carry.input, ctl)?;
    let meta = |i: u32, want: media::Type| {
        source_stream(&ictx, carry, i, want).map(|s| StreamMeta::of(&s))
    };
    let video = meta(carry.video_stream, media::Type::Video)?;
    let audio = carry
        .audio_streams
        .iter()
        .map(|&i| meta(i, media::Type::Audio))
        .collect::<Result<Vec<_>>>()?;
    let mut attachments = Vec::new();
    if container == Container::Mkv {
        for &i in &carry.attachment_streams {
            let s = source_stream(&ictx, carry, i, media::Type::Attachment)?;
            attachments.push(Attachment {
                meta: StreamMeta::of(&s),
                params: s.parameters(),
            });
        }
    }
    let chapters = chapters(&ictx, carry.origin_seconds, carry.duration_seconds);
    let tags = kept_tags(ictx.metadata());
    let subtitles = read_subtitles(&mut ictx, carry, container, ctl)?;
    Ok(Carried {
        video,
        audio,
        subtitles,
        attachments,
        chapters,
        tags,
    })
}

/// Reads every packet of the kept subtitle streams, rebased to the origin
/// and cut at the duration; text becomes mov_text for MP4, and pictures
/// cannot go there at all.
fn read_subtitles(
    ictx: &mut format::context::Input,
    carry: &SourceCarry,
    container: Container,
    ctl: &Control,
) -> Result<Vec<SubtitleTrack>> {
    let mut tracks = Vec::new();
    let mut converters = Vec::new();
    for &i in &carry.subtitle_streams {
        let s = source_stream(ictx, carry, i, media::Type::Subtitle)?;
        let tb = s.time_base();
        let params = s.parameters();
        let converter = match container {
            // Matroska has no mov_text: it becomes SubRip there.
            Container::Mkv if params.id() == codec::Id::MOV_TEXT => Some(
                streams::TextConverter::new(&params, tb, codec::Id::SUBRIP).map_err(|e| {
                    Error::Unsupported(format!("subtitle stream {i} to subrip: {e}"))
                })?,
            ),
            Container::Mkv => None,
            Container::Mp4 if params.id() == codec::Id::MOV_TEXT => None,
            Container::Mp4 if crate::probe::is_bitmap_subtitle(params.id()) => {
                return Err(Error::Unsupported(format!(
                    "subtitle stream {i} ({:?}) is a picture format MP4 cannot hold",
                    params.id()
                )));
            }
            Container::Mp4 => Some(
                streams::TextConverter::new(&params, tb, codec::Id::MOV_TEXT).map_err(|e| {
                    Error::Unsupported(format!("subtitle stream {i} to mov_text: {e}"))
                })?,
            ),
        };
        let params = match &converter {
            Some(c) => c.parameters(),
            None => params,
        };
        tracks.push(SubtitleTrack {
            meta: StreamMeta::of(&s),
            params,
            time_base: tb,
            packets: Vec::new(),
        });
        converters.push(converter);
    }
    if tracks.is_empty() {
        return Ok(tracks);
    }
    for (s, packet) in ictx.packets() {
        ctl.check()?;
        let Some(n) = carry
            .subtitle_streams
            .iter()
            .position(|&i| i as usize == s.index())
        else {
            continue;
        };
        let tb = tracks[n].time_base;
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        // On the job's timeline: an event still on screen at the origin
        // starts there, one past the end is not shown.
        let origin = (carry.origin_seconds / f64::from(tb)).round() as i64;
        let end = origin + (carry.duration_seconds / f64::from(tb)).round() as i64;
        let duration = packet.duration().max(0);
        if pts >= end || pts + duration <= origin && !(duration == 0 && pts == origin) {
            continue;
        }
        let start = pts.max(origin);
        let mut out = match &mut converters[n] {
            None => packet.clone(),
            Some(c) => match c.convert(&packet) {
                Ok(Some(data)) => ffmpeg::Packet::copy(&data),
                Ok(None) => continue,
                // One unreadable event (text that is not UTF-8) is skipped,
                // not the job.
                Err(e) => {
                    tracing::warn!(stream = carry.subtitle_streams[n], pts, error = %e, "subtitle event skipped");
                    continue;
                }
            },
        };
        out.set_pts(Some(start - origin));
        out.set_dts(Some(start - origin));
        out.set_duration((pts + duration).min(end) - start);
        out.set_flags(ffmpeg::packet::Flags::KEY);
        tracks[n].packets.push(out);
    }
    input::read_ok(ictx, ctl, &carry.input)?;
    for t in &mut tracks {
        // In time order for the muxer; events at one time keep theirs.
        t.packets.sort_by_key(|p| p.pts());
    }
    Ok(tracks)
}

/// One chapter, in seconds on the job's timeline, with its tags.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Chapter {
    pub start: f64,
    pub end: f64,
    pub tags: Vec<(String, String)>,
}

/// The input's chapters, rebased to `origin` and cut at `duration`.
fn chapters(input: &format::context::Input, origin: f64, duration: f64) -> Vec<Chapter> {
    input
        .chapters()
        .map(|c| {
            let tb = f64::from(c.time_base());
            Chapter {
                start: (c.start() as f64 * tb - origin).max(0.0),
                end: (c.end() as f64 * tb - origin).min(duration),
                tags: c
                    .metadata()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        })
        .filter(|c| c.end > c.start)
        .collect()
}

/// Adds the chapters (in milliseconds) and global tags to an output before
/// its header.
pub(crate) fn apply_global(carried: &Carried, octx: &mut format::context::Output) -> Result<()> {
    octx.set_metadata(dictionary(&carried.tags));
    let ms = |s: f64| (s * 1000.0).round() as i64;
    for (i, c) in carried.chapters.iter().enumerate() {
        let title = c
            .tags
            .iter()
            .find(|(k, _)| k == "title")
            .map_or("", |(_, v)| v.as_str());
        let mut ch = octx
            .add_chapter(
                i as i64,
                Rational::new(1, 1000),
                ms(c.start),
                ms(c.end),
                title,
            )
            .map_err(Error::ff("add chapter"))?;
        for (k, v) in c.tags.iter().filter(|(k, _)| k != "title") {
            ch.set_metadata(k, v);
        }
    }
    Ok(())
}
