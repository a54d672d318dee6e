//! What a receiver's answer comes to, over keyhook's own plain-HTTP client and over ureq
//! (`https://`): heads with many fields, long or non-ASCII `Location`s, hang-ups, and a
//! receiver that reads a request and closes without answering.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::pki::{Ca, Identity};
use crate::support::{Test, stdout};
use keyhook::receiver::{Reply, Server, ServerTls};

/// `count` licenses that match, and a task posting them to `url` that trusts `ca` for
/// `https://`.
fn licenses(url: &str, ca: &Ca, count: i64) -> Test {
    let trust = match url.starts_with("https://") {
        true => "ca_file = \"ca.pem\"",
        false => "",
    };
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("all", "all", url, trust)
        .write("tasks/ca.pem", &ca.pem);
    for id in 1..=count {
        test.simple_license(id, "2026-12-01T00:00:00");
    }
    test
}

/// `run-task all`: its exit code and what it printed.
fn run(test: &Test) -> (Option<i32>, String) {
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    (output.status.code(), stdout(&output))
}

/// Every attempt's error in the log, in order.
fn logged_errors(test: &Test) -> Vec<String> {
    let log = test
        .keyhook(["log", "--json", "--attempts"])
        .output()
        .unwrap();
    let mut errors = Vec::new();
    for line in stdout(&log).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        for attempt in entry["attempts"].as_array().unwrap() {
            errors.push(attempt["error"].as_str().unwrap_or("").to_string());
        }
    }
    errors
}

/// A plain receiver and a TLS one (for 127.0.0.1, signed by `ca`), both answering `reply`.
fn both_receivers(
    ca: &Ca,
    reply: impl Fn() -> Reply + Send + Sync + Clone + 'static,
) -> [Server; 2] {
    let identity = ca.server(&["127.0.0.1"]);
    let tls = ServerTls::from_pem(identity.cert.as_bytes(), identity.key.as_bytes()).unwrap();
    let plain_reply = reply.clone();
    [
        Server::start("127.0.0.1:0", move |_| plain_reply()).unwrap(),
        Server::start_tls("127.0.0.1:0", tls, move |_| reply()).unwrap(),
    ]
}

#[test]
fn a_2xx_with_many_header_fields_is_delivered_once() {
    let ca = Ca::new("keyhook test CA");
    let many = || {
        (0..300).fold(Reply::ok(), |reply, i| {
            reply.with_header(format!("X-Field-{i}"), "v")
        })
    };
    for server in both_receivers(&ca, many) {
        let test = licenses(&server.url("/hook"), &ca, 2);
        let (code, text) = run(&test);
        assert_eq!(code, Some(0), "{}: {text}", server.url("/"));
        assert!(text.contains("2 matched, 2 delivered, 0 failed"), "{text}");
        assert_eq!(server.request_count(), 2, "{}", server.url("/"));
    }
}

#[test]
fn a_receiver_that_reads_a_request_and_closes_gets_it_once_and_the_attempt_is_logged() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    // The second request arrives on the kept-alive connection; it is read, then the receiver
    // hangs up without a word.
    let server = Server::start("127.0.0.1:0", move |_| {
        match counter.fetch_add(1, Ordering::SeqCst) {
            1 => Reply::drop_without_reply(),
            _ => Reply::ok(),
        }
    })
    .unwrap();
    let test = licenses(&server.url("/hook"), &Ca::new("unused"), 3);
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("3 matched, 2 delivered, 1 failed"), "{text}");
    let errors = logged_errors(&test);
    assert_eq!(
        server.request_count(),
        errors.len(),
        "every request the receiver read is a logged attempt: {errors:?}"
    );
    assert!(
        errors.contains(&"the receiver closed the connection without a whole answer".into()),
        "{errors:?}"
    );
}

#[test]
fn a_long_location_is_cut_in_the_output_and_the_log() {
    let ca = Ca::new("keyhook test CA");
    let long = format!("https://new.example.com/{}", "é".repeat(30_000));
    let location = long.clone();
    let redirect = move || Reply::status(301).with_header("Location", location.clone());
    for server in both_receivers(&ca, redirect) {
        let test = licenses(&server.url("/hook"), &ca, 1);
        let (code, text) = run(&test);
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains("redirected to https://new.example.com/éé"),
            "{text}"
        );
        assert!(text.len() < 4000, "{} bytes printed", text.len());
        let errors = logged_errors(&test);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].len() < 1000, "{} bytes logged", errors[0].len());
        assert!(
            errors[0].contains("é…"),
            "cut on a character and marked: {}",
            errors[0]
        );
        assert!(!errors[0].contains('\u{fffd}'), "{}", errors[0]);
    }
}

#[test]
fn a_non_ascii_location_is_shown() {
    let ca = Ca::new("keyhook test CA");
    let identity = ca.server(&["127.0.0.1"]);
    let tls = ServerTls::from_pem(identity.cert.as_bytes(), identity.key.as_bytes()).unwrap();
    let server = Server::start_tls("127.0.0.1:0", tls, |_| {
        Reply::status(308).with_header("Location", "https://new.example.com/café")
    })
    .unwrap();
    let test = licenses(&server.url("/hook"), &ca, 1);
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("redirected to https://new.example.com/café;"),
        "{text}"
    );

    // Latin-1 bytes, not UTF-8: shown with a replacement character, not as no Location.
    let (url, receiver) =
        raw_receiver(b"HTTP/1.1 301 Moved\r\nLocation: /caf\xe9\r\nContent-Length: 0\r\n\r\n");
    let test = licenses(&url, &ca, 1);
    let (code, text) = run(&test);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("redirected to /caf\u{fffd};"), "{text}");
    receiver.join().unwrap();
}

#[test]
fn an_https_receiver_hanging_up_mid_answer_is_said_plainly() {
    let ca = Ca::new("keyhook test CA");
    for close_notify in [false, true] {
        let (url, receiver) = tls_hang_up(&ca.server(&["127.0.0.1"]), close_notify);
        let test = licenses(&url, &ca, 1);
        let (code, text) = run(&test);
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains("the receiver closed the connection without a whole answer"),
            "close_notify {close_notify}: {text}"
        );
        assert!(!text.contains("docs.rs"), "{text}");
        receiver.join().unwrap();
    }
}

/// Reads one request with a `Content-Length` body off `stream`.
fn read_request(stream: &mut impl Read) {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).unwrap();
        assert_ne!(read, 0, "the request ended early");
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

/// A plain receiver that answers one request with exactly `answer` and closes.
fn raw_receiver(answer: &'static [u8]) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(answer).unwrap();
    });
    (url, handle)
}

/// A TLS receiver that reads one request, sends the start of an answer's head and hangs up,
/// saying so in TLS (`close_notify`) or not.
fn tls_hang_up(identity: &Identity, close_notify: bool) -> (String, JoinHandle<()>) {
    let chain = CertificateDer::pem_slice_iter(identity.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (socket, _): (TcpStream, _) = listener.accept().unwrap();
        let connection = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, socket);
        read_request(&mut tls);
        tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap();
        if close_notify {
            tls.conn.send_close_notify();
        }
        tls.flush().unwrap();
        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
    });
    (url, handle)
}
