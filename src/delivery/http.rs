//! The HTTP side: one keep-alive agent per sending thread, one synchronous POST per delivery,
//! and the outcome of each attempt in words a user can act on.

use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use ureq::unversioned::transport::{Connector, DefaultConnector};

use super::head_watch::{self, HeadWatch};
use super::plain::PlainClient;
use super::tls::TlsOptions;
use super::tls_errors;
use crate::definitions::url::shown_url;

/// How much of a response body is kept for the log and error messages.
pub const EXCERPT_BYTES: usize = 200;

/// The `User-Agent` keyhook sends.
pub const USER_AGENT: &str = concat!("keyhook/", env!("CARGO_PKG_VERSION"));

/// The header carrying the delivery id, the same on every attempt of a delivery.
pub const DELIVERY_HEADER: &str = "X-Keyhook-Delivery";

/// The event type of an event delivery (none for a scheduled task's).
pub const EVENT_HEADER: &str = "X-Keyhook-Event";

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, if a response came back.
    pub status: Option<u16>,
    /// Why the attempt failed; `None` for a 2xx.
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub excerpt: String,
    pub duration: Duration,
    /// The `Retry-After` header of a 429 or 503.
    pub retry_after: Option<String>,
}

impl Attempt {
    /// Whether the receiver took the delivery (any 2xx).
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Sends requests over reused keep-alive connections: plain `http://` with keyhook's own
/// client ([`PlainClient`]), the rest with ureq.
pub struct Sender {
    plain: Option<Mutex<PlainClient>>,
    agent: Agent,
    timeout: Duration,
    client_cert: bool,
    /// TLS failures already explained (url and error, then the words): explaining one can
    /// take a handshake, and a run can fail the same way thousands of times.
    explained: Mutex<Vec<(String, String)>>,
}

/// The largest answer head ureq reads (for `https://`).
const MAX_RESPONSE_HEAD: usize = 1 << 20;

impl Sender {
    /// A sender whose every request must complete within `timeout`, verifying and presenting
    /// certificates as `tls` says for `https://` urls.
    pub fn new(timeout: Duration, tls: &TlsOptions) -> Sender {
        let config = Agent::config_builder()
            .timeout_global(Some(timeout))
            .tls_config(tls.config())
            .http_status_as_error(false)
            // A redirected POST is a failure the user must see, not something to follow.
            .max_redirects(0)
            // A 2xx is delivered whatever its head carries (keyhook's own client reads the
            // status line of any head): 1 MiB rather than ureq's 64 KiB. More than 128 fields
            // ureq refuses whatever its settings; `head_watch` keeps the status of those.
            .max_response_header_size(MAX_RESPONSE_HEAD)
            .user_agent(USER_AGENT)
            .build();
        let resolver = RunResolver::default();
        Sender {
            plain: PlainClient::new(timeout, config.proxy().is_some()).map(Mutex::new),
            agent: Agent::with_parts(
                config,
                DefaultConnector::default().chain(HeadWatch),
                resolver,
            ),
            timeout,
            client_cert: tls.has_client_cert(),
            explained: Mutex::default(),
        }
    }

    /// POSTs `body` as JSON with the extra `headers`, and reports what happened.
    pub fn post(&self, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Attempt {
        self.post_waiting(url, body, headers, &mut || {})
    }

    /// [`Sender::post`], calling `waiting` once while the answer is awaited (keyhook's own
    /// client: once the request has left; ureq: before it is sent). Not at all if the request
    /// could not leave.
    pub fn post_waiting(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        waiting: &mut dyn FnMut(),
    ) -> Attempt {
        let started = Instant::now();
        let mut waiting = Some(waiting);
        if let Some(plain) = &self.plain {
            let mut plain = plain.lock().unwrap_or_else(|e| e.into_inner());
            let mut once = || {
                if let Some(waiting) = waiting.take() {
                    waiting();
                }
            };
            match plain.post_waiting(url, body, headers, &mut once) {
                Some(Ok(answer)) => {
                    let headers = (answer.location, answer.retry_after);
                    return attempt(answer.status, headers, &answer.excerpt, started);
                }
                Some(Err(failure)) => return failed(failure.describe(self.timeout), started),
                None => {}
            }
        }
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(waiting) = waiting.take() {
            waiting();
        }
        head_watch::forget();
        match request.send(body) {
            Ok(response) => answered(response, started),
            Err(error) => match head_watch::refused_status(&error) {
                // Its status line came, its fields (and body) are not read.
                Some(status) => attempt(status, (None, None), &[], started),
                None => failed(self.describe(&error, url), started),
            },
        }
    }
}

impl Sender {
    /// Why a request got no answer, in words a user can act on.
    fn describe(&self, error: &ureq::Error, url: &str) -> String {
        let Some(tls) = tls_errors::rustls_error(error) else {
            return describe(error, self.timeout);
        };
        let key = format!("{url} {tls}");
        let mut explained = self.explained.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, text)) = explained.iter().find(|(seen, _)| *seen == key) {
            return text.clone();
        }
        let text = tls_errors::explain(tls, url, self.timeout, self.client_cert);
        explained.push((key, text.clone()));
        text
    }
}

/// An attempt that got no answer.
fn failed(error: String, started: Instant) -> Attempt {
    Attempt {
        status: None,
        error: Some(error),
        excerpt: String::new(),
        duration: started.elapsed(),
        retry_after: None,
    }
}

fn answered(mut response: ureq::http::Response<ureq::Body>, started: Instant) -> Attempt {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            // Not ASCII (a `Location` with `é`) is still the receiver's word: shown lossily,
            // not as no field at all.
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    };
    let headers = (header("location"), header("retry-after"));
    // Read the whole (bounded) body so the connection goes back to the pool for the next POST.
    let mut bytes = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(64 * 1024)
        .read_to_end(&mut bytes);
    bytes.truncate(EXCERPT_BYTES);
    attempt(response.status().as_u16(), headers, &bytes, started)
}

/// What an answer with `status`, its `Location` and `Retry-After` fields and the first bytes
/// of its body came to.
fn attempt(
    status: u16,
    (location, retry_after): (Option<String>, Option<String>),
    body: &[u8],
    started: Instant,
) -> Attempt {
    let excerpt = String::from_utf8_lossy(body).trim().to_string();
    let reason = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("");
    let error = match status {
        200..=299 => None,
        300..=399 => Some(format!(
            "HTTP {status} {reason}: redirected to {}; keyhook does not follow redirects, \
             so point the task's url there",
            // Masked as the task's own url is: the target is mostly that url over https,
            // its token and all. Cut after masking, so no cut hides a credential from it.
            location.as_deref().map_or_else(
                || "nowhere (no Location header)".to_string(),
                |location| cut(shown_url(location))
            )
        )),
        code if excerpt.is_empty() => Some(format!("HTTP {code} {reason}")),
        code => Some(format!("HTTP {code} {reason}: {excerpt}")),
    };
    Attempt {
        status: Some(status),
        error,
        excerpt,
        duration: started.elapsed(),
        retry_after,
    }
}

/// `text` kept to at most [`EXCERPT_BYTES`] bytes, as a body's excerpt is: cut on a character
/// boundary, the cut marked `…`. A receiver's header field is stored and printed with every
/// attempt.
fn cut(mut text: String) -> String {
    if text.len() > EXCERPT_BYTES {
        text.truncate(crate::bytes::floor_char_boundary(&text, EXCERPT_BYTES));
        text.push('…');
    }
    text
}

fn describe(error: &ureq::Error, timeout: Duration) -> String {
    match error {
        ureq::Error::Timeout(_) => {
            format!("no answer within {}", humantime::format_duration(timeout))
        }
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<LookupFailed>()) => {
            io.get_ref().map(ToString::to_string).unwrap_or_default()
        }
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        // A hang-up before the whole answer came: in keyhook's own client's words, not
        // rustls's (its `close_notify` message and a link to its manual) or ureq's.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            super::plain::Failure::Closed.describe(timeout)
        }
        ureq::Error::Io(io) => format!("network error: {io}"),
        other => other.to_string(),
    }
}

/// A name lookup that failed, in [`Failure::describe`](super::plain::Failure::describe)'s
/// words (carried through ureq as the source of an `io::Error`).
#[derive(Debug)]
struct LookupFailed(String);

impl std::fmt::Display for LookupFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LookupFailed {}

/// Resolves each host once per run. ureq resolves before it looks for a pooled connection,
/// and with a timeout set it does so on a new thread: a thread per request. The addresses of
/// a receiver do not change within a run. The lookup is keyhook's own client's: an IP address
/// is taken as it is, on no thread, and a name is looked up on a named thread, or on the
/// sending thread where none can be started. ureq's own starts a thread even for an IP
/// address, and panics where it cannot.
#[derive(Debug, Default)]
struct RunResolver {
    inner: DefaultResolver,
    known: Mutex<Vec<(String, ResolvedSocketAddrs)>>,
}

impl Resolver for RunResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = uri
            .authority()
            .map(|authority| authority.as_str().to_string())
            .unwrap_or_default();
        if let Ok(known) = self.known.lock()
            && let Some((_, addresses)) = known.iter().find(|(host, _)| *host == key)
        {
            return Ok(addresses.clone());
        }
        let addresses = match self.ip_address(uri, config) {
            Some(addresses) => addresses?,
            None => match self.name(uri, config, &timeout) {
                Some(addresses) => addresses?,
                // Not a url with a host and a port: ureq's resolver says what is wrong.
                None => self.inner.resolve(uri, config, timeout)?,
            },
        };
        if let Ok(mut known) = self.known.lock() {
            known.push((key, addresses.clone()));
        }
        Ok(addresses)
    }
}

impl RunResolver {
    /// The address of a url whose host is an IP address (with its port, or the scheme's), as
    /// ureq's resolver would give it; `None` for a host name.
    fn ip_address(
        &self,
        uri: &Uri,
        config: &Config,
    ) -> Option<Result<ResolvedSocketAddrs, ureq::Error>> {
        let (scheme, authority) = (uri.scheme()?, uri.authority()?);
        let address: std::net::SocketAddr = DefaultResolver::host_and_port(scheme, authority)?
            .parse()
            .ok()?;
        let mut addresses = self.empty();
        for wanted in config.ip_family().keep_wanted(std::iter::once(address)) {
            addresses.push(wanted);
        }
        Some(match addresses.is_empty() {
            true => Err(ureq::Error::HostNotFound),
            false => Ok(addresses),
        })
    }

    /// The addresses of a url's host name, looked up as keyhook's own client does
    /// ([`plain::resolve`](super::plain::resolve)) within `timeout`; `None` for a url without
    /// a host and a port.
    fn name(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: &NextTimeout,
    ) -> Option<Result<ResolvedSocketAddrs, ureq::Error>> {
        let (scheme, authority) = (uri.scheme()?, uri.authority()?);
        let host_and_port = DefaultResolver::host_and_port(scheme, authority)?;
        let (host, port) = host_and_port.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        // A timeout too far off for an `Instant` (none set) is no deadline at all.
        let deadline = Instant::now()
            .checked_add(*timeout.after)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(60 * 60 * 24 * 365));
        let found = match super::plain::resolve(host, port, deadline) {
            Ok(found) => found,
            Err(super::plain::Failure::Timeout) => {
                return Some(Err(ureq::Error::Timeout(timeout.reason)));
            }
            Err(super::plain::Failure::Lookup(error)) => {
                let words = super::plain::lookup_words(&error);
                return Some(Err(ureq::Error::Io(std::io::Error::new(
                    error.kind(),
                    LookupFailed(words),
                ))));
            }
            Err(_) => return Some(Err(ureq::Error::HostNotFound)),
        };
        let mut addresses = self.empty();
        for wanted in config.ip_family().keep_wanted(found.into_iter()) {
            if addresses.try_push(wanted).is_err() {
                break;
            }
        }
        Some(match addresses.is_empty() {
            true => Err(ureq::Error::HostNotFound),
            false => Ok(addresses),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_the_trimmed_body_and_a_cut_character_shows_as_a_replacement() {
        let excerpt = |status, body: &[u8]| {
            let attempt = attempt(status, (None, None), body, Instant::now());
            (attempt.excerpt, attempt.error)
        };
        assert_eq!(excerpt(200, b"  ok\r\n"), ("ok".to_string(), None));
        // "café" cut after the first byte of its last character, as EXCERPT_BYTES can cut it.
        let (text, error) = excerpt(503, b"caf\xc3");
        assert_eq!(text, "caf\u{fffd}");
        assert_eq!(
            error.as_deref(),
            Some("HTTP 503 Service Unavailable: caf\u{fffd}")
        );
        assert_eq!(
            excerpt(500, b" \n").1.as_deref(),
            Some("HTTP 500 Internal Server Error")
        );
    }

    #[test]
    fn a_long_location_is_cut_on_a_character_after_masking() {
        let error = |location: String| {
            attempt(301, (Some(location), None), b"", Instant::now())
                .error
                .unwrap()
        };
        let long = format!("https://x.example/{}?token=secret", "é".repeat(200));
        let shown = error(long);
        let target = shown
            .strip_prefix("HTTP 301 Moved Permanently: redirected to ")
            .and_then(|rest| rest.split_once("; ").map(|(target, _)| target))
            .unwrap();
        assert_eq!(target, format!("https://x.example/{}…", "é".repeat(91)));
        let short = error("https://x.example/?token=secret".into());
        assert!(
            short.contains("to https://x.example/?token=***; keyhook"),
            "{short}"
        );
    }
}
