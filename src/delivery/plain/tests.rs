//! The client against scripted receivers on 127.0.0.1: each test's receiver answers with
//! exact bytes, so framing, reuse and failures are seen as a receiver would cause them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use super::connect::resolve;
use super::*;

/// Reads one request with a `Content-Length` body off `stream`; `None` if it closed first.
fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).unwrap_or(0);
        if read == 0 {
            return None;
        }
        seen.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if seen.len() >= end + 4 + length {
                return Some(seen);
            }
        }
    }
}

/// Every request a receiver read, and how many connections it accepted.
type Received = (Vec<Vec<u8>>, usize);

/// A receiver that gives each request the next of `answers` (on whatever connection it
/// came), closing the connection after an answer whose flag is set. It returns every request
/// it read and how many connections it accepted.
fn receiver(answers: Vec<(&'static [u8], bool)>) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/qlm?x=1", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut requests = Vec::new();
        let mut connections = 0;
        let mut answers = answers.into_iter();
        'accept: while answers.len() > 0 {
            let (mut stream, _) = listener.accept().unwrap();
            connections += 1;
            while let Some(request) = read_request(&mut stream) {
                requests.push(request);
                let Some((answer, close)) = answers.next() else {
                    break 'accept;
                };
                stream.write_all(answer).unwrap();
                if answers.len() == 0 {
                    break 'accept;
                }
                if close {
                    continue 'accept;
                }
            }
        }
        (requests, connections)
    });
    (url, handle)
}

fn client() -> PlainClient {
    PlainClient {
        timeout: Duration::from_secs(5),
        endpoints: Vec::new(),
        connection: None,
        request: Vec::new(),
        answer: Vec::new(),
    }
}

fn post(client: &mut PlainClient, url: &str) -> Result<Answer, Failure> {
    client
        .post(url, br#"{"a":1}"#, &[("X-QLM-Signature", "abc")])
        .expect("an http:// url")
}

#[test]
fn the_request_is_one_write_with_every_field_and_the_body() {
    let (url, handle) = receiver(vec![(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        false,
    )]);
    let answer = post(&mut client(), &url).unwrap();
    assert_eq!(
        (answer.status, answer.excerpt.as_slice()),
        (200, &b"ok"[..])
    );
    let (requests, _) = handle.join().unwrap();
    let text = String::from_utf8(requests[0].clone()).unwrap();
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let expected = format!(
        "POST /hooks/qlm?x=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nuser-agent: {}\r\n\
         accept: */*\r\ncontent-type: application/json\r\nx-qlm-signature: abc\r\n\
         content-length: 7\r\n\r\n{{\"a\":1}}",
        crate::delivery::http::USER_AGENT
    );
    assert_eq!(text, expected);
}

#[test]
fn one_connection_carries_every_framing_of_an_answer() {
    let answers: Vec<(&[u8], bool)> = vec![
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst", false),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", false),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", false),
        (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy", false),
    ];
    let (url, handle) = receiver(answers);
    let mut client = client();
    let seen: Vec<(u16, Vec<u8>)> = (0..5)
        .map(|_| post(&mut client, &url).unwrap())
        .map(|answer| (answer.status, answer.excerpt))
        .collect();
    let expected: Vec<(u16, &[u8])> = vec![
        (200, b"first"),
        (202, b""),
        (200, b"abcde"),
        (204, b""),
        (503, b"busy"),
    ];
    let expected: Vec<(u16, Vec<u8>)> =
        expected.into_iter().map(|(s, b)| (s, b.to_vec())).collect();
    assert_eq!(seen, expected);
    let (requests, connections) = handle.join().unwrap();
    assert_eq!((requests.len(), connections), (5, 1));
}

#[test]
fn retry_after_and_location_are_kept() {
    let (url, handle) = receiver(vec![
        (
            b"HTTP/1.1 429 Too Many\r\nretry-after: 120 \r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (
            b"HTTP/1.1 301 Moved\r\nLocation: https://new.example/h\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
    ]);
    let mut client = client();
    let first = post(&mut client, &url).unwrap();
    assert_eq!(first.retry_after.as_deref(), Some("120"));
    let second = post(&mut client, &url).unwrap();
    assert_eq!(second.location.as_deref(), Some("https://new.example/h"));
    handle.join().unwrap();
}

#[test]
fn an_answer_that_closes_or_ends_with_the_stream_is_not_reused() {
    let (url, handle) = receiver(vec![
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
            true,
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", false),
    ]);
    let mut client = client();
    assert_eq!(post(&mut client, &url).unwrap().excerpt, b"a");
    assert_eq!(post(&mut client, &url).unwrap().excerpt, b"until the end");
    assert_eq!(post(&mut client, &url).unwrap().excerpt, b"c");
    let (requests, connections) = handle.join().unwrap();
    assert_eq!((requests.len(), connections), (3, 3));
}

#[test]
fn a_connection_the_receiver_closed_while_idle_is_replaced_unseen() {
    // The receiver closes after each answer without saying so: the peek before the next
    // request sees the close.
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (url, handle) = receiver(vec![(ok, true), (ok, true), (ok, true)]);
    let mut client = client();
    for _ in 0..3 {
        assert_eq!(post(&mut client, &url).unwrap().status, 200);
        // Until the close has reached the client (a fixed pause could end before it, and the
        // request would then meet the close on the way instead).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while client
            .connection
            .as_ref()
            .is_some_and(|kept| super::still_open(&kept.stream))
        {
            assert!(std::time::Instant::now() < deadline, "never closed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (requests, connections) = handle.join().unwrap();
    assert_eq!((requests.len(), connections), (3, 3));
}

#[test]
fn a_request_the_receiver_read_then_closed_on_or_began_to_answer_is_not_sent_again() {
    // Read, then closed without a word; read, then half an answer.
    let second: [&'static [u8]; 2] = [b"", b"HTTP/1.1 200 OK\r\nContent-Le"];
    for answer in second {
        let (url, handle) = receiver(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false),
            (answer, true),
        ]);
        let mut client = client();
        assert_eq!(post(&mut client, &url).unwrap().status, 200);
        let failure = post(&mut client, &url).unwrap_err();
        assert!(matches!(failure, Failure::Closed), "{failure:?}");
        let (requests, connections) = handle.join().unwrap();
        assert_eq!((requests.len(), connections), (2, 1));
    }
}

#[test]
fn a_request_a_receiver_reset_unread_goes_again_on_a_new_connection() {
    // The receiver answers, then, without `Connection: close`, closes the connection with the
    // next request unread in it: the kernel resets it. That request was never read.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/qlm", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (mut first, _) = listener.accept().unwrap();
        let mut read = vec![read_request(&mut first).unwrap()];
        first.write_all(ok).unwrap();
        let mut byte = [0u8; 1];
        // The next request has arrived (unread): close on it.
        first.peek(&mut byte).unwrap();
        drop(first);
        let (mut second, _) = listener.accept().unwrap();
        read.push(read_request(&mut second).unwrap());
        second.write_all(ok).unwrap();
        read
    });
    let mut client = client();
    assert_eq!(post(&mut client, &url).unwrap().status, 200);
    assert_eq!(post(&mut client, &url).unwrap().status, 200);
    assert_eq!(handle.join().unwrap().len(), 2, "each request read once");
}

#[test]
fn failures_are_named() {
    let (url, handle) = receiver(vec![(b"HTTP/1.1 200 OK\r\nContent-Le", true)]);
    let mut client = client();
    let closed = post(&mut client, &url).unwrap_err();
    assert!(matches!(closed, Failure::Closed), "{closed:?}");
    handle.join().unwrap();

    let (url, handle) = receiver(vec![(b"SMTP ready\r\n\r\n", true)]);
    let bad = post(&mut client, &url).unwrap_err();
    assert!(
        bad.describe(client.timeout)
            .starts_with("the receiver's answer is not valid HTTP")
    );
    handle.join().unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = post(&mut client, &format!("http://{port}/")).unwrap_err();
    assert_eq!(refused.describe(client.timeout), "connection refused");
}

#[test]
fn a_silent_receiver_is_a_timeout_in_words() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let mut client = client();
    client.timeout = Duration::from_millis(200);
    let failure = post(&mut client, &url).unwrap_err();
    assert_eq!(failure.describe(client.timeout), "no answer within 200ms");
    drop(listener);
}

#[test]
fn only_plain_urls_without_credentials_are_this_clients() {
    let mut client = client();
    for url in [
        "https://127.0.0.1:1/",
        "http://user:pw@127.0.0.1:1/",
        "not a url",
    ] {
        assert!(client.post(url, b"{}", &[]).is_none(), "{url}");
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
        assert_eq!(rounded(left), expected, "{left:?}");
    }
}

/// A receiver that takes one connection, reads one request, then runs `script` on the stream.
fn scripted(
    address: &str,
    script: impl FnOnce(&mut TcpStream) + Send + 'static,
) -> (String, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind(address).unwrap();
    let local = listener.local_addr().unwrap();
    let url = format!("http://{local}");
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream).unwrap_or_default();
        script(&mut stream);
        request
    });
    (url, handle)
}

#[test]
fn an_endless_chunk_extension_is_refused_before_memory_grows() {
    let (url, handle) = scripted("127.0.0.1:0", |stream| {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;";
        let _ = stream.write_all(head);
        let filler = vec![b'a'; 64 * 1024];
        for _ in 0..64 {
            if stream.write_all(&filler).is_err() {
                break;
            }
        }
    });
    let mut client = client();
    client.timeout = Duration::from_secs(2);
    // The head said 200: the bad body spends the connection, not the delivery.
    let answer = post(&mut client, &url).unwrap();
    assert_eq!(answer.status, 200);
    assert!(client.connection.is_none());
    assert!(client.answer.len() <= 256 * 1024, "{}", client.answer.len());
    handle.join().unwrap();
}

#[test]
fn a_receiver_that_reads_slowly_does_not_hold_the_request_past_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::clone(&answered);
    let reader = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut chunk = [0u8; 16 * 1024];
        // Reads slowly until the client has given up (or 20 s): a client without a working
        // timeout would still be sending at the bound asserted below.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(20) && !stop.load(Ordering::Relaxed) {
            let _ = stream.read(&mut chunk);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut client = client();
    client.timeout = Duration::from_millis(500);
    let body = vec![b' '; 32 * 1024 * 1024];
    let started = std::time::Instant::now();
    let result = client.post(&url, &body, &[]).unwrap();
    let took = started.elapsed();
    answered.store(true, Ordering::Relaxed);
    assert!(matches!(result, Err(Failure::Timeout)), "{result:?}");
    // Without the timeout, the receiver would hold the request for 20 s: 5 s leaves a loaded
    // machine room and still tells the two apart.
    assert!(took < Duration::from_secs(5), "{took:?}");
    reader.join().unwrap();
}

#[test]
fn a_url_with_a_query_and_no_path_asks_for_the_root() {
    let (url, handle) = scripted("127.0.0.1:0", |stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    assert_eq!(
        post(&mut client(), &format!("{url}?x=1")).unwrap().status,
        200
    );
    let request = handle.join().unwrap();
    let line = String::from_utf8_lossy(&request);
    assert!(line.starts_with("POST /?x=1 HTTP/1.1\r\n"), "{line}");
}

#[test]
fn an_ipv6_literal_host_is_reached_and_named_in_brackets() {
    let (url, handle) = scripted("[::1]:0", |stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    });
    assert_eq!(
        post(&mut client(), &format!("{url}/h")).unwrap().status,
        200
    );
    let request = String::from_utf8(handle.join().unwrap()).unwrap();
    let host = url.trim_start_matches("http://");
    assert!(
        request.contains(&format!("\r\nhost: {host}\r\n")),
        "{request}"
    );
}

#[test]
fn a_header_value_with_a_line_break_is_never_written_as_is() {
    let mut client = client();
    let injected = [("X-Keyhook-Event", "a\r\nx-evil: 1")];
    assert!(
        client
            .post("http://127.0.0.1:1/", b"{}", &injected)
            .is_none()
    );
    // ureq, which then takes it, refuses it before connecting.
    let tls = crate::delivery::tls::TlsOptions::default();
    let sender = crate::delivery::http::Sender::new(Duration::from_secs(1), &tls);
    let attempt = sender.post("http://127.0.0.1:1/", b"{}", &injected);
    let error = attempt.error.unwrap();
    assert!(
        !error.contains("refused") && !error.contains("x-evil"),
        "{error}"
    );
}

#[test]
fn an_answer_whose_body_drips_past_the_timeout_keeps_its_status() {
    // The receiver said 200 and so took the delivery: it must not be sent again. The rest of
    // the body never comes (until the client has answered): the timeout must end the read.
    // 2 s, so that a busy machine still connects and reads the status line within it.
    let (answered, wait) = std::sync::mpsc::channel::<()>();
    let (url, handle) = scripted("127.0.0.1:0", move |stream| {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nslow");
        let _ = wait.recv_timeout(Duration::from_secs(30));
    });
    let mut client = client();
    client.timeout = Duration::from_secs(2);
    let answer = post(&mut client, &url).unwrap();
    answered.send(()).unwrap();
    assert_eq!(
        (answer.status, answer.excerpt.as_slice()),
        (200, &b"slow"[..])
    );
    assert!(client.connection.is_none());
    handle.join().unwrap();
}

#[test]
fn a_connection_switched_away_from_http_is_not_reused() {
    let (url, handle) = receiver(vec![
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
            false,
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
    ]);
    let mut client = client();
    assert_eq!(post(&mut client, &url).unwrap().status, 101);
    assert_eq!(post(&mut client, &url).unwrap().status, 200);
    let (requests, connections) = handle.join().unwrap();
    assert_eq!((requests.len(), connections), (2, 2));
}

#[test]
fn addresses_and_names_resolve_and_a_name_that_does_not_is_said_so() {
    let deadline = Instant::now() + Duration::from_secs(5);
    let literal = resolve("127.0.0.1", 8080, deadline).unwrap();
    assert_eq!(literal, vec!["127.0.0.1:8080".parse().unwrap()]);
    let v6 = resolve("::1", 80, deadline).unwrap();
    assert_eq!(v6, vec!["[::1]:80".parse().unwrap()]);
    let named = resolve("localhost", 9, deadline).unwrap();
    assert!(
        named
            .iter()
            .all(|address| address.ip().is_loopback() && address.port() == 9)
    );
    assert!(!named.is_empty());
    let past = Instant::now();
    assert!(matches!(
        resolve("localhost", 9, past),
        Err(Failure::Timeout)
    ));
}

#[test]
fn only_fields_that_cannot_break_the_head_are_written_as_is() {
    use super::writable;
    assert!(writable("X-QLM-Signature", "0123abcd"));
    assert!(writable("x", ""));
    for (name, value) in [
        ("", "v"),
        ("X Bad", "v"),
        ("X:Bad", "v"),
        ("X-\u{e9}", "v"),
        ("X", "a\rb"),
        ("X", "a\nb"),
        ("X", "a\0b"),
    ] {
        assert!(!writable(name, value), "{name:?}: {value:?}");
    }
}

#[test]
fn an_answer_with_hundreds_of_fields_is_read_and_the_connection_kept() {
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for n in 0..300 {
        many.push_str(&format!("X-A{n}: {n}\r\n"));
    }
    many.push_str("Content-Length: 2\r\n\r\nok");
    let many: &'static [u8] = Box::leak(many.into_bytes().into_boxed_slice());
    let (url, handle) = receiver(vec![
        (many, false),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
    ]);
    let mut client = client();
    let answer = post(&mut client, &url).unwrap();
    assert_eq!(
        (answer.status, answer.excerpt.as_slice()),
        (200, &b"ok"[..])
    );
    assert_eq!(post(&mut client, &url).unwrap().status, 200);
    let (requests, connections) = handle.join().unwrap();
    assert_eq!((requests.len(), connections), (2, 1));
}

#[test]
fn an_answer_whose_head_is_over_64_kib_counts_by_its_status_line() {
    let mut huge = String::from("HTTP/1.1 200 OK\r\nX-Big: ");
    huge.push_str(&"a".repeat(70 * 1024));
    huge.push_str("\r\nContent-Length: 2\r\n\r\nok");
    let huge: &'static [u8] = Box::leak(huge.into_bytes().into_boxed_slice());
    // The receiver would take a second request on the same connection: the client must not
    // send one there.
    let (url, handle) = receiver(vec![
        (huge, false),
        (b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", false),
    ]);
    let mut client = client();
    let answer = post(&mut client, &url).unwrap();
    assert_eq!(answer.status, 200, "the receiver took it");
    assert_eq!(post(&mut client, &url).unwrap().status, 201);
    let (requests, connections) = handle.join().unwrap();
    assert_eq!(
        (requests.len(), connections),
        (2, 2),
        "the first connection was not reused"
    );
    // An interim (1xx) answer says nothing of the request: not valid HTTP.
    let mut junk = String::from("HTTP/1.1 103 Early Hints\r\nX-Big: ");
    junk.push_str(&"a".repeat(70 * 1024));
    let junk: &'static [u8] = Box::leak(junk.into_bytes().into_boxed_slice());
    let (url, handle) = receiver(vec![(junk, true)]);
    let bad = post(&mut client, &url).unwrap_err();
    assert!(
        bad.describe(client.timeout).contains("over 64 KiB"),
        "{}",
        bad.describe(client.timeout)
    );
    handle.join().unwrap();
}

#[test]
fn a_failed_lookup_says_host_not_found_with_the_resolver_s_reason() {
    let said = |text: &str| lookup_words(&io::Error::other(text.to_string()));
    assert_eq!(
        said("failed to lookup address information: Temporary failure in name resolution"),
        "host not found (Temporary failure in name resolution)"
    );
    assert_eq!(said("no such host"), "host not found (no such host)");
    assert_eq!(
        Failure::Lookup(io::Error::other("x")).describe(Duration::from_secs(1)),
        "host not found (x)"
    );
}

/// A client connection to a receiver that runs `server` on its end, the request `written`.
fn written_to(server: impl FnOnce(TcpStream) + Send + 'static) -> (Connection, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || server(listener.accept().unwrap().0));
    let stream = TcpStream::connect(address).unwrap();
    let connection = Connection {
        stream,
        authority: address.to_string(),
        read_timeout: None,
        write_timeout: None,
        sent: true,
        heard: false,
    };
    (connection, handle)
}

#[test]
fn a_request_that_met_a_closed_connection_is_told_by_the_reset_behind_the_close() {
    // The receiver closed (FIN) before the request came: the request is answered with a reset,
    // which the read, seeing the end of the stream first, does not report.
    let (mut closed, handle) = written_to(drop);
    handle.join().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while super::still_open(&closed.stream) {
        assert!(std::time::Instant::now() < deadline, "never closed");
        std::thread::sleep(Duration::from_millis(1));
    }
    closed.stream.write_all(b"POST / HTTP/1.1\r\n\r\n").unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        closed.stream.read(&mut byte).unwrap(),
        0,
        "the end of the stream"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    assert!(super::reset_behind_close(
        &closed,
        &Failure::Closed,
        deadline
    ));

    // A receiver that read the request, then closed: no reset, so maybe acted on: not again.
    let (read_it, handle) = written_to(|mut stream| {
        let mut request = [0u8; 19];
        stream.read_exact(&mut request).unwrap();
    });
    let mut stream = &read_it.stream;
    stream.write_all(b"POST / HTTP/1.1\r\n\r\n").unwrap();
    handle.join().unwrap();
    assert_eq!(stream.read(&mut byte).unwrap(), 0, "the end of the stream");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    assert!(!super::reset_behind_close(
        &read_it,
        &Failure::Closed,
        deadline
    ));
    // Only the end of a stream with nothing heard is looked at this way.
    assert!(!super::reset_behind_close(
        &closed,
        &Failure::Timeout,
        deadline
    ));
}
