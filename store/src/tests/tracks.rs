//! Multi-track jobs: one audio task per kept track, every stitch carrying
//! the kept subtitles and attachments, the audio filled in source order.

use super::*;
use spotenc_core::graph::expand_spec;
use spotenc_core::state::machine::fill_stitch;

fn stream(index: u32, kind: StreamKind, codec: &str, language: &str) -> StreamInfo {
    StreamInfo {
        index,
        kind: Some(kind),
        codec: codec.into(),
        language: language.into(),
        bitmap: codec == "hdmv_pgs_subtitle",
        ..Default::default()
    }
}

fn multi_track_probe() -> ProbeInfo {
    ProbeInfo {
        streams: vec![
            stream(0, StreamKind::Video, "h264", ""),
            stream(1, StreamKind::Audio, "aac", "eng"),
            stream(2, StreamKind::Subtitle, "subrip", "eng"),
            stream(3, StreamKind::Audio, "ac3", "spa"),
            stream(4, StreamKind::Subtitle, "hdmv_pgs_subtitle", "spa"),
            stream(5, StreamKind::Attachment, "ttf", ""),
        ],
        ..probe_info()
    }
}

fn mkv_spec() -> JobSpec {
    let mut s = spec();
    s.output = s.output.replace(".mp4", ".mkv");
    s.container = Container::Mkv;
    s
}

#[test]
fn every_audio_track_is_its_own_task_and_stitches_carry_the_rest() {
    let tasks = expand_spec("j", &mkv_spec(), &multi_track_probe(), "/w").unwrap();
    let audio: Vec<(&str, Option<u32>, &str)> = tasks
        .iter()
        .filter_map(|t| match &t.work {
            Work::Audio(a) => Some((t.id.as_str(), a.stream, a.output.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        audio,
        vec![
            ("j/audio", Some(1), "/w/audio.nut"),
            ("j/audio-1", Some(3), "/w/audio-1.nut")
        ]
    );
    let Work::Stitch(stitch) = &tasks.last().unwrap().work else {
        panic!("the stitch comes last")
    };
    let carry = stitch.carry.as_ref().expect("carried from the source");
    assert_eq!(carry.audio_streams, vec![1, 3]);
    assert_eq!(carry.subtitle_streams, vec![2, 4]);
    assert_eq!(carry.attachment_streams, vec![5]);
    assert_eq!(carry.input, "/in.mp4");
    let deps = &tasks.last().unwrap().deps;
    assert!(deps.contains(&"j/audio-1".to_string()), "{deps:?}");

    // Selections narrow what is kept.
    let mut s = mkv_spec();
    s.audio_tracks = "lang:spa".parse().unwrap();
    s.subtitle_tracks = TrackSelection::None;
    let tasks = expand_spec("j", &s, &multi_track_probe(), "/w").unwrap();
    let streams: Vec<Option<u32>> = tasks
        .iter()
        .filter_map(|t| match &t.work {
            Work::Audio(a) => Some(a.stream),
            _ => None,
        })
        .collect();
    assert_eq!(streams, vec![Some(3)]);
}

#[test]
fn picture_subtitles_bound_for_mp4_are_refused_naming_the_track() {
    let e = expand_spec("j", &spec(), &multi_track_probe(), "/w")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("#4 subtitle hdmv_pgs_subtitle spa") && e.contains("--container mkv"),
        "{e}"
    );
    // Without that track, MP4 is fine.
    let mut s = spec();
    s.subtitle_tracks = "lang:eng".parse().unwrap();
    assert!(expand_spec("j", &s, &multi_track_probe(), "/w").is_ok());
    // A rendition into MP4 is checked too.
    let mut s = mkv_spec();
    s.renditions.push(Rendition {
        video: s.video.clone(),
        output: "/r.mp4".into(),
        container: Container::Mp4,
    });
    assert!(expand_spec("j", &s, &multi_track_probe(), "/w").is_err());
}

#[test]
fn a_selection_matching_nothing_fails_the_plan_naming_the_tracks() {
    let mut s = mkv_spec();
    s.audio_tracks = "lang:fre".parse().unwrap();
    let e = expand_spec("j", &s, &multi_track_probe(), "/w")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("language fre") && e.contains("0: #1 audio aac eng; 1: #3 audio ac3 spa"),
        "{e}"
    );
}

#[test]
fn probes_made_before_streams_were_listed_plan_as_before() {
    // Records in a store from before multi-track audio: the best audio
    // stream only, nothing carried.
    let mut probe = probe_info();
    probe.audio = Some(AudioStreamInfo {
        stream_index: 1,
        codec: "aac".into(),
        sample_rate: 48_000,
        channels: 2,
        start_offset_seconds: 0.0,
    });
    let tasks = expand_spec("j", &spec(), &probe, "/w").unwrap();
    let audio: Vec<_> = tasks
        .iter()
        .filter_map(|t| match &t.work {
            Work::Audio(a) => Some((t.id.clone(), a.stream)),
            _ => None,
        })
        .collect();
    assert_eq!(audio, vec![("j/audio".to_string(), None)]);
    let Work::Stitch(stitch) = &tasks.last().unwrap().work else {
        panic!("the stitch comes last")
    };
    assert_eq!(stitch.carry, None);
}

#[test]
fn the_stitch_gets_every_audio_track_in_dependency_order() {
    let tasks = expand_spec("j", &mkv_spec(), &multi_track_probe(), "/w").unwrap();
    let Work::Stitch(stitch) = &tasks.last().unwrap().work else {
        panic!("the stitch comes last")
    };
    let results = vec![
        (
            "j/encode-00000".into(),
            Some(TaskOutcome::Encode(obj("/w/c0", 50))),
        ),
        ("j/audio".into(), Some(TaskOutcome::Audio(obj("/w/a0", 10)))),
        (
            "j/audio-1".into(),
            Some(TaskOutcome::Audio(obj("/w/a1", 10))),
        ),
    ];
    let Work::Stitch(filled) = fill_stitch(stitch, results).unwrap() else {
        panic!("a stitch")
    };
    let paths: Vec<&str> = filled.audio_objects().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, vec!["/w/a0", "/w/a1"]);
    assert_eq!(filled.chunks.len(), 1);
}

#[test]
fn hdr_sources_go_only_to_10_bit_hevc() {
    let mut probe = probe_info();
    probe.color = ColorInfo {
        primaries: "bt2020".into(),
        transfer: "smpte2084".into(),
        matrix: "bt2020nc".into(),
        range: "tv".into(),
        bit_depth: 10,
        rotation: 0,
    };
    // H.264 (8-bit by default) would be a wrong-coloured PQ file.
    let e = expand_spec("j", &spec(), &probe, "/w")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("HDR (smpte2084 transfer") && e.contains("8-bit h264"),
        "{e}"
    );
    let mut s = spec();
    s.video.codec = Codec::Hevc;
    assert!(expand_spec("j", &s, &probe, "/w").is_ok());
    s.video.bit_depth = Some(8);
    assert!(expand_spec("j", &s, &probe, "/w").is_err());
    // HLG too; an SDR 10-bit source may become 8-bit H.264.
    probe.color.transfer = "arib-std-b67".into();
    assert!(expand_spec("j", &spec(), &probe, "/w").is_err());
    probe.color.transfer = "bt709".into();
    assert!(expand_spec("j", &spec(), &probe, "/w").is_ok());
    // Asked to tone-map, H.264 is fine.
    probe.color.transfer = "smpte2084".into();
    let mut s = spec();
    s.video.tonemap = true;
    assert!(expand_spec("j", &s, &probe, "/w").is_ok());
}

#[test]
fn rotated_sources_are_refused_for_matroska_outputs() {
    let mut probe = probe_info();
    probe.color.rotation = -90;
    assert!(expand_spec("j", &spec(), &probe, "/w").is_ok());
    let e = expand_spec("j", &mkv_spec(), &probe, "/w")
        .unwrap_err()
        .to_string();
    assert!(e.contains("rotated -90 degrees"), "{e}");
    // Turned pixels need no matrix, and the stitch is told not to copy it.
    let mut s = mkv_spec();
    s.video.autorotate = true;
    let tasks = expand_spec("j", &s, &probe, "/w").unwrap();
    let Work::Stitch(stitch) = &tasks.last().unwrap().work else {
        panic!("the stitch comes last")
    };
    assert!(stitch.autorotated);
}

#[test]
fn what_the_outputs_leave_out_is_listed_with_the_reason() {
    let mut s = mkv_spec();
    s.audio_tracks = "lang:spa".parse().unwrap();
    s.subtitle_tracks = "0".parse().unwrap();
    let mut probe = multi_track_probe();
    probe
        .streams
        .push(stream(6, StreamKind::Data, "bin_data", ""));
    assert_eq!(
        spotenc_core::plan::left_out(&s, &probe),
        vec![
            "#1 audio aac eng: not selected by --audio",
            "#4 subtitle hdmv_pgs_subtitle spa: not selected by --subtitles",
            "#6 data bin_data: data streams are not carried",
        ]
    );
    // MP4 cannot hold the attachment.
    let mut s = spec();
    s.subtitle_tracks = "0".parse().unwrap();
    let lines = spotenc_core::plan::left_out(&s, &multi_track_probe());
    assert!(
        lines.contains(&format!(
            "#5 attachment ttf: MP4 cannot hold attachments ({})",
            s.output
        )),
        "{lines:?}"
    );
    // Everything kept: nothing to say.
    assert!(
        spotenc_core::plan::left_out(&mkv_spec(), &multi_track_probe())
            .iter()
            .all(|l| l.contains("data"))
    );
}

#[test]
fn each_audio_task_says_its_work_for_pricing() {
    let mut probe = multi_track_probe();
    probe.streams[1].channels = 2;
    probe.streams[3].channels = 6;
    let tasks = expand_spec("j", &mkv_spec(), &probe, "/w").unwrap();
    let audio: Vec<_> = tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Audio)
        .map(|t| t.demand.audio.expect("audio work"))
        .collect();
    // AAC is copied, AC-3 encoded; both last the video's 2 s.
    assert_eq!(audio.len(), 2);
    assert_eq!((audio[0].channels, audio[0].encode), (2, false));
    assert_eq!((audio[1].channels, audio[1].encode), (6, true));
    assert!(audio.iter().all(|a| (a.seconds - 2.0).abs() < 1e-9));
}

#[test]
fn subtitles_no_output_can_hold_are_left_out_by_default_and_refused_by_name() {
    let mut probe = multi_track_probe();
    probe
        .streams
        .push(stream(6, StreamKind::Subtitle, "eia_608", "eng"));
    let s = mkv_spec();
    let tasks = expand_spec("j", &s, &probe, "/w").unwrap();
    let Work::Stitch(stitch) = &tasks.last().unwrap().work else {
        panic!("the stitch comes last")
    };
    assert_eq!(stitch.carry.as_ref().unwrap().subtitle_streams, vec![2, 4]);
    let lines = spotenc_core::plan::left_out(&s, &probe);
    assert!(
        lines.contains(&format!(
            "#6 subtitle eia_608 eng: eia_608 cannot be carried into {}",
            s.output
        )),
        "{lines:?}"
    );
    let mut named = mkv_spec();
    named.subtitle_tracks = "2".parse().unwrap();
    let e = expand_spec("j", &named, &probe, "/w")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("#6 subtitle eia_608 eng cannot be carried"),
        "{e}"
    );
    // mov_text goes to Matroska (converted) and to MP4.
    assert!(spotenc_core::plan::subtitle_carriable(
        "mov_text",
        Container::Mkv
    ));
    assert!(spotenc_core::plan::subtitle_carriable(
        "subrip",
        Container::Mp4
    ));
    assert!(!spotenc_core::plan::subtitle_carriable(
        "hdmv_pgs_subtitle",
        Container::Mp4
    ));
}
