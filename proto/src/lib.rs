//! spotenc-proto: the one crate that knows protobuf.
//!
//! Layout:
//! - `spotenc/v1/spotenc.proto` (beside `src/`): the wire API, compiled by `build.rs`.
//! - [`pb`]: the generated messages and tonic clients and servers.
//! - [`domain`]: plain Rust types the rest of the workspace uses: jobs and
//!   tasks in `domain/mod.rs`, workers, GPUs and the pool and cost views in
//!   `domain/fleet.rs` (mirroring `convert/fleet.rs`).
//! - [`auth`]: bearer-token roles and the client interceptor.
//! - [`client`]: connecting to a coordinator (TLS, token).
//! - [`secret`]: [`secret::Secret`], a credential whose `Debug` hides it.
//! - [`redact`]: URL query strings (presigned credentials) removed from text
//!   that leaves a worker.
//! - `convert`: `From`/`TryFrom` between [`domain`] and [`pb`], the only place
//!   that maps one onto the other.
//! - [`Error`]: the shared error type, and its mapping to `tonic::Status`
//!   ([`Error::into_status`], [`Error::from_status`]), which exists only here.

#![forbid(unsafe_code)]

#[cfg(feature = "grpc")]
pub mod auth;
#[cfg(feature = "grpc")]
pub mod client;
pub mod domain;
pub mod redact;
pub mod secret;

mod convert;
#[cfg(test)]
mod tests;

/// Generated `spotenc.v1` messages and services.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/spotenc.v1.rs"));

    /// Encoded file descriptor set for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/spotenc_descriptor.bin"));
}

pub use convert::{job_to_pb, work_to_pb};

/// The largest gRPC message either side accepts (tonic's default is 4 MiB):
/// a probe of a long all-intra source lists hundreds of thousands of
/// keyframes, and a job of 20,000 chunks has as many task summaries.
/// Beyond it a worker fails the task naming the size.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Seconds without a frame, packet or byte moving after which a task fails
/// as stalled, unless the coordinator's `stall_seconds` says otherwise:
/// long past any encoder's flush or a network read's own timeout (30 s).
pub const DEFAULT_STALL_SECONDS: u32 = 120;

/// Errors that cross the gRPC boundary, with whether a retry can help.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request names a bad value; retrying the same request cannot help.
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A fencing token or lease no longer matches: the caller's view is stale.
    #[error("stale: {0}")]
    Stale(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A transient failure; the caller may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A quota is used up: retry once some of it is freed.
    #[error("quota exhausted: {0}")]
    Exhausted(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// The one mapping from domain errors to gRPC codes.
    #[cfg(feature = "grpc")]
    pub fn into_status(self) -> tonic::Status {
        use tonic::Status;
        match self {
            Error::Invalid(m) => Status::invalid_argument(m),
            Error::NotFound(m) => Status::not_found(m),
            Error::Stale(m) => Status::failed_precondition(m),
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Exhausted(m) => Status::resource_exhausted(m),
            Error::Internal(m) => Status::internal(m),
        }
    }

    /// The inverse of [`Error::into_status`], for clients.
    #[cfg(feature = "grpc")]
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let m = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => Error::Invalid(m),
            Code::NotFound => Error::NotFound(m),
            Code::FailedPrecondition => Error::Stale(m),
            Code::Unauthenticated => Error::Unauthenticated(m),
            Code::PermissionDenied => Error::PermissionDenied(m),
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted => Error::Unavailable(m),
            Code::ResourceExhausted => Error::Exhausted(m),
            _ => Error::Internal(format!("{:?}: {m}", status.code())),
        }
    }
}

#[cfg(feature = "grpc")]
impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        e.into_status()
    }
}
