//! Connecting to PostgreSQL from a libpq-style URL, with TLS through rustls: `sslmode` as libpq
//! reads it (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert`.

use std::str::FromStr;
use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What libpq's `sslmode` asks of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS if the server offers it, its certificate unchecked (libpq's default).
    Prefer,
    /// TLS or nothing, its certificate unchecked.
    Require,
    /// TLS, the certificate chained to a trusted root; any host name.
    VerifyCa,
    /// TLS, the certificate chained to a trusted root and naming the host.
    VerifyFull,
}

/// Why a connection could not be made. Never quotes the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("sslmode `{0}` is not one of disable, allow, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    /// The URL, as the driver reads it.
    #[error("{0}")]
    Url(postgres::Error),
    /// The server, or the way to it, with the causes on one line.
    #[error("{}", error_text(.0))]
    Connect(postgres::Error),
    #[error("{0}")]
    Tls(rustls::Error),
    #[error("{0}")]
    Verifier(rustls::client::VerifierBuilderError),
    #[error("could not read sslrootcert {path}: {error}")]
    ReadRootCert { path: String, error: std::io::Error },
    #[error("sslrootcert {path}: {why}")]
    RootCert {
        path: String,
        why: crate::delivery::tls::CertificatesError,
    },
}

/// A URL taken apart: what `postgres` reads, and the TLS settings keyhook reads itself.
#[derive(Debug)]
pub struct Target {
    pub config: Config,
    pub mode: TlsMode,
    pub root_cert: Option<String>,
}

/// Parses `url`; the error never quotes it (it may hold a password).
pub fn parse(url: &str) -> Result<Target, ConnectError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (mut mode, mut root_cert, mut kept) = (TlsMode::Prefer, None, Vec::new());
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = tls_mode(value)?,
            "sslrootcert" => root_cert = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = Config::from_str(&rest).map_err(ConnectError::Url)?;
    config.ssl_mode(match mode {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok(Target {
        config,
        mode,
        root_cert,
    })
}

fn tls_mode(value: &str) -> Result<TlsMode, ConnectError> {
    Ok(match value {
        "disable" | "allow" => TlsMode::Disable,
        "prefer" => TlsMode::Prefer,
        "require" => TlsMode::Require,
        "verify-ca" => TlsMode::VerifyCa,
        "verify-full" => TlsMode::VerifyFull,
        other => return Err(ConnectError::SslMode(other.to_string())),
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = text.get(index + 1..index + 3);
        match (
            bytes[index],
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Connects, with TLS as `sslmode` asks.
pub fn connect(url: &str) -> Result<Client, ConnectError> {
    let target = parse(url)?;
    if target.mode == TlsMode::Disable {
        return target.config.connect(NoTls).map_err(ConnectError::Connect);
    }
    let tls = MakeRustlsConnect::new(tls_config(target.mode, target.root_cert.as_deref())?);
    target.config.connect(tls).map_err(ConnectError::Connect)
}

/// The error and its causes, on one line.
pub fn error_text(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_string();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}

fn tls_config(mode: TlsMode, root_cert: Option<&str>) -> Result<ClientConfig, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(ConnectError::Tls)?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        TlsMode::VerifyCa | TlsMode::VerifyFull => {
            let roots = Arc::new(roots(root_cert)?);
            let algorithms = provider.signature_verification_algorithms;
            let webpki = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
                .build()
                .map_err(ConnectError::Verifier)?;
            Arc::new(Verify {
                full: mode == TlsMode::VerifyFull,
                webpki,
                roots,
                algorithms,
            })
        }
        _ => Arc::new(Unchecked(provider.signature_verification_algorithms)),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// `sslrootcert` if given (as libpq: it replaces the system's roots), else the system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, ConnectError> {
    let mut store = RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let pem = crate::file_access::read_regular(
                std::path::Path::new(path),
                crate::file_access::MAX_PEM_BYTES,
            )
            .map_err(|error| ConnectError::ReadRootCert {
                path: path.to_string(),
                error,
            })?;
            let certs =
                crate::delivery::tls::parse_ca(&pem).map_err(|why| ConnectError::RootCert {
                    path: path.to_string(),
                    why,
                })?;
            store.add_parsable_certificates(certs);
        }
        None => {
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(store)
}

/// `verify-ca` and `verify-full`: the chain checked by webpki; the name only for `verify-full`.
#[derive(Debug)]
struct Verify {
    full: bool,
    webpki: Arc<WebPkiServerVerifier>,
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.full {
            return self.webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp,
                now,
            );
        }
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require`, as libpq means them: encrypted, but the certificate not checked.
/// The handshake's own signatures are still verified.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The URL as keyhook shows it: the password in the user part and every parameter that holds a
/// secret (`password`, `sslpassword`, named as libpq reads them, percent-decoded) replaced by
/// `***`. For display only: the state's outbox cursor is keyed by [`cursor_key`].
pub fn redact(url: &str) -> String {
    masked(url, |name| {
        matches!(percent_decode(name).as_str(), "password" | "sslpassword")
    })
}

/// The key of a server's outbox cursor in keyhook's state: the URL with the user part's
/// password and a `password=` parameter replaced by `***`. Existing cursors are stored under
/// this form, so it must not change (a new key would re-send every event from the start);
/// it is never shown, and [`redact`] masks more.
pub fn cursor_key(url: &str) -> String {
    masked(url, |name| name == "password")
}

/// The URL with the user part's password and the parameters `is_secret` names masked.
fn masked(url: &str, is_secret: impl Fn(&str) -> bool) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => match user.split_once(':') {
                    Some((name, _)) => format!("{name}:***@{host}"),
                    None => authority.to_string(),
                },
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    if !query.is_empty() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret(name) => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        shown = format!("{shown}?{}", pairs.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgresql://h/db?user=u&password=secret&sslmode=require",
                "postgresql://h/db?user=u&password=***&sslmode=require",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
            assert!(!redact(url).contains("secret"));
            // Without an sslpassword the cursor's key is the shown form.
            assert_eq!(cursor_key(url), shown, "{url}");
        }
    }

    #[test]
    fn sslpassword_is_shown_masked_but_the_cursor_key_keeps_its_old_form() {
        let url = "postgres://u:pw@h/db?sslpassword=keysecret&pass%77ord=other&sslmode=require";
        assert_eq!(
            redact(url),
            "postgres://u:***@h/db?sslpassword=***&pass%77ord=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://h/db?ssl%70assword=keysecret"),
            "postgres://h/db?ssl%70assword=***"
        );
        // Cursors already stored under this key would be re-sent from the start if it moved.
        assert_eq!(
            cursor_key(url),
            "postgres://u:***@h/db?sslpassword=keysecret&pass%77ord=other&sslmode=require"
        );
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_by_keyhook() {
        let target = parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem")
            .expect("parses");
        assert_eq!(target.mode, TlsMode::VerifyFull);
        assert_eq!(target.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(target.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(target.config.get_dbname(), Some("db"));
        let default = parse("postgresql://h/db?application_name=x").expect("parses");
        assert_eq!(default.mode, TlsMode::Prefer);
        assert!(parse("postgres://h/db?sslmode=sometimes").is_err());
    }
}
