//! What an HTTPS request trusts and presents: the system's certificate roots (plus a private
//! CA from `ca_file`), and a client certificate for receivers that require mutual TLS.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// The TLS side of a webhook: which roots verify the receiver, which certificate keyhook shows.
#[derive(Clone)]
pub struct TlsOptions {
    roots: RootCerts,
    /// How many certificates `ca_file` added, for messages.
    extra_roots: usize,
    client: Option<ClientCert>,
}

impl TlsOptions {
    /// The platform's own verifier and roots, what curl trusts (on Linux: `SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`, else the distribution's bundle), and no client certificate.
    pub fn system() -> TlsOptions {
        TlsOptions {
            roots: RootCerts::PlatformVerifier,
            extra_roots: 0,
            client: None,
        }
    }

    /// Trusts `extra` beside the system's roots (a private CA adds to them, it does not replace
    /// them), and presents `client` when the receiver asks for a certificate.
    pub fn new(extra: Vec<CertificateDer<'static>>, client: Option<ClientCert>) -> TlsOptions {
        let roots = if extra.is_empty() {
            RootCerts::PlatformVerifier
        } else {
            let mut all = system_roots();
            all.extend(
                extra
                    .iter()
                    .map(|der| Certificate::from_der(der).to_owned()),
            );
            RootCerts::new_with_certs(&all)
        };
        TlsOptions {
            roots,
            extra_roots: extra.len(),
            client,
        }
    }

    /// Whether a client certificate is configured.
    pub fn has_client_cert(&self) -> bool {
        self.client.is_some()
    }

    /// ureq's TLS configuration for these options.
    pub fn config(&self) -> TlsConfig {
        TlsConfig::builder()
            .root_certs(self.roots.clone())
            .client_cert(self.client.clone())
            .build()
    }
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions::system()
    }
}

/// Never shows the key; only what is configured.
impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("extra_roots", &self.extra_roots)
            .field("client_cert", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// The roots the system trusts, as rustls-native-certs finds them (the same list the platform
/// verifier loads on Linux). Unreadable entries are skipped, as the platform verifier does.
fn system_roots() -> Vec<Certificate<'static>> {
    rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect()
}

/// Why a PEM file of certificates cannot be used; worded to follow the file's name.
#[derive(Debug, thiserror::Error)]
pub enum CertificatesError {
    #[error("not valid PEM: {0}")]
    NotPem(rustls::pki_types::pem::Error),
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// `number` counts from 1, in file order.
    #[error("certificate {number} is not usable: {error}")]
    Unusable { number: usize, error: rustls::Error },
}

/// Every certificate in a PEM text, each checked to be usable as a trust anchor.
pub fn parse_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertificatesError> {
    let certs = parse_certificates(pem)?;
    for (index, der) in certs.iter().enumerate() {
        RootCertStore::empty()
            .add(der.clone())
            .map_err(|error| CertificatesError::Unusable {
                number: index + 1,
                error,
            })?;
    }
    Ok(certs)
}

/// Every `CERTIFICATE` block in a PEM text; none is an error.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertificatesError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(CertificatesError::NotPem)?;
    if certs.is_empty() {
        return Err(CertificatesError::NoCertificate);
    }
    Ok(certs)
}

/// A client certificate of X.509 version 1 (what `openssl x509 -req` makes without extensions).
const VERSION_1: &str = "is an X.509 version 1 certificate, which TLS here (rustls) does not \
    accept: issue it as version 3 (`openssl x509 -req ... -extfile` with any extension, e.g. \
    `extendedKeyUsage = clientAuth`)";

/// A client certificate chain and its private key, checked to belong together. Errors never
/// quote the key.
pub fn client_identity(cert_pem: &[u8], key_pem: &[u8]) -> Result<ClientCert, ClientError> {
    let chain =
        parse_certificates(cert_pem).map_err(|error| ClientError::Cert(error.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| {
        ClientError::Key(
            "holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; unencrypted)".into(),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // ureq panics on a key that does not fit the certificate: rustls checks it here first.
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_root_certificates(RootCertStore::empty())
                .with_client_auth_cert(chain.clone(), key.clone_key())
        })
        .map_err(|error| match &error {
            // webpki's words for it: UnsupportedCertVersion. Not the key's fault.
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
                if format!("{other:?}").contains("UnsupportedCertVersion") =>
            {
                ClientError::Cert(VERSION_1.into())
            }
            _ => ClientError::Mismatch(error.to_string()),
        })?;
    let certs: Vec<_> = chain
        .iter()
        .map(|der| Certificate::from_der(der).to_owned())
        .collect();
    let key = PrivateKey::from_pem(key_pem)
        .map_err(|_| ClientError::Key("holds no PEM private key".into()))?;
    Ok(ClientCert::new_with_certs(&certs, key))
}

/// Why a client certificate and key cannot be used, and which file is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The certificate file.
    Cert(String),
    /// The key file.
    Key(String),
    /// The two do not belong together, or the key is of an unsupported kind.
    Mismatch(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn a_version_1_client_certificate_is_said_as_such_not_as_a_key_mismatch() {
        let cert = include_bytes!("../../tests/fixtures/x509-v1-client.pem");
        let key = include_bytes!("../../tests/fixtures/x509-v1-client.key");
        match client_identity(cert, key) {
            Err(ClientError::Cert(why)) => assert!(why.contains("version 1"), "{why}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("rustls accepted a version 1 certificate"),
        }
    }

    #[test]
    fn ca_files_hold_one_or_more_certificates() {
        let (first, second) = (ca().0.pem(), ca().0.pem());
        assert_eq!(parse_ca(first.as_bytes()).unwrap().len(), 1);
        let both = format!("# two CAs\n{first}\n{second}");
        assert_eq!(parse_ca(both.as_bytes()).unwrap().len(), 2);
        assert!(
            parse_ca(b"hello")
                .unwrap_err()
                .to_string()
                .contains("no PEM certificate")
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(
            parse_ca(broken.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("certificate 1 is not usable")
        );
    }

    #[test]
    fn a_client_key_must_belong_to_its_certificate() {
        let (cert, key) = ca();
        let (_, other) = ca();
        let pem = cert.pem();
        assert!(client_identity(pem.as_bytes(), key.serialize_pem().as_bytes()).is_ok());
        let mismatch = client_identity(pem.as_bytes(), other.serialize_pem().as_bytes());
        assert!(
            matches!(mismatch, Err(ClientError::Mismatch(_))),
            "{mismatch:?}"
        );
        let no_key = client_identity(pem.as_bytes(), pem.as_bytes());
        assert!(matches!(no_key, Err(ClientError::Key(_))), "{no_key:?}");
        let no_cert = client_identity(b"", key.serialize_pem().as_bytes());
        assert!(matches!(no_cert, Err(ClientError::Cert(_))), "{no_cert:?}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let (cert, key) = ca();
        let identity =
            client_identity(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        let options = TlsOptions::new(Vec::new(), Some(identity));
        let shown = format!("{options:?}");
        assert!(shown.contains("client_cert: true"), "{shown}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("der"),
            "{shown}"
        );
    }
}
