//! The socket under ureq for plain `http://` receivers, costing no more system calls than a
//! hand-written client: each request leaves in one write, socket timeouts are set only when
//! they change, and a pooled connection is checked with one non-blocking peek when it is
//! taken from the pool (not also when it goes back, right after it answered). ureq's own TCP
//! transport writes headers and body separately and checks a connection with three calls, on
//! both sides of the pool: 9 system calls a POST instead of 3. `https://` and proxied requests
//! go through ureq's default connector unchanged.
//!
//! Written for ureq's `unversioned` transport API, which is exempt from semver: Cargo.toml
//! pins ureq's minor version (`~3.5`). For the benchmark's A/B figure only, the environment
//! variable [`DEFAULT_TRANSPORT_ENV`] set to `1` sends plain `http://` through ureq's default
//! connector too (`bench/bench.py` reports both).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ureq::Error;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, LazyBuffers, NextTimeout,
    ShutdownHandle, Transport,
};

/// Socket timeouts are rounded up to this step, so one that only shrank by the microseconds
/// a fast request took is not set again. A read may outlast its deadline by at most this much;
/// it never gives up before it.
const TIMEOUT_STEP: Duration = Duration::from_millis(10);

/// Output held back beyond this is written at once rather than with the rest of the request.
const HOLD_AT_MOST: usize = 64 * 1024;

/// Benchmark only: `1` makes [`PlainHttpConnector`] hand `http://` to ureq's default
/// connector, so `bench/bench.py` can measure this transport against ureq's own.
pub const DEFAULT_TRANSPORT_ENV: &str = "KEYHOOK_BENCH_DEFAULT_TRANSPORT";

/// Opens [`OneWrite`] transports for `http://`, and defers everything else to ureq.
#[derive(Debug)]
pub struct PlainHttpConnector {
    fallback: DefaultConnector,
    /// [`DEFAULT_TRANSPORT_ENV`] was `1`: ureq's connector for everything.
    default_only: bool,
}

impl Default for PlainHttpConnector {
    fn default() -> PlainHttpConnector {
        PlainHttpConnector {
            fallback: DefaultConnector::default(),
            default_only: std::env::var_os(DEFAULT_TRANSPORT_ENV).is_some_and(|value| value == "1"),
        }
    }
}

impl Connector<()> for PlainHttpConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Self::Out>, Error> {
        if self.default_only || details.needs_tls() || details.config.proxy().is_some() {
            return self.fallback.connect(details, chained);
        }
        let stream = Arc::new(open(details)?);
        (details.register_shutdown)(Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>)?;
        let config = details.config;
        Ok(Some(Box::new(OneWrite {
            stream,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            held: Vec::new(),
            read_timeout: None,
            write_timeout: None,
            just_answered: false,
        })))
    }
}

/// Connects to the first resolved address that answers, within the connect timeout.
fn open(details: &ConnectionDetails) -> Result<TcpStream, Error> {
    let started = Instant::now();
    let budget = details.timeout.not_zero().map(|after| *after);
    let mut last = None;
    for address in &details.addrs {
        let connected = match budget {
            Some(budget) => match budget.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => TcpStream::connect_timeout(address, left),
                _ => return Err(Error::Timeout(ureq::Timeout::Connect)),
            },
            None => TcpStream::connect(address),
        };
        match connected {
            Ok(stream) => {
                stream.set_nodelay(details.config.no_delay())?;
                return Ok(stream);
            }
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                last = Some(Error::Timeout(ureq::Timeout::Connect));
            }
            Err(error) => last = Some(Error::Io(error)),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused).into()))
}

/// A TCP connection that holds a request's pieces until ureq waits for the answer, then
/// writes them in one call.
#[derive(Debug)]
struct OneWrite {
    /// Shared with the agent's shutdown handle.
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// Output not written yet.
    held: Vec<u8>,
    /// The timeouts as last set on the socket.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The last read brought bytes and no liveness check came since: the receiver has just
    /// answered on this connection. ureq checks a connection when it goes back to the pool,
    /// right after the answer, and again when it is taken out for the next request; only the
    /// second can learn something the answer did not say, so the first is free.
    just_answered: bool,
}

impl OneWrite {
    fn write_held(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        let timeout = timeout.for_write();
        let wanted = rounded(timeout)?;
        if wanted != self.write_timeout {
            self.stream.set_write_timeout(wanted)?;
            self.write_timeout = wanted;
        }
        let written = (&*self.stream).write_all(&self.held);
        self.held.clear();
        written.map_err(|error| io_error(error, timeout))
    }
}

impl Transport for OneWrite {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.held
            .extend_from_slice(&self.buffers.output()[..amount]);
        if self.held.len() > HOLD_AT_MOST {
            self.write_held(timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        if !self.held.is_empty() {
            self.write_held(timeout)?;
        }
        let timeout = timeout.for_read();
        // `None` when no timeout is set (ureq's "not happening" is u64::MAX seconds).
        let deadline = Instant::now().checked_add(*timeout.after);
        loop {
            let left = match deadline {
                Some(deadline) => NextTimeout {
                    after: deadline.saturating_duration_since(Instant::now()).into(),
                    ..timeout
                },
                None => timeout,
            };
            let wanted = rounded(left)?;
            if wanted != self.read_timeout {
                self.stream.set_read_timeout(wanted)?;
                self.read_timeout = wanted;
            }
            match (&*self.stream).read(self.buffers.input_append_buf()) {
                Ok(amount) => {
                    self.buffers.input_appended(amount);
                    self.just_answered = amount > 0;
                    return Ok(amount > 0);
                }
                // A signal (SIGTERM asks to stop after this request): keep waiting.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_error(error, timeout)),
            }
        }
    }

    fn is_open(&mut self) -> bool {
        if !self.held.is_empty() {
            return false;
        }
        // Returning to the pool straight after an answer: whatever the receiver does next (close,
        // stray bytes) is seen by the peek when the connection is taken out again.
        if std::mem::take(&mut self.just_answered) {
            return true;
        }
        // One non-blocking peek: nothing waiting means open; an end of stream or stray bytes
        // mean the connection must not be reused.
        let mut byte = [0u8; 1];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        matches!(
            rustix::net::recv(&*self.stream, &mut byte, flags),
            Err(rustix::io::Errno::AGAIN)
        )
    }
}

/// The socket timeout for what is left of `timeout`, rounded up to [`TIMEOUT_STEP`]; an
/// error once nothing is left.
fn rounded(timeout: NextTimeout) -> Result<Option<Duration>, Error> {
    if timeout.after.is_not_happening() {
        return Ok(None);
    }
    let left = *timeout.after;
    if left.is_zero() {
        return Err(Error::Timeout(timeout.reason));
    }
    let step = TIMEOUT_STEP.as_nanos();
    let steps = left.as_nanos().div_ceil(step);
    Ok(Some(Duration::from_nanos((steps * step) as u64)))
}

fn io_error(error: io::Error, timeout: NextTimeout) -> Error {
    match error.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(timeout.reason),
        _ => Error::Io(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(duration: Duration) -> NextTimeout {
        NextTimeout {
            after: duration.into(),
            ..NextTimeout::default()
        }
    }

    #[test]
    fn timeouts_round_up_to_the_step_so_fast_requests_set_none() {
        let full = Duration::from_secs(30);
        let table = [
            (full, full),
            (full - Duration::from_micros(80), full),
            (full - Duration::from_millis(9), full),
            (full - Duration::from_millis(11), full - TIMEOUT_STEP),
            (Duration::from_nanos(1), TIMEOUT_STEP),
        ];
        for (left, expected) in table {
            assert_eq!(rounded(after(left)).unwrap(), Some(expected), "{left:?}");
        }
    }

    /// Reads one request with a `Content-Length` body off `stream`.
    fn read_request(stream: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the client closed mid-request");
            seen.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                if seen.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }

    #[test]
    fn a_connection_the_receiver_closed_is_not_reused() {
        // Each connection gets one answer, then the receiver closes it without a
        // `Connection: close`: only the peek can tell the pooled connection is dead.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut stream, _) = listener.accept().unwrap();
                read_request(&mut stream);
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
            }
        });
        let sender = crate::delivery::http::Sender::new(
            Duration::from_secs(5),
            &crate::delivery::tls::TlsOptions::system(),
        );
        for _ in 0..3 {
            let attempt = sender.post(&url, b"{}", &[]);
            assert!(attempt.delivered(), "{attempt:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        receiver.join().unwrap();
    }

    #[test]
    fn only_the_check_after_an_answer_is_skipped() {
        // The receiver answers, then closes: the check as the connection goes back to the
        // pool (straight after the answer) passes without a system call, the one when it is
        // taken out again sees the close.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        drop(peer);
        let mut transport = OneWrite {
            stream: Arc::new(stream),
            buffers: LazyBuffers::new(1024, 1024),
            held: Vec::new(),
            read_timeout: None,
            write_timeout: None,
            just_answered: false,
        };
        assert!(
            transport
                .await_input(after(Duration::from_secs(5)))
                .unwrap()
        );
        let answer = transport.buffers.input().len();
        transport.buffers.input_consume(answer);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            transport.is_open(),
            "going back to the pool after an answer"
        );
        assert!(
            !transport.is_open(),
            "taken out of the pool after the close"
        );
        assert!(!transport.is_open());
    }

    #[test]
    fn nothing_left_is_a_timeout_and_no_timeout_is_none() {
        assert!(matches!(
            rounded(after(Duration::ZERO)),
            Err(Error::Timeout(_))
        ));
        assert_eq!(rounded(NextTimeout::default()).unwrap(), None);
    }
}
