use crate::domain::*;
use crate::pb;

fn spec() -> JobSpec {
    JobSpec {
        renditions: Default::default(),
        audio_tracks: Default::default(),
        subtitle_tracks: Default::default(),
        quality: Default::default(),
        input: "/in.mp4".into(),
        output: "/out.mp4".into(),
        video: VideoSettings {
            codec: Codec::Hevc,
            rate: RateControl::Bitrate {
                bitrate_bps: 2_000_000,
                maxrate_bps: 3_000_000,
                bufsize_bits: 6_000_000,
            },
            preset: "fast".into(),
            profile: Some("main".into()),
            keyint: Some(48),
            max_size: Some((1280, 720)),
            allow_upscale: false,
            bit_depth: None,
            tonemap: false,
            autorotate: false,
        },
        audio: AudioSettings {
            copy_if_aac: false,
            bitrate_bps: 96_000,
        },
        container: Container::Mkv,
        chunk_seconds: 120.0,
        min_chunk_seconds: 30.0,
        priority: Priority::Latency,
        max_attempts: 4,
        escalate_after_attempts: 3,
        escalate_after_wait_seconds: 60,
    }
}

#[test]
fn job_spec_round_trips_through_the_wire() {
    let s = spec();
    let wire = pb::JobSpec::from(s.clone());
    assert_eq!(JobSpec::try_from(wire).unwrap(), s);
}

#[test]
fn unset_wire_fields_take_documented_defaults() {
    let wire = pb::JobSpec {
        input: "/a.mov".into(),
        output: "/b.mp4".into(),
        video: Some(pb::VideoSettings {
            codec: pb::Codec::H264 as i32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = JobSpec::try_from(wire).unwrap();
    assert_eq!(s.container, Container::Mp4);
    assert_eq!(s.video.rate, RateControl::Crf(23));
    assert_eq!(s.video.preset, "medium");
    assert_eq!(s.chunk_seconds, JobSpec::DEFAULT_CHUNK_SECONDS);
    assert_eq!(s.priority, Priority::Cost);
}

#[test]
fn invalid_values_are_named_in_the_error() {
    let mut s = spec();
    s.video.rate = RateControl::Crf(70);
    let e = JobSpec::try_from(pb::JobSpec::from(s)).unwrap_err();
    assert_eq!(e.to_string(), "invalid crf 70 (expected 0..=51)");

    let mut s = spec();
    s.video.preset = "turbo".into();
    assert!(s.validate().unwrap_err().to_string().contains("\"turbo\""));

    // Rate limits: maxrate and the VBV buffer are bounded too (before:
    // any bufsize and any maxrate above the bitrate were passed on).
    for (bitrate_bps, maxrate_bps, bufsize_bits, named) in [
        (2_000_000, 900_000_000, 4_000_000, "maxrate 900000000"),
        (2_000_000, 3_000_000, 9_000_000_000, "bufsize 9000000000"),
        (2_000_000, 3_000_000, 8_000, "bufsize 8000"),
    ] {
        let mut s = spec();
        s.video.rate = RateControl::Bitrate {
            bitrate_bps,
            maxrate_bps,
            bufsize_bits,
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains(named), "{e}");
    }

    let mut wire = pb::JobSpec::from(spec());
    wire.container = 0;
    wire.output = "/out.avi".into();
    let e = JobSpec::try_from(wire).unwrap_err();
    assert!(e.to_string().contains("cannot tell the container"), "{e}");
}

#[test]
fn leased_task_round_trips() {
    let t = LeasedTask {
        task_id: "j/enc/3".into(),
        job_id: "j".into(),
        attempt: 2,
        lease_ttl_ms: 10_000,
        work: Work::Encode(EncodeTask {
            renditions: Default::default(),
            identities: Vec::new(),
            measure_quality: false,
            input: "/in.ts".into(),
            output: "/w/c3.nut".into(),
            chunk: ChunkRange {
                index: 3,
                start_frame: 300,
                end_frame: 400,
                start_pts: 900_000,
                end_pts: Some(1_200_000),
            },
            video: spec().video,
            origin_pts: 126_000,
            video_stream: 0,
            source_frame_rate: Rational::new(30000, 1001),
        }),
    };
    let wire = pb::Task::from(t.clone());
    assert_eq!(LeasedTask::try_from(wire).unwrap(), t);
}

#[cfg(feature = "grpc")]
#[test]
fn status_mapping_is_inverse() {
    for e in [
        crate::Error::invalid("x"),
        crate::Error::NotFound("x".into()),
        crate::Error::Stale("x".into()),
        crate::Error::Unavailable("x".into()),
    ] {
        assert_eq!(crate::Error::from_status(&e.clone().into_status()), e);
    }
}

#[test]
fn paths_with_control_characters_or_too_long_are_refused_naming_the_field() {
    let with = |f: fn(&mut JobSpec)| {
        let mut s = spec();
        f(&mut s);
        s.validate().map_err(|e| e.to_string())
    };
    let e = with(|s| s.output = "/o/a.mp4\nFAKE LOG LINE".into()).unwrap_err();
    assert!(
        e.contains("output has a control character U+000A at byte 8"),
        "{e}"
    );
    let e = with(|s| s.input = "/in\0.mp4".into()).unwrap_err();
    assert!(
        e.contains("input has a control character U+0000 at byte 3"),
        "{e}"
    );
    let e = with(|s| s.input = format!("/{}", "a".repeat(5000))).unwrap_err();
    assert!(e.contains("input is 5001 bytes long (at most 4096)"), "{e}");
    let e = with(|s| {
        s.renditions.push(Rendition {
            output: "/o/b\u{1b}[31m.mp4".into(),
            container: Container::Mp4,
            video: s.video.clone(),
        })
    })
    .unwrap_err();
    assert!(
        e.contains("rendition output has a control character U+001B"),
        "{e}"
    );
    // Unicode that is not a control character is a fine name.
    assert!(with(|s| s.output = "/o/caf\u{e9} \u{65e5}\u{672c}.mp4".into()).is_ok());
}

#[test]
fn outputs_are_never_larger_than_the_source_unless_asked() {
    // Before: scale=8192x8192 made an 8192x6144 encode of a 320x240 source.
    assert_eq!(output_size(320, 240, Some((8192, 8192)), false), (320, 240));
    assert_eq!(
        output_size(320, 240, Some((8192, 8192)), true),
        (8192, 6144)
    );
    // Down-scaling is unchanged either way.
    for up in [false, true] {
        assert_eq!(output_size(1920, 1080, Some((1280, 720)), up), (1280, 720));
        assert_eq!(output_size(1920, 1080, None, up), (1920, 1080));
    }
}

fn track(index: u32, kind: StreamKind, language: &str) -> StreamInfo {
    StreamInfo {
        index,
        kind: Some(kind),
        codec: "aac".into(),
        language: language.into(),
        ..Default::default()
    }
}

#[test]
fn track_selections_parse_print_and_resolve() {
    let streams = [
        track(0, StreamKind::Video, ""),
        track(1, StreamKind::Audio, "eng"),
        track(2, StreamKind::Subtitle, "eng"),
        track(3, StreamKind::Audio, "spa"),
        track(4, StreamKind::Audio, "eng"),
    ];
    let resolve = |s: &str| {
        s.parse::<TrackSelection>()
            .unwrap()
            .resolve(StreamKind::Audio, &streams)
    };
    assert_eq!(resolve("all").unwrap(), vec![1, 3, 4]);
    assert_eq!(resolve("").unwrap(), vec![1, 3, 4]);
    assert_eq!(resolve("none").unwrap(), Vec::<u32>::new());
    // Positions count audio tracks only, and come back in source order.
    assert_eq!(resolve("2,0").unwrap(), vec![1, 4]);
    assert_eq!(resolve("lang:ENG").unwrap(), vec![1, 4]);
    assert_eq!(resolve("lang:spa,eng").unwrap(), vec![1, 3, 4]);
    for text in ["all", "none", "0,2", "lang:eng,spa"] {
        let s: TrackSelection = text.parse().unwrap();
        assert_eq!(s.to_string(), text);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<TrackSelection>(&json).unwrap(), s);
    }
    // A selection that matches nothing names what the source has.
    let e = resolve("3").unwrap_err().to_string();
    assert!(
        e.contains("audio track 3") && e.contains("0: #1 audio aac eng"),
        "{e}"
    );
    let e = resolve("lang:fre").unwrap_err().to_string();
    assert!(
        e.contains("language fre") && e.contains("#3 audio aac spa"),
        "{e}"
    );
    let e = "lang:eng"
        .parse::<TrackSelection>()
        .unwrap()
        .resolve(StreamKind::Subtitle, &streams[..2])
        .unwrap_err()
        .to_string();
    assert!(e.contains("subtitle tracks: none"), "{e}");
    for bad in ["1,x", "lang:", "lang:e!", ",", "-1"] {
        let e = bad.parse::<TrackSelection>().unwrap_err().to_string();
        assert!(e.contains("invalid track selection"), "{bad}: {e}");
    }
}

#[test]
fn aac_bitrate_scales_with_channels_unless_given() {
    let mut a = AudioSettings {
        copy_if_aac: true,
        bitrate_bps: 0,
    };
    assert_eq!(a.bitrate_for(2), 128_000);
    assert_eq!(a.bitrate_for(6), 384_000);
    assert_eq!(a.bitrate_for(8), 512_000);
    assert_eq!(a.bitrate_for(0), 64_000);
    a.bitrate_bps = 96_000;
    assert_eq!(a.bitrate_for(6), 96_000);
}

#[test]
fn track_selections_travel_over_the_wire() {
    let mut s = spec();
    s.audio_tracks = "lang:eng,spa".parse().unwrap();
    s.subtitle_tracks = TrackSelection::None;
    let back = JobSpec::try_from(pb::JobSpec::from(s.clone())).unwrap();
    assert_eq!(back, s);
    let mut wire = pb::JobSpec::from(spec());
    wire.audio_tracks = "lang:".into();
    let e = JobSpec::try_from(wire).unwrap_err().to_string();
    assert!(e.contains("audio tracks: invalid track selection"), "{e}");
}
