//! How a decoded picture is prepared before it is scaled for an encoder:
//! the display rotation applied to the pixels (`--autorotate`) and HDR
//! tone-mapped to SDR (`--tonemap`), as filter-graph text.

/// HDR (PQ or HLG) to BT.709 SDR in `format` with Debian FFmpeg's zscale
/// (libzimg) and tonemap filters: linear light, BT.709 primaries, Hable's
/// curve. zscale makes the YUV itself: a later swscale would convert the
/// RGB with its BT.601 default.
pub(crate) fn tonemap_filters(format: &str) -> String {
    format!(
        "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=hable:desat=0,\
         zscale=t=bt709:m=bt709:r=tv,format={format},"
    )
}

/// How a display rotation is applied to the pixels, as the ffmpeg CLI's
/// autorotate does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    None,
    Clockwise,
    UpsideDown,
    CounterClockwise,
}

impl Turn {
    /// From the display matrix's rotation (degrees, counter-clockwise).
    pub(crate) fn of(rotation: f64) -> Turn {
        match ((-rotation).rem_euclid(360.0) / 90.0).round() as i64 % 4 {
            1 => Turn::Clockwise,
            2 => Turn::UpsideDown,
            3 => Turn::CounterClockwise,
            _ => Turn::None,
        }
    }

    pub(crate) fn swaps(self) -> bool {
        matches!(self, Turn::Clockwise | Turn::CounterClockwise)
    }

    pub(crate) fn filter(self) -> &'static str {
        match self {
            Turn::None => "",
            Turn::Clockwise => "transpose=clock,",
            Turn::UpsideDown => "hflip,vflip,",
            Turn::CounterClockwise => "transpose=cclock,",
        }
    }
}
