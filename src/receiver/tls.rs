//! The receiver's TLS side: its certificate and key, and optionally the CA whose client
//! certificates it requires (mutual TLS).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

/// Why a receiver cannot speak TLS with the files given. Never shows the key.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    #[error("the certificate {0}")]
    Certificate(PemError),
    #[error("the client CA {0}")]
    ClientCa(PemError),
    #[error("the key file holds no PEM private key")]
    NoKey,
    #[error("{0}")]
    Rustls(rustls::Error),
    #[error("{0}")]
    Verifier(VerifierBuilderError),
    #[error("the certificate and key do not fit: {0}")]
    Mismatch(rustls::Error),
}

/// What is wrong with a file of PEM certificates; worded to follow the file's role.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("is not valid PEM: {0}")]
    NotPem(pem::Error),
    #[error("file holds no PEM certificate")]
    NoCertificate,
}

/// How a receiver speaks TLS.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl ServerTls {
    /// Serves `cert_pem` (the certificate, then any intermediates) with its `key_pem`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<ServerTls, ServerTlsError> {
        ServerTls::build(cert_pem, key_pem, None)
    }

    /// Like [`ServerTls::from_pem`], and refuses clients without a certificate that a CA in
    /// `client_ca_pem` signed.
    pub fn requiring_client_cert(
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: &[u8],
    ) -> Result<ServerTls, ServerTlsError> {
        ServerTls::build(cert_pem, key_pem, Some(client_ca_pem))
    }

    fn build(
        cert_pem: &[u8],
        key_pem: &[u8],
        client_ca_pem: Option<&[u8]>,
    ) -> Result<ServerTls, ServerTlsError> {
        let chain = certificates(cert_pem).map_err(ServerTlsError::Certificate)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| ServerTlsError::NoKey)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(ServerTlsError::Rustls)?;
        let builder = match client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for der in certificates(pem).map_err(ServerTlsError::ClientCa)? {
                    roots.add(der).map_err(ServerTlsError::Rustls)?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(ServerTlsError::Verifier)?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(ServerTlsError::Mismatch)?;
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }

    pub(super) fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::NotPem)?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}
