//! Loading driver libraries at run time: the CUDA driver API (`libcuda.so.1`)
//! and NVENC (`libnvidia-encode.so.1`) to probe each GPU's encoder, and a
//! plain "does it load" check for the Intel media libraries. Nothing here
//! is linked at build time, so the binary starts on hosts with no driver.
//! This is the only module of gpu-worker with `unsafe`.
//!
//! NVENC exports one entry point, `NvEncodeAPICreateInstance`, which fills
//! a table of function pointers; the layouts below follow `nvEncodeAPI.h`
//! (API 11.1, the version Debian's FFmpeg 5.1 is built against; newer
//! drivers accept it). nvidia-video-codec-sdk was not used: it links
//! `libnvidia-encode` at build time.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use libloading::{Library, Symbol};
use spotenc_proto::domain::{Codec, NvencCodec};

/// NVENC API 11.1: `major | minor << 24`.
const NVENCAPI_VERSION: u32 = 11 | (1 << 24);

const fn struct_version(v: u32) -> u32 {
    NVENCAPI_VERSION | (v << 16) | (0x7 << 28)
}

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
struct Guid {
    data1: u32,
    data2: u16,
    data3: u16,
    data4: [u8; 8],
}

const H264_GUID: Guid = Guid {
    data1: 0x6bc8_2762,
    data2: 0x4e63,
    data3: 0x4ca4,
    data4: [0xaa, 0x85, 0x1e, 0x50, 0xf3, 0x21, 0xf6, 0xbf],
};
const HEVC_GUID: Guid = Guid {
    data1: 0x790c_dc88,
    data2: 0x4522,
    data3: 0x4d7b,
    data4: [0x94, 0x25, 0xbd, 0xa9, 0x97, 0x5f, 0x76, 0x03],
};

// NV_ENC_CAPS values.
const CAPS_NUM_MAX_BFRAMES: c_uint = 0;
const CAPS_WIDTH_MAX: c_uint = 16;
const CAPS_HEIGHT_MAX: c_uint = 17;
const CAPS_SUPPORT_10BIT_ENCODE: c_uint = 39;

const DEVICE_TYPE_CUDA: u32 = 1;

/// NV_ENCODE_API_FUNCTION_LIST: version, reserved, then 318 pointer slots
/// (37 named in API 9, the rest reserved or added later).
#[repr(C)]
struct FunctionList {
    version: u32,
    reserved: u32,
    fns: [*const c_void; 318],
}

// Slots in `fns`.
const FN_GET_ENCODE_GUID_COUNT: usize = 1;
const FN_GET_ENCODE_GUIDS: usize = 4;
const FN_GET_ENCODE_CAPS: usize = 7;
const FN_DESTROY_ENCODER: usize = 27;
const FN_OPEN_ENCODE_SESSION_EX: usize = 29;

#[repr(C)]
struct OpenSessionExParams {
    version: u32,
    device_type: u32,
    device: *mut c_void,
    reserved: *mut c_void,
    api_version: u32,
    reserved1: [u32; 253],
    reserved2: [*mut c_void; 64],
}

#[repr(C)]
struct CapsParam {
    version: u32,
    caps_to_query: c_uint,
    reserved: [u32; 62],
}

type OpenSessionEx = unsafe extern "C" fn(*mut OpenSessionExParams, *mut *mut c_void) -> c_int;
type GetGuidCount = unsafe extern "C" fn(*mut c_void, *mut u32) -> c_int;
type GetGuids = unsafe extern "C" fn(*mut c_void, *mut Guid, u32, *mut u32) -> c_int;
type GetCaps = unsafe extern "C" fn(*mut c_void, Guid, *mut CapsParam, *mut c_int) -> c_int;
type DestroyEncoder = unsafe extern "C" fn(*mut c_void) -> c_int;

/// NVENCSTATUS names, by value.
const NVENC_STATUS: &[&str] = &[
    "NV_ENC_SUCCESS",
    "NV_ENC_ERR_NO_ENCODE_DEVICE",
    "NV_ENC_ERR_UNSUPPORTED_DEVICE",
    "NV_ENC_ERR_INVALID_ENCODERDEVICE",
    "NV_ENC_ERR_INVALID_DEVICE",
    "NV_ENC_ERR_DEVICE_NOT_EXIST",
    "NV_ENC_ERR_INVALID_PTR",
    "NV_ENC_ERR_INVALID_EVENT",
    "NV_ENC_ERR_INVALID_PARAM",
    "NV_ENC_ERR_INVALID_CALL",
    "NV_ENC_ERR_OUT_OF_MEMORY",
    "NV_ENC_ERR_ENCODER_NOT_INITIALIZED",
    "NV_ENC_ERR_UNSUPPORTED_PARAM",
    "NV_ENC_ERR_LOCK_BUSY",
    "NV_ENC_ERR_NOT_ENOUGH_BUFFER",
    "NV_ENC_ERR_INVALID_VERSION",
    "NV_ENC_ERR_MAP_FAILED",
    "NV_ENC_ERR_NEED_MORE_INPUT",
    "NV_ENC_ERR_ENCODER_BUSY",
    "NV_ENC_ERR_EVENT_NOT_REGISTERD",
    "NV_ENC_ERR_GENERIC",
    "NV_ENC_ERR_INCOMPATIBLE_CLIENT_KEY",
    "NV_ENC_ERR_UNIMPLEMENTED",
    "NV_ENC_ERR_RESOURCE_REGISTER_FAILED",
    "NV_ENC_ERR_RESOURCE_NOT_REGISTERED",
    "NV_ENC_ERR_RESOURCE_NOT_MAPPED",
];

/// `NAME (value)` for an NVENCSTATUS.
pub fn nvenc_status(code: c_int) -> String {
    let name = usize::try_from(code)
        .ok()
        .and_then(|i| NVENC_STATUS.get(i))
        .copied()
        .unwrap_or("unknown NVENCSTATUS");
    format!("{name} ({code})")
}

/// What NVENC said about one CUDA device.
#[derive(Debug, Clone)]
pub struct NvencDevice {
    pub cuda_ordinal: u32,
    /// As CUDA prints it, e.g. `0000:3B:00.0`.
    pub pci_bus_id: String,
    pub name: String,
    /// The codecs and limits, or why no session could be opened.
    pub result: Result<Vec<NvencCodec>, String>,
}

/// Whether a shared library can be loaded (by soname).
pub fn library_loads(name: &str) -> Result<(), String> {
    // SAFETY: loading runs the library's initialisers; these are system
    // driver libraries meant to be loaded by any process.
    unsafe { Library::new(name) }
        .map(drop)
        .map_err(|e| e.to_string())
}

struct Cuda {
    lib: Library,
}

type CuResult = c_int;

impl Cuda {
    fn load() -> Result<Cuda, String> {
        // SAFETY: as in `library_loads`.
        let lib = unsafe { Library::new("libcuda.so.1") }
            .map_err(|e| format!("libcuda.so.1 does not load ({e}): no NVIDIA driver"))?;
        Ok(Cuda { lib })
    }

    fn sym<T>(&self, name: &[u8]) -> Result<Symbol<'_, T>, String> {
        // SAFETY: each call site names the symbol with the C signature the
        // CUDA driver API documents for it.
        unsafe { self.lib.get::<T>(name) }.map_err(|e| {
            format!(
                "libcuda.so.1 has no {}: {e}",
                String::from_utf8_lossy(&name[..name.len() - 1])
            )
        })
    }

    fn check(what: &str, r: CuResult) -> Result<(), String> {
        if r == 0 {
            Ok(())
        } else {
            Err(format!("{what} failed: CUDA error {r}"))
        }
    }
}

/// Opens an NVENC session on every CUDA device and reads its H.264/HEVC
/// limits. `Err` when nothing can be asked (no driver, no libraries, an
/// NVENC API older than 11.1). Long (about 130 lines): the driver and
/// NVENC calls in the order the NVENC API requires, each checked.
pub fn probe_nvenc() -> Result<Vec<NvencDevice>, String> {
    let cuda = Cuda::load()?;
    let cu_init = cuda.sym::<unsafe extern "C" fn(c_uint) -> CuResult>(b"cuInit\0")?;
    let device_count =
        cuda.sym::<unsafe extern "C" fn(*mut c_int) -> CuResult>(b"cuDeviceGetCount\0")?;
    let device_get =
        cuda.sym::<unsafe extern "C" fn(*mut c_int, c_int) -> CuResult>(b"cuDeviceGet\0")?;
    let device_name = cuda
        .sym::<unsafe extern "C" fn(*mut c_char, c_int, c_int) -> CuResult>(b"cuDeviceGetName\0")?;
    let bus_id = cuda.sym::<unsafe extern "C" fn(*mut c_char, c_int, c_int) -> CuResult>(
        b"cuDeviceGetPCIBusId\0",
    )?;
    let ctx_create = cuda
        .sym::<unsafe extern "C" fn(*mut *mut c_void, c_uint, c_int) -> CuResult>(
            b"cuCtxCreate_v2\0",
        )?;
    let ctx_destroy =
        cuda.sym::<unsafe extern "C" fn(*mut c_void) -> CuResult>(b"cuCtxDestroy_v2\0")?;

    // SAFETY: cuInit takes flags 0 and may be called more than once.
    Cuda::check("cuInit", unsafe { cu_init(0) })?;
    let mut n: c_int = 0;
    // SAFETY: `n` is a valid out-pointer.
    Cuda::check("cuDeviceGetCount", unsafe { device_count(&mut n) })?;

    // SAFETY: as in `library_loads`.
    let enc = unsafe { Library::new("libnvidia-encode.so.1") }.map_err(|e| {
        format!("libnvidia-encode.so.1 does not load ({e}): the driver has no NVENC library")
    })?;
    // SAFETY: the documented signature of the NVENC entry points.
    let (max_version, create) = unsafe {
        (
            enc.get::<unsafe extern "C" fn(*mut u32) -> c_int>(
                b"NvEncodeAPIGetMaxSupportedVersion\0",
            ),
            enc.get::<unsafe extern "C" fn(*mut FunctionList) -> c_int>(
                b"NvEncodeAPICreateInstance\0",
            ),
        )
    };
    let (max_version, create) = match (max_version, create) {
        (Ok(m), Ok(c)) => (m, c),
        _ => return Err("libnvidia-encode.so.1 lacks the NVENC entry points".into()),
    };
    let mut v = 0u32;
    // SAFETY: `v` is a valid out-pointer.
    let r = unsafe { max_version(&mut v) };
    if r != 0 {
        return Err(format!(
            "NvEncodeAPIGetMaxSupportedVersion: {}",
            nvenc_status(r)
        ));
    }
    let (major, minor) = (v >> 4, v & 0xf);
    if (major, minor) < (11, 1) {
        return Err(format!(
            "the driver supports NVENC API {major}.{minor}; spotenc needs 11.1 or newer"
        ));
    }
    let mut list = FunctionList {
        version: struct_version(2),
        reserved: 0,
        fns: [std::ptr::null(); 318],
    };
    // SAFETY: `list` is a zeroed table of the documented layout with its
    // version set.
    let r = unsafe { create(&mut list) };
    if r != 0 {
        return Err(format!("NvEncodeAPICreateInstance: {}", nvenc_status(r)));
    }
    let needed = [
        FN_GET_ENCODE_GUID_COUNT,
        FN_GET_ENCODE_GUIDS,
        FN_GET_ENCODE_CAPS,
        FN_DESTROY_ENCODER,
        FN_OPEN_ENCODE_SESSION_EX,
    ];
    if needed.iter().any(|&i| list.fns[i].is_null()) {
        return Err("NvEncodeAPICreateInstance returned an incomplete function table".into());
    }
    // SAFETY: the slots hold the functions of these signatures
    // (nvEncodeAPI.h); checked non-null above.
    let (open, guid_count, guids, caps, destroy) = unsafe {
        (
            std::mem::transmute::<*const c_void, OpenSessionEx>(
                list.fns[FN_OPEN_ENCODE_SESSION_EX],
            ),
            std::mem::transmute::<*const c_void, GetGuidCount>(list.fns[FN_GET_ENCODE_GUID_COUNT]),
            std::mem::transmute::<*const c_void, GetGuids>(list.fns[FN_GET_ENCODE_GUIDS]),
            std::mem::transmute::<*const c_void, GetCaps>(list.fns[FN_GET_ENCODE_CAPS]),
            std::mem::transmute::<*const c_void, DestroyEncoder>(list.fns[FN_DESTROY_ENCODER]),
        )
    };

    let mut out = Vec::new();
    for ordinal in 0..n {
        let mut dev: c_int = 0;
        // SAFETY: valid out-pointer and an ordinal below the count.
        Cuda::check("cuDeviceGet", unsafe { device_get(&mut dev, ordinal) })?;
        let mut name = [0 as c_char; 256];
        let mut bus = [0 as c_char; 32];
        // SAFETY: the buffers are as long as we say; CUDA NUL-terminates.
        let (name, bus) = unsafe {
            device_name(name.as_mut_ptr(), name.len() as c_int, dev);
            bus_id(bus.as_mut_ptr(), bus.len() as c_int, dev);
            (
                CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned(),
                CStr::from_ptr(bus.as_ptr()).to_string_lossy().into_owned(),
            )
        };
        let mut ctx: *mut c_void = std::ptr::null_mut();
        // SAFETY: valid out-pointer; `dev` came from cuDeviceGet.
        let result = match Cuda::check("cuCtxCreate", unsafe { ctx_create(&mut ctx, 0, dev) }) {
            Err(e) => Err(e),
            Ok(()) => {
                // SAFETY: `ctx` is a live context on this thread; the
                // session is destroyed before the context.
                let r = unsafe { session_caps(ctx, open, guid_count, guids, caps, destroy) };
                // SAFETY: the context we created above.
                unsafe { ctx_destroy(ctx) };
                r
            }
        };
        out.push(NvencDevice {
            cuda_ordinal: ordinal as u32,
            pci_bus_id: bus,
            name,
            result,
        });
    }
    Ok(out)
}

/// Opens a session on the CUDA context, reads the codecs and their limits,
/// closes the session.
///
/// # Safety
/// `ctx` must be a live CUDA context and the functions must come from the
/// NVENC function table.
unsafe fn session_caps(
    ctx: *mut c_void,
    open: OpenSessionEx,
    guid_count: GetGuidCount,
    guids: GetGuids,
    caps: GetCaps,
    destroy: DestroyEncoder,
) -> Result<Vec<NvencCodec>, String> {
    let mut params = OpenSessionExParams {
        version: struct_version(1),
        device_type: DEVICE_TYPE_CUDA,
        device: ctx,
        reserved: std::ptr::null_mut(),
        api_version: NVENCAPI_VERSION,
        reserved1: [0; 253],
        reserved2: [std::ptr::null_mut(); 64],
    };
    let mut encoder: *mut c_void = std::ptr::null_mut();
    // SAFETY: per the caller's contract; both pointers are valid.
    let r = unsafe { open(&mut params, &mut encoder) };
    if r != 0 || encoder.is_null() {
        return Err(format!("nvEncOpenEncodeSessionEx: {}", nvenc_status(r)));
    }
    let result = (|| {
        let mut count = 0u32;
        // SAFETY: a live session and a valid out-pointer.
        let r = unsafe { guid_count(encoder, &mut count) };
        if r != 0 {
            return Err(format!("nvEncGetEncodeGUIDCount: {}", nvenc_status(r)));
        }
        let mut list = vec![
            Guid {
                data1: 0,
                data2: 0,
                data3: 0,
                data4: [0; 8]
            };
            count as usize
        ];
        let mut got = 0u32;
        // SAFETY: `list` has room for `count` GUIDs.
        let r = unsafe { guids(encoder, list.as_mut_ptr(), count, &mut got) };
        if r != 0 {
            return Err(format!("nvEncGetEncodeGUIDs: {}", nvenc_status(r)));
        }
        list.truncate(got as usize);
        let cap = |guid: Guid, which: c_uint| -> Result<i32, String> {
            let mut p = CapsParam {
                version: struct_version(1),
                caps_to_query: which,
                reserved: [0; 62],
            };
            let mut v: c_int = 0;
            // SAFETY: a live session, valid pointers.
            let r = unsafe { caps(encoder, guid, &mut p, &mut v) };
            if r != 0 {
                return Err(format!("nvEncGetEncodeCaps({which}): {}", nvenc_status(r)));
            }
            Ok(v)
        };
        let mut codecs = Vec::new();
        for (guid, codec) in [(H264_GUID, Codec::H264), (HEVC_GUID, Codec::Hevc)] {
            if !list.contains(&guid) {
                continue;
            }
            codecs.push(NvencCodec {
                codec,
                max_width: cap(guid, CAPS_WIDTH_MAX)?.max(0) as u32,
                max_height: cap(guid, CAPS_HEIGHT_MAX)?.max(0) as u32,
                ten_bit: cap(guid, CAPS_SUPPORT_10BIT_ENCODE)? != 0,
                max_b_frames: cap(guid, CAPS_NUM_MAX_BFRAMES)?.max(0) as u32,
            });
        }
        Ok(codecs)
    })();
    // SAFETY: the session opened above, closed once.
    unsafe { destroy(encoder) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_layouts_match_nvencodeapi_h() {
        // Sizes on 64-bit Linux, from the header's field lists.
        assert_eq!(std::mem::size_of::<FunctionList>(), 8 + 318 * 8);
        assert_eq!(
            std::mem::size_of::<OpenSessionExParams>(),
            4 + 4 + 8 + 8 + 4 + 253 * 4 + 64 * 8
        );
        assert_eq!(std::mem::size_of::<CapsParam>(), 64 * 4);
        assert_eq!(std::mem::size_of::<Guid>(), 16);
        assert_eq!(struct_version(1), 0x7001_000b | (1 << 24));
    }

    #[test]
    fn statuses_have_names() {
        assert_eq!(nvenc_status(2), "NV_ENC_ERR_UNSUPPORTED_DEVICE (2)");
        assert_eq!(nvenc_status(99), "unknown NVENCSTATUS (99)");
    }
}
