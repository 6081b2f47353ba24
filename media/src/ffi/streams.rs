//! Stream-level FFmpeg calls ffmpeg-next does not wrap: dispositions,
//! channel layout and colour names, stream side data (display matrix, HDR
//! metadata), and text subtitle conversion to mov_text.

use std::ffi::CStr;
use std::os::raw::c_char;

use crate::ffmpeg;
use ffmpeg::ffi;

/// The disposition bits of a stream.
pub fn disposition(stream: &ffmpeg::format::stream::Stream) -> i32 {
    // SAFETY: the stream pointer is valid while `stream` borrows its context.
    unsafe { (*stream.as_ptr()).disposition }
}

/// Sets the disposition bits of an output stream.
pub fn set_disposition(stream: &mut ffmpeg::format::stream::StreamMut, bits: i32) {
    // SAFETY: the stream pointer is valid while `stream` borrows its context.
    unsafe {
        (*stream.as_mut_ptr()).disposition = bits;
    }
}

/// The names of the disposition bits set in `bits` (`default`, `forced`, …).
pub fn disposition_names(bits: i32) -> Vec<String> {
    (0..31)
        .map(|i| 1i32 << i)
        .filter(|b| bits & b != 0)
        .filter_map(|b| {
            // SAFETY: av_disposition_to_string returns a static string or null.
            let p = unsafe { ffi::av_disposition_to_string(b) };
            static_str(p)
        })
        .collect()
}

fn static_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: FFmpeg's name functions return NUL-terminated static strings.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Channel count and layout name (`stereo`, `5.1(side)`) of audio
/// parameters; the name is empty when the layout is unspecified.
pub fn channel_layout(params: &ffmpeg::codec::Parameters) -> (u32, String) {
    let mut buf = [0 as c_char; 64];
    // SAFETY: `ch_layout` lives in the parameters, which outlive the call;
    // describe writes at most `buf.len()` bytes, NUL-terminated.
    unsafe {
        let layout = &(*params.as_ptr()).ch_layout;
        let channels = u32::try_from(layout.nb_channels).unwrap_or(0);
        if layout.order == ffi::AVChannelOrder::AV_CHANNEL_ORDER_UNSPEC {
            return (channels, String::new());
        }
        let n = ffi::av_channel_layout_describe(layout, buf.as_mut_ptr(), buf.len());
        if n < 0 {
            return (channels, String::new());
        }
        (
            channels,
            CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned(),
        )
    }
}

/// The colour description of video parameters as FFmpeg names it:
/// primaries, transfer, matrix, range (empty where unspecified).
pub fn color_names(params: &ffmpeg::codec::Parameters) -> [String; 4] {
    use ffi::AVColorTransferCharacteristic as T;
    use ffi::{AVColorPrimaries as P, AVColorRange as R, AVColorSpace as S};
    // SAFETY: the parameters outlive the call; the name functions return
    // static strings or null.
    unsafe {
        let p = &*params.as_ptr();
        let name = |s: *const c_char, unset: bool| {
            if unset {
                String::new()
            } else {
                static_str(s).unwrap_or_default()
            }
        };
        [
            name(
                ffi::av_color_primaries_name(p.color_primaries),
                p.color_primaries == P::AVCOL_PRI_UNSPECIFIED,
            ),
            name(
                ffi::av_color_transfer_name(p.color_trc),
                p.color_trc == T::AVCOL_TRC_UNSPECIFIED,
            ),
            name(
                ffi::av_color_space_name(p.color_space),
                p.color_space == S::AVCOL_SPC_UNSPECIFIED,
            ),
            name(
                ffi::av_color_range_name(p.color_range),
                p.color_range == R::AVCOL_RANGE_UNSPECIFIED,
            ),
        ]
    }
}

/// Bits per sample of a pixel format's first component (8, 10, 12, …).
pub fn pixel_depth(format: ffmpeg::format::Pixel) -> u32 {
    // SAFETY: av_pix_fmt_desc_get returns a static descriptor or null.
    unsafe {
        let d = ffi::av_pix_fmt_desc_get(format.into());
        if d.is_null() {
            0
        } else {
            (*d).comp[0].depth as u32
        }
    }
}

/// The rotation of a stream's display matrix in degrees, as ffprobe
/// reports it; `None` without one.
pub fn rotation(stream: &ffmpeg::format::stream::Stream) -> Option<f64> {
    let data = side_data(stream, ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX)?;
    if data.len() < 36 {
        return None;
    }
    let matrix: Vec<i32> = data
        .chunks_exact(4)
        .take(9)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // SAFETY: `matrix` holds the nine 32-bit values the call reads.
    let r = unsafe { ffi::av_display_rotation_get(matrix.as_ptr()) };
    r.is_finite().then_some(r)
}

/// The stream side data FFmpeg keeps per stream that a stitch carries:
/// the display matrix and the HDR10 mastering display and light level.
pub const CARRIED_SIDE_DATA: [ffi::AVPacketSideDataType; 3] = [
    ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
    ffi::AVPacketSideDataType::AV_PKT_DATA_MASTERING_DISPLAY_METADATA,
    ffi::AVPacketSideDataType::AV_PKT_DATA_CONTENT_LIGHT_LEVEL,
];

/// A copy of one kind of a stream's side data.
pub fn side_data(
    stream: &ffmpeg::format::stream::Stream,
    kind: ffi::AVPacketSideDataType,
) -> Option<Vec<u8>> {
    let mut size: usize = 0;
    // SAFETY: the stream is valid while borrowed; the returned buffer holds
    // `size` bytes owned by the stream, copied out before the borrow ends.
    unsafe {
        let p = ffi::av_stream_get_side_data(stream.as_ptr(), kind, &mut size);
        (!p.is_null() && size > 0).then(|| std::slice::from_raw_parts(p, size).to_vec())
    }
}

/// Adds side data of `kind` to an output stream, before its header is
/// written.
pub fn add_side_data(
    stream: &mut ffmpeg::format::stream::StreamMut,
    kind: ffi::AVPacketSideDataType,
    data: &[u8],
) -> Result<(), ffmpeg::Error> {
    // SAFETY: the stream is valid while borrowed; the new buffer has room for
    // `data.len()` bytes.
    unsafe {
        let p = ffi::av_stream_new_side_data(stream.as_mut_ptr(), kind, data.len());
        if p.is_null() {
            return Err(ffmpeg::Error::Other { errno: ffi::ENOMEM });
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len());
    }
    Ok(())
}

/// Converts text subtitle packets from one format to another: SubRip, ASS
/// or WebVTT to mov_text, the one text format MP4 holds, and mov_text to
/// SubRip for Matroska, which has no mov_text. Each packet is decoded to
/// its events and encoded again; timing stays with the packet.
pub struct TextConverter {
    dec: *mut ffi::AVCodecContext,
    enc: *mut ffi::AVCodecContext,
    buf: Vec<u8>,
}

// SAFETY: the codec contexts are owned by this value and used by one thread
// at a time.
unsafe impl Send for TextConverter {}

impl TextConverter {
    /// Opens a decoder for `params` and an encoder of `target` that shares
    /// its styles header.
    pub fn new(
        params: &ffmpeg::codec::Parameters,
        time_base: ffmpeg::Rational,
        target: ffmpeg::codec::Id,
    ) -> Result<Self, String> {
        // SAFETY: every pointer is checked after allocation; ownership of both
        // contexts passes to the returned value, whose Drop frees them.
        unsafe {
            let codec = ffi::avcodec_find_decoder((*params.as_ptr()).codec_id);
            let enc_codec = ffi::avcodec_find_encoder(target.into());
            if codec.is_null() || enc_codec.is_null() {
                return Err(format!(
                    "no decoder for the subtitles or no {target:?} encoder"
                ));
            }
            let this = TextConverter {
                dec: ffi::avcodec_alloc_context3(codec),
                enc: ffi::avcodec_alloc_context3(enc_codec),
                buf: vec![0; 1 << 16],
            };
            if this.dec.is_null() || this.enc.is_null() {
                return Err("out of memory".into());
            }
            if ffi::avcodec_parameters_to_context(this.dec, params.as_ptr()) < 0 {
                return Err("subtitle parameters".into());
            }
            (*this.dec).pkt_timebase = time_base.into();
            if ffi::avcodec_open2(this.dec, codec, std::ptr::null_mut()) < 0 {
                return Err("subtitle decoder did not open".into());
            }
            (*this.enc).time_base = time_base.into();
            let header_len = (*this.dec).subtitle_header_size.max(0) as usize;
            if header_len > 0 && !(*this.dec).subtitle_header.is_null() {
                let h = ffi::av_mallocz(header_len + 1) as *mut u8;
                if h.is_null() {
                    return Err("out of memory".into());
                }
                std::ptr::copy_nonoverlapping((*this.dec).subtitle_header, h, header_len);
                (*this.enc).subtitle_header = h;
                (*this.enc).subtitle_header_size = header_len as i32;
            }
            if ffi::avcodec_open2(this.enc, enc_codec, std::ptr::null_mut()) < 0 {
                return Err(format!("{target:?} encoder did not open"));
            }
            Ok(this)
        }
    }

    /// The converted stream's parameters.
    pub fn parameters(&self) -> ffmpeg::codec::Parameters {
        let mut p = ffmpeg::codec::Parameters::new();
        // SAFETY: both pointers are valid; the call copies the encoder's
        // fields (and extradata) into the parameters.
        unsafe {
            ffi::avcodec_parameters_from_context(p.as_mut_ptr(), self.enc);
        }
        p
    }

    /// The converted payload of one subtitle packet; `None` when it holds
    /// no event (an empty clearing packet).
    pub fn convert(&mut self, packet: &ffmpeg::Packet) -> Result<Option<Vec<u8>>, String> {
        // SAFETY: the subtitle is zeroed, filled by the decoder and freed
        // after encoding; the output buffer is ours and its size is passed.
        unsafe {
            let mut sub: ffi::AVSubtitle = std::mem::zeroed();
            let mut got = 0;
            let ret = ffi::avcodec_decode_subtitle2(
                self.dec,
                &mut sub,
                &mut got,
                ffmpeg::packet::Ref::as_ptr(packet) as *mut ffi::AVPacket,
            );
            if ret < 0 {
                return Err(format!("subtitle decode failed ({ret})"));
            }
            if got == 0 {
                return Ok(None);
            }
            let n = if sub.num_rects == 0 {
                0
            } else {
                ffi::avcodec_encode_subtitle(
                    self.enc,
                    self.buf.as_mut_ptr(),
                    self.buf.len() as i32,
                    &sub,
                )
            };
            ffi::avsubtitle_free(&mut sub);
            if n < 0 {
                return Err(format!("subtitle encode failed ({n})"));
            }
            Ok((n > 0).then(|| self.buf[..n as usize].to_vec()))
        }
    }
}

impl Drop for TextConverter {
    fn drop(&mut self) {
        // SAFETY: both contexts were allocated by avcodec_alloc_context3 (or
        // are null, which the call accepts) and are freed once.
        unsafe {
            ffi::avcodec_free_context(&mut self.dec);
            ffi::avcodec_free_context(&mut self.enc);
        }
    }
}

/// Bits per sample of a decoded frame, looking through GPU frames to the
/// format they hold.
pub fn frame_depth(frame: &ffmpeg::frame::Video) -> u32 {
    // SAFETY: the frame and its hardware frames context (when set) are
    // valid while `frame` is borrowed.
    unsafe {
        let f = frame.as_ptr();
        if !(*f).hw_frames_ctx.is_null() {
            let ctx = (*(*f).hw_frames_ctx).data as *const ffi::AVHWFramesContext;
            return pixel_depth((*ctx).sw_format.into());
        }
    }
    pixel_depth(frame.format())
}

/// Whether a frame is full range (JPEG).
pub fn is_full_range(frame: &ffmpeg::frame::Video) -> bool {
    // SAFETY: the frame is valid while borrowed.
    unsafe { (*frame.as_ptr()).color_range == ffi::AVColorRange::AVCOL_RANGE_JPEG }
}

/// Tags an encoder with a frame's colour description (primaries, transfer,
/// matrix, range), which libx264, libx265 and NVENC write into the
/// stream's VUI and the muxer into the container.
pub fn copy_color(enc: &mut ffmpeg::codec::Context, frame: &ffmpeg::frame::Video) {
    // SAFETY: both pointers are valid for the call; plain fields are copied.
    unsafe {
        let (e, f) = (enc.as_mut_ptr(), frame.as_ptr());
        (*e).color_primaries = (*f).color_primaries;
        (*e).color_trc = (*f).color_trc;
        (*e).colorspace = (*f).colorspace;
        (*e).color_range = (*f).color_range;
        (*e).chroma_sample_location = (*f).chroma_location;
    }
}

/// `AVMasteringDisplayMetadata` (libavutil/mastering_display_metadata.h),
/// which ffmpeg-sys-next does not bind.
#[repr(C)]
struct MasteringDisplay {
    display_primaries: [[ffi::AVRational; 2]; 3],
    white_point: [ffi::AVRational; 2],
    min_luminance: ffi::AVRational,
    max_luminance: ffi::AVRational,
    has_primaries: i32,
    has_luminance: i32,
}

/// `AVContentLightMetadata`, from the same header.
#[repr(C)]
#[allow(non_snake_case, reason = "FFmpeg's field names")]
struct ContentLight {
    MaxCLL: u32,
    MaxFALL: u32,
}

/// The HDR10 static metadata of a decoded frame (its mastering display and
/// content light level) as libx265 parameters: `master-display=G(x,y)B(x,y)
/// R(x,y)WP(x,y)L(max,min)` in 0.00002 and 0.0001 cd/m² units, and
/// `max-cll=MaxCLL,MaxFALL`. Empty when the frame carries neither.
pub fn x265_hdr_params(frame: &ffmpeg::frame::Video) -> Vec<String> {
    use ffi::AVFrameSideDataType as T;
    let q = |r: ffi::AVRational, scale: f64| {
        if r.den == 0 {
            0
        } else {
            (f64::from(r.num) / f64::from(r.den) * scale).round() as i64
        }
    };
    let mut params = Vec::new();
    // SAFETY: side data of these types holds the structs FFmpeg documents
    // for them; the pointers are valid while the frame is borrowed.
    unsafe {
        let f = frame.as_ptr() as *mut ffi::AVFrame;
        let sd = ffi::av_frame_get_side_data(f, T::AV_FRAME_DATA_MASTERING_DISPLAY_METADATA);
        if !sd.is_null() {
            let m = &*((*sd).data as *const MasteringDisplay);
            if m.has_primaries != 0 && m.has_luminance != 0 {
                let p = m.display_primaries;
                let xy = |c: [ffi::AVRational; 2]| {
                    format!("({},{})", q(c[0], 50000.0), q(c[1], 50000.0))
                };
                params.push(format!(
                    "master-display=G{}B{}R{}WP{}L({},{})",
                    xy(p[1]),
                    xy(p[2]),
                    xy(p[0]),
                    xy(m.white_point),
                    q(m.max_luminance, 10000.0),
                    q(m.min_luminance, 10000.0)
                ));
            }
        }
        let sd = ffi::av_frame_get_side_data(f, T::AV_FRAME_DATA_CONTENT_LIGHT_LEVEL);
        if !sd.is_null() {
            let c = &*((*sd).data as *const ContentLight);
            params.push(format!("max-cll={},{}", c.MaxCLL, c.MaxFALL));
        }
    }
    if !params.is_empty() {
        params.push("hdr10=1".into());
    }
    params
}

/// Whether a transfer is PQ (HDR10) or HLG.
fn is_hdr_transfer(trc: ffi::AVColorTransferCharacteristic) -> bool {
    use ffi::AVColorTransferCharacteristic as T;
    matches!(trc, T::AVCOL_TRC_SMPTE2084 | T::AVCOL_TRC_ARIB_STD_B67)
}

/// Whether a frame is HDR (PQ or HLG).
pub fn is_hdr_frame(frame: &ffmpeg::frame::Video) -> bool {
    // SAFETY: the frame is valid while borrowed.
    is_hdr_transfer(unsafe { (*frame.as_ptr()).color_trc })
}

/// Whether stream parameters describe HDR (PQ or HLG) video.
pub fn is_hdr_params(params: &ffmpeg::codec::Parameters) -> bool {
    // SAFETY: the parameters are valid while borrowed.
    is_hdr_transfer(unsafe { (*params.as_ptr()).color_trc })
}

/// Tags an encoder BT.709 SDR, limited range: what tone mapping makes.
pub fn set_bt709(enc: &mut ffmpeg::codec::Context) {
    // SAFETY: the context is valid for the call; plain fields are set.
    unsafe {
        let e = enc.as_mut_ptr();
        (*e).color_primaries = ffi::AVColorPrimaries::AVCOL_PRI_BT709;
        (*e).color_trc = ffi::AVColorTransferCharacteristic::AVCOL_TRC_BT709;
        (*e).colorspace = ffi::AVColorSpace::AVCOL_SPC_BT709;
        (*e).color_range = ffi::AVColorRange::AVCOL_RANGE_MPEG;
    }
}
