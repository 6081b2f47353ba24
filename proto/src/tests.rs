use crate::domain::*;
use crate::pb;

fn spec() -> JobSpec {
    JobSpec {
        renditions: Default::default(),
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
