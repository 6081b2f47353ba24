//! The audio track, made once for the whole duration.
//!
//! Per-chunk audio clicks at the boundaries and drifts; one track muxed in at
//! stitch time does neither. Each kept source track is its own task. The
//! track is aligned to the video's origin (the job's time 0): encoding pads
//! or trims the start with `aresample` and cuts at the video's duration;
//! copying shifts the source packets. Encoding keeps the channel layout and
//! sample rate: 5.1 stays 5.1.

use spotenc_proto::domain::{AudioTask, OutputObject};

use crate::ffmpeg::{self, codec, filter, format, frame, media, Rational};
use crate::{input, Control, Error, Result};

/// Writes the audio track for `task` and returns the stored object.
/// `frames` in the result counts audio packets.
pub fn make_audio(task: &AudioTask, ctl: &Control) -> Result<OutputObject> {
    let dst = input::local_path(&task.output)?.to_path_buf();
    let packets = crate::write_atomically(&dst, |part| {
        let mut ictx = input::open_uri(&task.input, ctl)?;
        let index = audio_stream(&ictx, task)?;
        let stream = ictx.stream(index).expect("checked");
        let is_aac = stream.parameters().id() == codec::Id::AAC;
        if is_aac && task.audio.copy_if_aac {
            copy(&mut ictx, index, part, task, ctl)
        } else {
            encode(&mut ictx, index, part, task, ctl)
        }
    })?;
    crate::stored_object(&task.output, &dst, packets)
}

/// The source stream the task makes: the one it names, else the input's
/// best audio stream.
fn audio_stream(ictx: &format::context::Input, task: &AudioTask) -> Result<usize> {
    let bad = |reason: String| Error::BadInput {
        path: task.input.clone(),
        reason,
    };
    match task.stream {
        None => ictx
            .streams()
            .best(media::Type::Audio)
            .map(|s| s.index())
            .ok_or_else(|| bad("no audio stream".into())),
        Some(i) => match ictx.stream(i as usize) {
            Some(s) if s.parameters().medium() == media::Type::Audio => Ok(i as usize),
            _ => Err(bad(format!("stream {i} is not an audio stream"))),
        },
    }
}

/// The layout AAC signals natively for a source layout it would otherwise
/// write through a program config element that decoders report as an
/// unknown layout: 5.1 and 5.0 with side surrounds become their
/// back-surround forms (what AAC 5.1 means everywhere); the rest stay.
fn aac_layout(layout: ffmpeg::ChannelLayout) -> ffmpeg::ChannelLayout {
    use ffmpeg::ChannelLayout as L;
    if layout == L::_5POINT1 {
        L::_5POINT1_BACK
    } else if layout == L::_5POINT0 {
        L::_5POINT0_BACK
    } else {
        layout
    }
}

fn secs_to_tb(secs: f64, tb: Rational) -> i64 {
    (secs * f64::from(tb.denominator()) / f64::from(tb.numerator())).round() as i64
}

fn copy(
    ictx: &mut format::context::Input,
    index: usize,
    part: &std::path::Path,
    task: &AudioTask,
    ctl: &Control,
) -> Result<u64> {
    let stream = ictx.stream(index).expect("checked");
    let itb = stream.time_base();
    let origin = secs_to_tb(task.origin_seconds, itb);
    let end = origin + secs_to_tb(task.duration_seconds, itb);
    let mut octx = format::output_as(part, crate::encode::CHUNK_MUXER)
        .map_err(Error::ff("open audio output"))?;
    {
        let mut ost = octx
            .add_stream(codec::encoder::find(codec::Id::None))
            .map_err(Error::ff("add audio stream"))?;
        ost.set_parameters(stream.parameters());
        crate::ffi::clear_codec_tag(&mut ost);
        ost.set_time_base(itb);
    }
    octx.write_header()
        .map_err(Error::ff("write audio header"))?;
    let otb = octx.stream(0).expect("one stream").time_base();
    let mut n = 0u64;
    for (s, mut packet) in ictx.packets() {
        ctl.check()?;
        if s.index() != index {
            continue;
        }
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        if pts + packet.duration() <= origin || pts >= end {
            continue;
        }
        packet.set_pts(Some(pts - origin));
        packet.set_dts(packet.dts().map(|d| d - origin));
        packet.set_stream(0);
        packet.set_position(-1);
        packet.rescale_ts(itb, otb);
        packet
            .write_interleaved(&mut octx)
            .map_err(Error::ff("write audio packet"))?;
        n += 1;
    }
    crate::input::read_ok(ictx, ctl, &task.input)?;
    octx.write_trailer()
        .map_err(Error::ff("write audio trailer"))?;
    Ok(n)
}

/// Long (about 165 lines): one FFmpeg decode, resample and encode loop,
/// its setup and its flushes in the order FFmpeg requires.
fn encode(
    ictx: &mut format::context::Input,
    index: usize,
    part: &std::path::Path,
    task: &AudioTask,
    ctl: &Control,
) -> Result<u64> {
    let stream = ictx.stream(index).expect("checked");
    let itb = stream.time_base();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().audio())
        .map_err(|e| Error::BadInput {
            path: task.input.clone(),
            reason: format!("audio stream cannot be decoded: {e}"),
        })?;
    let rate = match decoder.rate() {
        r @ 8000..=96000 => r,
        _ => 48000,
    };
    // The source's layout, or the default one for its channel count.
    let in_layout = if decoder.channel_layout().is_empty() {
        ffmpeg::ChannelLayout::default(i32::from(decoder.channels().max(1)))
    } else {
        decoder.channel_layout()
    };
    let layout = aac_layout(in_layout);
    let otb = Rational::new(1, rate as i32);

    let aac = codec::encoder::find(codec::Id::AAC)
        .ok_or_else(|| Error::Unsupported("no AAC encoder in this FFmpeg build".into()))?;
    let mut octx = format::output_as(part, crate::encode::CHUNK_MUXER)
        .map_err(Error::ff("open audio output"))?;
    let mut enc = codec::context::Context::new_with_codec(aac)
        .encoder()
        .audio()
        .map_err(Error::ff("audio encoder context"))?;
    enc.set_rate(rate as i32);
    enc.set_channel_layout(layout);
    enc.set_channels(layout.channels());
    enc.set_format(format::Sample::F32(format::sample::Type::Planar));
    enc.set_bit_rate(task.audio.bitrate_for(layout.channels() as u32) as usize);
    enc.set_time_base(otb);
    if octx.format().flags().contains(format::Flags::GLOBAL_HEADER) {
        crate::ffi::add_codec_flags(&mut enc, codec::Flags::GLOBAL_HEADER);
    }
    let mut encoder = enc.open_as(aac).map_err(|e| Error::Encoder {
        encoder: "aac".into(),
        reason: format!("open failed: {e}"),
    })?;
    {
        let mut ost = octx
            .add_stream(aac)
            .map_err(Error::ff("add audio stream"))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(otb);
    }
    octx.write_header()
        .map_err(Error::ff("write audio header"))?;
    let ost_tb = octx.stream(0).expect("one stream").time_base();

    // abuffer -> align start to 0, cut at the duration, convert -> fixed-size
    // frames for the AAC encoder.
    let args = format!(
        "time_base=1/{}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
        decoder.rate(),
        decoder.rate(),
        decoder.format().name(),
        in_layout.bits()
    );
    let spec = format!(
        "aresample={rate}:async=1:first_pts=0,atrim=end={:.6},asetpts=PTS-STARTPTS,aformat=sample_fmts=fltp:sample_rates={rate}:channel_layouts=0x{:x}",
        task.duration_seconds,
        layout.bits()
    );
    let mut graph = crate::filter_graph("abuffer", &args, &spec)?;
    graph
        .get("out")
        .expect("out")
        .sink()
        .set_frame_size(encoder.frame_size());

    let origin = secs_to_tb(task.origin_seconds, itb);
    let in_tb = Rational::new(1, decoder.rate() as i32);
    let mut n = 0u64;
    let mut decoded = frame::Audio::empty();
    let mut filtered = frame::Audio::empty();
    let mut packet_out = ffmpeg::Packet::empty();
    let mut pump = |graph: &mut filter::Graph,
                    encoder: &mut codec::encoder::audio::Encoder,
                    octx: &mut format::context::Output,
                    flush: bool|
     -> Result<()> {
        loop {
            if graph
                .get("out")
                .expect("out")
                .sink()
                .frame(&mut filtered)
                .is_err()
            {
                break;
            }
            encoder.send_frame(&filtered).map_err(|e| Error::Encoder {
                encoder: "aac".into(),
                reason: e.to_string(),
            })?;
            write_packets(encoder, octx, &mut packet_out, otb, ost_tb, &mut n)?;
        }
        if flush {
            encoder.send_eof().map_err(|e| Error::Encoder {
                encoder: "aac".into(),
                reason: e.to_string(),
            })?;
            write_packets(encoder, octx, &mut packet_out, otb, ost_tb, &mut n)?;
        }
        Ok(())
    };
    for (s, packet) in ictx.packets() {
        ctl.check()?;
        if s.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            let Some(ts) = decoded.timestamp().or(decoded.pts()) else {
                continue;
            };
            decoded.set_pts(Some(ffmpeg::rescale::Rescale::rescale(
                &(ts - origin),
                itb,
                in_tb,
            )));
            graph
                .get("in")
                .expect("in")
                .source()
                .add(&decoded)
                .map_err(Error::ff("audio filter input"))?;
            pump(&mut graph, &mut encoder, &mut octx, false)?;
        }
    }
    crate::input::read_ok(ictx, ctl, &task.input)?;
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut decoded).is_ok() {
        if let Some(ts) = decoded.timestamp().or(decoded.pts()) {
            decoded.set_pts(Some(ffmpeg::rescale::Rescale::rescale(
                &(ts - origin),
                itb,
                in_tb,
            )));
            let _ = graph.get("in").expect("in").source().add(&decoded);
        }
    }
    graph
        .get("in")
        .expect("in")
        .source()
        .flush()
        .map_err(Error::ff("audio filter flush"))?;
    pump(&mut graph, &mut encoder, &mut octx, true)?;
    octx.write_trailer()
        .map_err(Error::ff("write audio trailer"))?;
    Ok(n)
}

fn write_packets(
    encoder: &mut codec::encoder::audio::Encoder,
    octx: &mut format::context::Output,
    packet: &mut ffmpeg::Packet,
    enc_tb: Rational,
    ost_tb: Rational,
    n: &mut u64,
) -> Result<()> {
    while encoder.receive_packet(packet).is_ok() {
        packet.set_stream(0);
        packet.rescale_ts(enc_tb, ost_tb);
        packet
            .write_interleaved(octx)
            .map_err(Error::ff("write audio packet"))?;
        *n += 1;
    }
    Ok(())
}
