//! TLS failures in words a user can act on: whose certificate is not trusted and what to set,
//! which names a certificate holds, when it expired, a receiver that does not speak TLS.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, ClientConfig, ClientConnection};
use rustls::{DigitallySignedStruct, Error as TlsError, SignatureScheme};
use ureq::http::Uri;
use x509_cert::der::Decode;

/// The rustls error behind a failed request, if TLS is what failed.
pub fn rustls_error(error: &ureq::Error) -> Option<&TlsError> {
    match error {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<TlsError>(),
        _ => None,
    }
}

/// What went wrong talking TLS to `url`. An unknown issuer costs one more handshake, to read
/// the receiver's certificates and name the authority to trust.
pub fn explain(error: &TlsError, url: &str, timeout: Duration, client_cert: bool) -> String {
    let host = host_of(url);
    match error {
        TlsError::InvalidCertificate(certificate) => {
            explain_certificate(certificate, url, &host, timeout)
        }
        TlsError::AlertReceived(alert) => explain_alert(*alert, client_cert),
        TlsError::InvalidMessage(_) | TlsError::InappropriateMessage { .. } => format!(
            "the receiver at {host} does not speak TLS (a plain-HTTP server on an https:// \
             url?): keyhook never falls back to plain HTTP; point the url at the receiver's \
             HTTPS port, or use http:// if the receiver has no TLS ({error})"
        ),
        other => format!("TLS error with {host}: {other}"),
    }
}

fn explain_certificate(
    error: &CertificateError,
    url: &str,
    host: &str,
    timeout: Duration,
) -> String {
    match error {
        CertificateError::UnknownIssuer => {
            let issuer = presented_chain(url, timeout)
                .and_then(|chain| chain.last().and_then(|top| issuer_of(top)))
                .map_or_else(
                    || "an authority".to_string(),
                    |(issuer, self_signed)| match self_signed {
                        true => format!("itself (self-signed, `{issuer}`)"),
                        false => format!("`{issuer}`"),
                    },
                );
            format!(
                "the certificate of {host} is issued by {issuer}, which keyhook does not \
                 trust: set `ca_file` to that CA's certificate (PEM) in the task's [webhook] \
                 or in keyhook.toml, or add it to the system's trust store"
            )
        }
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "the certificate of {host} is for {}, not for `{host}`: use one of those names in \
             the url, or give the receiver a certificate for `{host}`",
            quoted(presented)
        ),
        CertificateError::ExpiredContext { not_after, time } => format!(
            "the certificate of {host} expired at {} ({} ago): the receiver must renew it",
            utc(*not_after),
            age(time.as_secs().saturating_sub(not_after.as_secs()))
        ),
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the certificate of {host} is not valid before {}: check this machine's clock",
            utc(*not_before)
        ),
        other => format!("the certificate of {host} is not acceptable: {other:?}"),
    }
}

fn explain_alert(alert: AlertDescription, client_cert: bool) -> String {
    use AlertDescription::*;
    match (alert, client_cert) {
        (CertificateRequired | HandshakeFailure | BadCertificate, false) => format!(
            "the receiver requires a client certificate (TLS alert {alert:?}): set \
             `client_cert` and `client_key` in the task's [webhook]"
        ),
        (BadCertificate | UnknownCA | CertificateUnknown | AccessDenied, true) => format!(
            "the receiver rejected keyhook's client certificate (TLS alert {alert:?}): check \
             that `client_cert` is signed by a CA the receiver trusts and still valid"
        ),
        (alert, _) => format!("the receiver ended the TLS handshake with alert {alert:?}"),
    }
}

/// `host` or `host:port`, as written in the url.
fn host_of(url: &str) -> String {
    url.parse::<Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_string))
        .unwrap_or_else(|| url.to_string())
}

/// The names as a list for a message: rustls gives them in webpki's debug form
/// (`DnsName("a.example")`, `IpAddress(10.0.0.1)`), shown here as written in a url.
fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "no host name".into();
    }
    let plain = |name: &str| {
        name.strip_prefix("DnsName(\"")
            .and_then(|rest| rest.strip_suffix("\")"))
            .or_else(|| name.strip_prefix("IpAddress(")?.strip_suffix(')'))
            .unwrap_or(name)
            .to_string()
    };
    let names: Vec<String> = names
        .iter()
        .map(|name| format!("`{}`", plain(name)))
        .collect();
    names.join(", ")
}

fn utc(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map_or_else(
            || format!("{} (Unix time)", time.as_secs()),
            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// `3 days`, or under a day `5h 3m`.
fn age(seconds: u64) -> String {
    match seconds / 86_400 {
        0 => humantime::format_duration(Duration::from_secs(seconds / 60 * 60)).to_string(),
        1 => "1 day".into(),
        days => format!("{days} days"),
    }
}

/// The issuer of a certificate (RFC 4514), and whether it issued itself.
fn issuer_of(der: &CertificateDer<'_>) -> Option<(String, bool)> {
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = certificate.tbs_certificate();
    Some((tbs.issuer().to_string(), tbs.issuer() == tbs.subject()))
}

/// The certificates the receiver at `url` presents, read by a handshake whose verifier
/// records them and refuses: nothing is sent over it.
fn presented_chain(url: &str, timeout: Duration) -> Option<Vec<CertificateDer<'static>>> {
    let uri: Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string()).ok()?;
    let address = (host, uri.port_u16().unwrap_or(443))
        .to_socket_addrs()
        .ok()?
        .next()?;
    let recorder = Arc::new(Recorder::default());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let mut socket = TcpStream::connect_timeout(&address, timeout).ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    socket.set_write_timeout(Some(timeout)).ok()?;
    let mut connection = ClientConnection::new(Arc::new(config), name).ok()?;
    let refused: io::Result<_> = connection.complete_io(&mut socket);
    drop(refused);
    recorder.chain.lock().ok()?.take()
}

/// A verifier that keeps the certificates it is shown and accepts none of them.
#[derive(Debug, Default)]
struct Recorder {
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|der| der.clone().into_owned())
            .collect();
        if let Ok(mut recorded) = self.chain.lock() {
            *recorded = Some(chain);
        }
        Err(TlsError::General(
            "certificates recorded, not trusted".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::General("never trusted".into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        Err(TlsError::General("never trusted".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_say_what_to_set() {
        let required = explain_alert(AlertDescription::CertificateRequired, false);
        assert!(
            required.contains("set `client_cert` and `client_key`"),
            "{required}"
        );
        let rejected = explain_alert(AlertDescription::UnknownCA, true);
        assert!(
            rejected.contains("rejected keyhook's client certificate"),
            "{rejected}"
        );
        let other = explain_alert(AlertDescription::ProtocolVersion, false);
        assert!(other.contains("ProtocolVersion"), "{other}");
    }

    #[test]
    fn certificate_errors_name_names_and_times() {
        let url = "https://127.0.0.1:1/hook";
        let mismatch = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("127.0.0.1").unwrap(),
            presented: vec![
                "DnsName(\"a.example\")".into(),
                "IpAddress(10.0.0.1)".into(),
            ],
        };
        let text = explain_certificate(&mismatch, url, "127.0.0.1", Duration::from_secs(1));
        assert!(
            text.contains("is for `a.example`, `10.0.0.1`, not for `127.0.0.1`"),
            "{text}"
        );
        let expired = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000 + 86_400)),
            not_after: UnixTime::since_unix_epoch(Duration::from_secs(1_700_000_000)),
        };
        let text = explain_certificate(&expired, url, "127.0.0.1", Duration::from_secs(1));
        assert!(
            text.contains("expired at 2023-11-14 22:13:20 UTC (1 day ago)"),
            "{text}"
        );
    }

    #[test]
    fn the_host_is_taken_from_the_url() {
        assert_eq!(host_of("https://crm.example.com:8443/x"), "crm.example.com");
        assert_eq!(host_of("not a url"), "not a url");
    }
}
