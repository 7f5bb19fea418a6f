//! The upstream side's trust and TLS client: the roots upstream servers are verified
//! against, and a connection offering the ALPN protocols the guest offered.

use super::InterceptError;
use rustls::crypto::ring::default_provider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// ALPN protocols the proxy speaks, in preference order.
pub(crate) const SPOKEN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Roots for upstream servers, as a client configuration without ALPN.
pub(crate) struct Trust {
    base: Arc<ClientConfig>,
}

impl Trust {
    /// The host's native roots when `host_roots`, plus each PEM root in `extra`.
    pub(crate) fn new(host_roots: bool, extra: &[String]) -> Result<Trust, InterceptError> {
        let mut roots = RootCertStore::empty();
        if host_roots {
            let native = rustls_native_certs::load_native_certs();
            if !native.errors.is_empty() {
                tracing::debug!(errors = native.errors.len(), "some native roots could not be read");
            }
            roots.add_parsable_certificates(native.certs);
        }
        for pem in extra {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| InterceptError::BadPem(e.to_string()))?;
                roots.add(cert)?;
            }
        }
        let base = ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust { base: Arc::new(base) })
    }

    /// Connects TLS over `tcp` to `name`, offering `alpn`.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        name: &str,
        alpn: Vec<Vec<u8>>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let server = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
        let mut config = (*self.base).clone();
        config.alpn_protocols = alpn;
        TlsConnector::from(Arc::new(config)).connect(server, tcp).await
    }
}
