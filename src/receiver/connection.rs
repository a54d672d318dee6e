//! One TCP connection: read a request, call the handler, write the reply, and again, until
//! either side closes or the server stops.

use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, SystemTime};

use super::encode;
use super::parse::{self, Failure, Head};
use super::server::{Handler, Shared};
use super::{Reply, Request};

/// How long a connection may sit idle, stall mid-request or leave its reply unread.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the client to finish sending after we decided to close.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
/// How much unread input to drain before closing anyway.
const LINGER_BYTES: u64 = 1 << 20;

/// What a connection's bytes travel on: the TCP socket itself, or TLS over it.
pub(super) trait Wire: Read + Write {
    /// After the last reply: lets the client read all of it before the socket closes.
    fn finish(&mut self);
}

impl Wire for &TcpStream {
    fn finish(&mut self) {
        linger(self);
    }
}

impl Wire for rustls::StreamOwned<rustls::ServerConnection, &TcpStream> {
    fn finish(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        linger(self.sock);
    }
}

/// Serves requests on `stream`, the connection numbered `id`, until it is time to close; over
/// TLS when the server has a TLS configuration.
pub(super) fn serve(stream: &TcpStream, id: u64, shared: &Shared) {
    // Without TCP_NODELAY a small reply can wait ~40 ms for the client's delayed ACK.
    let configured = stream
        .set_nodelay(true)
        .and_then(|()| stream.set_read_timeout(Some(IDLE_TIMEOUT)))
        .and_then(|()| stream.set_write_timeout(Some(IDLE_TIMEOUT)));
    if configured.is_ok() {
        match shared.tls() {
            None => serve_on(stream, id, shared),
            Some(config) => {
                if let Ok(tls) = rustls::ServerConnection::new(config) {
                    serve_on(rustls::StreamOwned::new(tls, stream), id, shared);
                    // A refused handshake has just sent its alert: closing on the client's
                    // unread request would reset the connection before the alert is read.
                    linger(stream);
                }
            }
        }
    }
    // Closes the socket for good even though the server's registry still holds a clone.
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_on(wire: impl Wire, id: u64, shared: &Shared) {
    let mut reader = BufReader::with_capacity(16 * 1024, wire);
    let mut line = Vec::new();
    while !shared.is_stopping() && exchange(&mut reader, id, shared, &mut line) {}
}

/// Reads one request and answers it; returns whether the connection stays open for another.
fn exchange<W: Wire>(
    reader: &mut BufReader<W>,
    id: u64,
    shared: &Shared,
    line: &mut Vec<u8>,
) -> bool {
    let head = match parse::read_head(reader, line) {
        Ok(Some(head)) => head,
        Ok(None) => return false,
        Err(failure) => return refuse(reader.get_mut(), failure),
    };
    if head.expects_continue && write(reader.get_mut(), encode::CONTINUE).is_err() {
        return false;
    }
    match parse::read_body(reader, &head.framing, line) {
        Ok(body) => respond(reader.get_mut(), head, body, id, shared),
        Err(failure) => refuse(reader.get_mut(), failure),
    }
}

/// Hands a complete request to the handler, records it and writes the reply.
fn respond(stream: &mut impl Wire, head: Head, body: Vec<u8>, id: u64, shared: &Shared) -> bool {
    let omit_body = head.method == "HEAD";
    let request = Request {
        method: head.method,
        target: head.target,
        headers: head.headers,
        body,
        connection: id,
        received_at: SystemTime::now(),
    };
    let reply = call(shared.handler(), &request);
    // Recorded before any delay, so a test can see the request arrive while its reply hangs.
    shared.record(request);
    if let Some(delay) = reply.delay {
        thread::sleep(delay);
    }
    if reply.drop_without_reply {
        return false;
    }
    let keep_alive = head.keep_alive && !reply.close && !shared.is_stopping();
    let connection = match (keep_alive, head.http10) {
        (false, _) => Some("close"),
        (true, true) => Some("keep-alive"),
        (true, false) => None,
    };
    let sent = write(stream, &encode::response(&reply, omit_body, connection)).is_ok();
    if sent && !keep_alive {
        stream.finish();
    }
    sent && keep_alive
}

/// Answers a request that could not be read, if there is anyone to answer; always closes.
fn refuse(stream: &mut impl Wire, failure: Failure) -> bool {
    if let Failure::Reject(status, why) = failure {
        let reply = Reply::status(status).with_body(format!("{why}\n"));
        if write(stream, &encode::response(&reply, false, Some("close"))).is_ok() {
            stream.finish();
        }
    }
    false
}

/// Calls the handler; one that panics (a failed assertion in a test, say) answers 500 rather
/// than silently killing the connection.
fn call(handler: &Handler, request: &Request) -> Reply {
    panic::catch_unwind(AssertUnwindSafe(|| handler(request))).unwrap_or_else(|_| {
        Reply::status(500)
            .with_body("the receiver's handler panicked\n")
            .with_close()
    })
}

fn write(stream: &mut impl Wire, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes)?;
    // TLS holds written bytes until flushed; a socket's flush does nothing.
    stream.flush()
}

/// Half-closes, then drains what the client is still sending: closing a socket with unread
/// input makes the kernel send a reset, which can destroy the reply before it is read.
fn linger(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_ok()
        && stream.set_read_timeout(Some(LINGER_TIMEOUT)).is_ok()
    {
        let _ = io::copy(&mut stream.take(LINGER_BYTES), &mut io::sink());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::test_client::Client;
    use super::super::{Reply, Server};
    use super::*;

    fn echo_server() -> Server {
        Server::start("127.0.0.1:0", |request| {
            Reply::ok().with_body(request.body.clone())
        })
        .unwrap()
    }

    fn post(target: &str, body: &str, extra: &str) -> String {
        let length = body.len();
        format!(
            "POST {target} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: {length}\r\n\r\n{body}"
        )
    }

    #[test]
    fn keep_alive_serves_two_requests_on_one_connection() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        assert_eq!(client.send(post("/a", "one", "")).response().body, b"one");
        assert_eq!(client.send(post("/b", "two", "")).response().body, b"two");
        assert_eq!(server.connection_count(), 1);
        let requests = server.requests();
        let seen: Vec<_> = requests
            .iter()
            .map(|r| (r.target.as_str(), r.connection))
            .collect();
        assert_eq!(seen, [("/a", 1), ("/b", 1)]);
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        client.send(post("/a", "one", "") + &post("/b", "two", ""));
        assert_eq!(client.response().body, b"one");
        assert_eq!(client.response().body, b"two");
    }

    #[test]
    fn connection_close_is_respected() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        let response = client
            .send(post("/", "x", "Connection: close\r\n"))
            .response();
        assert_eq!(response.header("connection"), Some("close"));
        assert!(client.is_closed());
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        let request = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let response = client.send(request).response();
        assert_eq!(response.header("Connection"), Some("keep-alive"));
        let response = client.send("GET / HTTP/1.0\r\n\r\n").response();
        assert_eq!(response.header("Connection"), Some("close"));
        assert!(client.is_closed());
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        client.send("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        client.send("5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\n");
        assert_eq!(client.response().body, b"hello world");
        assert_eq!(server.requests()[0].body, b"hello world");
    }

    #[test]
    fn expect_100_continue_gets_an_interim_response_before_the_body() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        client.send("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(client.line(), "HTTP/1.1 100 Continue");
        assert_eq!(client.line(), "");
        assert_eq!(client.send("body").response().body, b"body");
    }

    #[test]
    fn delay_holds_the_reply_back() {
        let delay = Duration::from_millis(300);
        let server = Server::start("127.0.0.1:0", move |_| Reply::ok().with_delay(delay)).unwrap();
        let mut client = Client::connect(&server);
        let started = Instant::now();
        assert_eq!(client.send(post("/", "", "")).response().status, 200);
        assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    }

    #[test]
    fn drop_without_reply_closes_without_a_byte() {
        let server = Server::start("127.0.0.1:0", |_| Reply::drop_without_reply()).unwrap();
        let mut client = Client::connect(&server);
        assert!(client.send(post("/", "x", "")).is_closed());
        assert_eq!(server.request_count(), 1);
    }

    #[test]
    fn status_headers_and_body_are_sent_as_given() {
        let server = Server::start("127.0.0.1:0", |_| {
            Reply::status(503)
                .with_header("Retry-After", "7")
                .with_body("busy")
        })
        .unwrap();
        let mut client = Client::connect(&server);
        let response = client.send(post("/", "", "")).response();
        assert_eq!(
            (response.status, response.reason.as_str()),
            (503, "Service Unavailable")
        );
        assert_eq!(response.header("retry-after"), Some("7"));
        assert_eq!(response.header("content-length"), Some("4"));
        assert_eq!(response.body, b"busy");
        assert_eq!(client.send(post("/", "", "")).response().status, 503);
    }

    #[test]
    fn head_replies_have_a_length_but_no_body() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        let response = client.send("HEAD / HTTP/1.1\r\n\r\n").response_head();
        assert_eq!(response.header("Content-Length"), Some("0"));
        let response = client
            .send("HEAD / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .response_head();
        assert_eq!(response.header("Content-Length"), Some("3"));
        assert_eq!(client.send(post("/", "next", "")).response().body, b"next");
    }

    #[test]
    fn malformed_requests_get_400_and_close() {
        let server = echo_server();
        for raw in ["GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"] {
            let mut client = Client::connect(&server);
            let response = client.send(raw).response();
            assert_eq!(
                (response.status, response.header("Connection")),
                (400, Some("close"))
            );
            assert!(client.is_closed(), "{raw:?}");
        }
        assert_eq!(server.request_count(), 0);
    }

    #[test]
    fn an_oversized_header_section_gets_431() {
        let server = echo_server();
        let mut client = Client::connect(&server);
        let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000));
        assert_eq!(client.send(huge).response().status, 431);
        assert!(client.is_closed());
    }

    #[test]
    fn a_panicking_handler_answers_500() {
        let server = Server::start("127.0.0.1:0", |_| panic!("handler failed on purpose")).unwrap();
        let mut client = Client::connect(&server);
        assert_eq!(client.send(post("/", "", "")).response().status, 500);
        assert!(client.is_closed());
    }
}
