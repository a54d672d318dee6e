//! keyhook's own HTTP/1.1 client for plain `http://` receivers: the hot path of a run.
//!
//! A POST is one `write` of a request assembled in a reused buffer (the head of each url built
//! once), its answer read into another and parsed in place (`httparse`), the connection kept
//! for the next POST and checked with one non-blocking peek when it is taken again. Measured
//! against ureq on the same connection, this is most of the user-space CPU a delivery costs
//! gone (bench/results.md, section g). `https://`, a url with credentials, and every request
//! when a proxy is configured go through ureq (`http.rs`); so does everything when the
//! benchmark's [`DEFAULT_TRANSPORT_ENV`] is `1` (the A/B figure).

mod connect;
mod response;
#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The name lookup of keyhook's own client, for ureq's (`https://`) too.
pub(super) use connect::resolve;
use connect::{connect, endpoint, still_open};
pub use response::Answer;
use response::Framing;
pub(super) use response::status_line;

use crate::bytes::any_byte;

/// Benchmark only: `1` sends plain `http://` through ureq too, so `bench/bench.py` can
/// measure this client against ureq's.
pub const DEFAULT_TRANSPORT_ENV: &str = "KEYHOOK_BENCH_DEFAULT_TRANSPORT";

/// Socket timeouts are rounded up to this step, so one that only shrank by the microseconds
/// a fast request took is not set again. A read may outlast its deadline by at most this much;
/// it never gives up before it.
const TIMEOUT_STEP: Duration = Duration::from_millis(10);

/// Why a POST got no answer.
#[derive(Debug)]
pub enum Failure {
    /// The deadline passed (connecting, sending or waiting for the answer).
    Timeout,
    HostNotFound,
    /// The system's resolver failed (no such name, or no DNS server answering): its words.
    Lookup(io::Error),
    Refused,
    /// The receiver closed the connection before a whole answer came.
    Closed,
    /// The answer is not HTTP/1.x as keyhook reads it.
    Malformed(String),
    Io(io::Error),
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout,
            io::ErrorKind::ConnectionRefused => Failure::Refused,
            _ => Failure::Io(error),
        }
    }
}

impl Failure {
    /// The words for the log, as a user reads them.
    pub fn describe(&self, timeout: Duration) -> String {
        match self {
            Failure::Timeout => {
                format!("no answer within {}", humantime::format_duration(timeout))
            }
            Failure::HostNotFound => "host not found".into(),
            Failure::Lookup(error) => lookup_words(error),
            Failure::Refused => "connection refused".into(),
            Failure::Closed => "the receiver closed the connection without a whole answer".into(),
            Failure::Malformed(what) => format!("the receiver's answer is not valid HTTP: {what}"),
            Failure::Io(error) => format!("network error: {error}"),
        }
    }

    /// Whether a request on a reused connection may be sent again on a new one, when nothing
    /// of an answer came back: its write failed (the receiver had closed the idle connection,
    /// so it cannot have read it), or, written, it met a reset. A receiver that closes a
    /// connection with bytes it has not read resets it (one that read the request and closed
    /// ends the stream instead, [`Failure::Closed`], and is not sent to again): a receiver
    /// that closes after every answer without saying `Connection: close` drops the next
    /// request unread that way.
    fn stale_connection(&self, written: bool) -> bool {
        let Failure::Io(error) = self else {
            return false;
        };
        match error.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => true,
            // A write that failed: the receiver had closed the connection.
            io::ErrorKind::BrokenPipe => !written,
            _ => false,
        }
    }
}

/// A failed name lookup in words: "host not found" with the resolver's reason, which tells
/// a name that does not exist from a DNS server that does not answer.
pub(super) fn lookup_words(error: &io::Error) -> String {
    let text = error.to_string();
    let reason = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    format!("host not found ({reason})")
}

/// Where the requests of one url go: its addresses (resolved once) and its request head up to
/// the per-request header fields.
struct Endpoint {
    url: String,
    /// `host:port` as the url says: connections are reused per authority.
    authority: String,
    addresses: Vec<SocketAddr>,
    head: Vec<u8>,
}

/// A kept-alive connection and the socket timeouts last set on it.
struct Connection {
    stream: TcpStream,
    authority: String,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Whether the whole request in flight was written: the receiver may have read it.
    sent: bool,
    /// Whether any byte of an answer to the request in flight came back.
    heard: bool,
}

/// One sending thread's client: its connection, its buffers, its endpoints.
pub struct PlainClient {
    timeout: Duration,
    endpoints: Vec<Endpoint>,
    connection: Option<Connection>,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl PlainClient {
    /// A client whose every request must complete within `timeout`; `None` when plain
    /// `http://` must go through ureq (a proxy, or the benchmark's A/B).
    pub fn new(timeout: Duration, proxied: bool) -> Option<PlainClient> {
        let ureq_only = std::env::var_os(DEFAULT_TRANSPORT_ENV).is_some_and(|value| value == "1");
        (!proxied && !ureq_only).then(|| PlainClient {
            timeout,
            endpoints: Vec::new(),
            connection: None,
            request: Vec::with_capacity(2048),
            answer: Vec::with_capacity(4096),
        })
    }

    /// POSTs `body` as JSON with the extra `headers`; `None` when `url` is not one for this
    /// client (not `http://`, with credentials, or a header field that cannot be written as is):
    /// ureq's, then.
    #[cfg(test)]
    pub fn post(
        &mut self,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Option<Result<Answer, Failure>> {
        self.post_waiting(url, body, headers, &mut || {})
    }

    /// [`PlainClient::post`], calling `waiting` once the request has left, while its answer
    /// is awaited (not at all if it never left).
    pub fn post_waiting(
        &mut self,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        waiting: &mut dyn FnMut(),
    ) -> Option<Result<Answer, Failure>> {
        if !headers.iter().all(|(name, value)| writable(name, value)) {
            return None;
        }
        let deadline = Instant::now() + self.timeout;
        let index = match self.endpoints.iter().position(|known| known.url == url) {
            Some(index) => index,
            None => {
                let endpoint = match endpoint(url, deadline)? {
                    Ok(endpoint) => endpoint,
                    Err(failure) => return Some(Err(failure)),
                };
                self.endpoints.push(endpoint);
                self.endpoints.len() - 1
            }
        };
        self.build_request(index, body, headers);
        Some(self.exchange(index, deadline, &mut Some(waiting)))
    }

    fn build_request(&mut self, index: usize, body: &[u8], headers: &[(&str, &str)]) {
        let request = &mut self.request;
        request.clear();
        request.extend_from_slice(&self.endpoints[index].head);
        for (name, value) in headers {
            let start = request.len();
            request.extend_from_slice(name.as_bytes());
            request[start..].make_ascii_lowercase();
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        let mut length = itoa::Buffer::new();
        request.extend_from_slice(b"content-length: ");
        request.extend_from_slice(length.format(body.len()).as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
    }

    /// Sends the built request and reads the answer, on the kept connection if it is still
    /// open, else on a new one. The kept one is replaced once if the request did not reach the
    /// receiver ([`Failure::stale_connection`]: its write failed, or it met a reset before any
    /// byte of an answer); a request the receiver may have read is never sent again unseen (a
    /// receiver that closes after reading it fails the attempt, retried as any other is).
    fn exchange(
        &mut self,
        index: usize,
        deadline: Instant,
        waiting: &mut Option<&mut dyn FnMut()>,
    ) -> Result<Answer, Failure> {
        let authority = &self.endpoints[index].authority;
        // Always peeked (one system call): a close that came before the request is seen here,
        // not after the request has gone out.
        if let Some(mut kept) = self.connection.take()
            && kept.authority == *authority
            && still_open(&kept.stream)
        {
            match self.send_on(&mut kept, deadline, waiting) {
                Err(failure)
                    if !kept.heard
                        && (failure.stale_connection(kept.sent)
                            || reset_behind_close(&kept, &failure, deadline)) => {}
                done => return self.keep(kept, done),
            }
        }
        let mut connection = connect(&self.endpoints[index], deadline)?;
        let done = self.send_on(&mut connection, deadline, waiting);
        self.keep(connection, done)
    }

    fn send_on(
        &mut self,
        connection: &mut Connection,
        deadline: Instant,
        waiting: &mut Option<&mut dyn FnMut()>,
    ) -> Result<(Answer, Framing), Failure> {
        connection.sent = false;
        connection.heard = false;
        connection.write_all(&self.request, deadline)?;
        connection.sent = true;
        if let Some(waiting) = waiting.take() {
            waiting();
        }
        response::read(connection, &mut self.answer, deadline)
    }

    /// Keeps `connection` for the next request if its answer left it reusable.
    fn keep(
        &mut self,
        connection: Connection,
        done: Result<(Answer, Framing), Failure>,
    ) -> Result<Answer, Failure> {
        let (answer, framing) = done?;
        if framing == Framing::Reusable {
            self.connection = Some(connection);
        }
        Ok(answer)
    }
}

impl Connection {
    /// Writes all of `bytes` before `deadline`: the timeout is set again before each write, as
    /// a receiver that reads a little at a time would make every write wait its whole timeout.
    fn write_all(&mut self, mut bytes: &[u8], deadline: Instant) -> Result<(), Failure> {
        while !bytes.is_empty() {
            self.set_write_timeout(left(deadline)?)?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(written) => bytes = &bytes[written..],
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    fn set_write_timeout(&mut self, left: Duration) -> io::Result<()> {
        let stream = &self.stream;
        update_timeout(&mut self.write_timeout, left, |t| {
            stream.set_write_timeout(t)
        })
    }

    fn set_read_timeout(&mut self, left: Duration) -> io::Result<()> {
        let stream = &self.stream;
        update_timeout(&mut self.read_timeout, left, |t| stream.set_read_timeout(t))
    }
}

/// How long a kept connection that ended before any byte of an answer is watched for the
/// reset that says the request went unread (see [`reset_behind_close`]).
const RESET_GRACE: Duration = Duration::from_millis(250);

/// Whether a kept connection that ended (`Closed`) after the whole request was written, with
/// nothing of an answer, ended because the receiver had closed it before the request came: a
/// request that reaches a closed socket is answered with a reset, while a receiver that read it
/// and then closed sends none. The close (FIN) can come after the peek and before the request,
/// and the reset behind it: the read sees the end of the stream, and the reset waits in the
/// socket's error (`SO_ERROR`), or arrives a round trip later. Without a reset within
/// [`RESET_GRACE`] (or the deadline), the request may have been read: not sent again.
fn reset_behind_close(connection: &Connection, failure: &Failure, deadline: Instant) -> bool {
    if !matches!(failure, Failure::Closed) || !connection.sent {
        return false;
    }
    let until = deadline.min(Instant::now() + RESET_GRACE);
    loop {
        match connection.stream.take_error() {
            Ok(Some(error)) => {
                return matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionAborted
                );
            }
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(1)),
            _ => return false,
        }
    }
}

/// Sets a socket timeout to `left`, rounded up to [`TIMEOUT_STEP`], unless `current` (the one
/// last set) is that already: a fast request sets none.
fn update_timeout(
    current: &mut Option<Duration>,
    left: Duration,
    set: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> io::Result<()> {
    let wanted = Some(rounded(left));
    if wanted != *current {
        set(wanted)?;
        *current = wanted;
    }
    Ok(())
}

/// Whether a header field can be written as is: one that could end its line early or hide in
/// its name is left to ureq, which refuses it.
fn writable(name: &str, value: &str) -> bool {
    // These run on every request (the values are a signature and an id: nothing to find).
    let bad_name = any_byte(name.as_bytes(), |byte| {
        u8::from(!byte.is_ascii_graphic() || byte == b':')
    });
    let bad_value = any_byte(value.as_bytes(), |byte| {
        u8::from(matches!(byte, b'\r' | b'\n' | b'\0'))
    });
    !name.is_empty() && !bad_name && !bad_value
}

/// What is left before `deadline`; a timeout once nothing is.
fn left(deadline: Instant) -> Result<Duration, Failure> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(Failure::Timeout),
    }
}

/// `left` rounded up to [`TIMEOUT_STEP`].
fn rounded(left: Duration) -> Duration {
    let step = TIMEOUT_STEP.as_nanos();
    let steps = left.as_nanos().div_ceil(step).max(1);
    Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}
