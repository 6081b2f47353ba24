//! Client connections: a channel to a coordinator, over TLS when a CA is
//! given, with a bearer token on every call.

use std::path::Path;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::BearerToken;
use crate::pb::{job_service_client::JobServiceClient, worker_service_client::WorkerServiceClient};
use crate::{Error, Result};

pub type Authed = InterceptedService<Channel, BearerToken>;
pub type JobClient = JobServiceClient<Authed>;
pub type WorkerClient = WorkerServiceClient<Authed>;

/// Selects rustls's ring provider for the whole process. Both ring (tonic)
/// and aws-lc-rs (aws-sdk-s3) are linked, so rustls cannot pick one itself
/// and would panic at the first TLS handshake.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How to reach a coordinator.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `http://host:port`, or `https://host:port` with `tls_ca`.
    pub url: String,
    pub token: Option<crate::secret::Secret>,
    /// PEM CA certificate that signed the coordinator's certificate.
    pub tls_ca: Option<std::path::PathBuf>,
}

impl Connection {
    pub async fn channel(&self) -> Result<Channel> {
        install_crypto_provider();
        let mut ep = Endpoint::from_shared(self.url.clone())
            .map_err(|e| Error::invalid(format!("invalid coordinator url {:?}: {e}", self.url)))?;
        if let Some(ca) = &self.tls_ca {
            ep = ep
                .tls_config(ClientTlsConfig::new().ca_certificate(read_pem(ca)?))
                .map_err(|e| Error::invalid(format!("tls: {e}")))?;
        }
        // A busy server can reset a TLS handshake; try a few times before
        // reporting the coordinator unreachable.
        let mut attempt = 0;
        loop {
            match ep.connect().await {
                Ok(ch) => return Ok(ch),
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    // The transport error's own text is just "transport error".
                    let mut msg = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        msg = format!("{msg}: {s}");
                        src = s.source();
                    }
                    return Err(Error::Unavailable(format!(
                        "cannot reach coordinator {}: {msg}",
                        self.url
                    )));
                }
            }
        }
    }

    pub async fn jobs(&self) -> Result<JobClient> {
        let token = BearerToken::new(self.token.as_ref().map(crate::secret::Secret::expose))?;
        Ok(
            JobServiceClient::with_interceptor(self.channel().await?, token)
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
        )
    }

    pub async fn workers(&self) -> Result<WorkerClient> {
        let token = BearerToken::new(self.token.as_ref().map(crate::secret::Secret::expose))?;
        Ok(
            WorkerServiceClient::with_interceptor(self.channel().await?, token)
                .max_decoding_message_size(crate::MAX_MESSAGE_BYTES),
        )
    }
}

fn read_pem(path: &Path) -> Result<Certificate> {
    std::fs::read(path)
        .map(Certificate::from_pem)
        .map_err(|e| Error::invalid(format!("read {}: {e}", path.display())))
}
