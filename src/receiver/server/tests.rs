use std::io::{BufRead, BufReader, Read, Write};

use super::super::test_client::Client;
use super::*;

fn ok_server() -> Server {
    Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap()
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n")
}

#[test]
fn requests_are_recorded_in_order_with_their_connection() {
    let server = ok_server();
    Client::connect(&server).send(get("/1")).response();
    let mut second = Client::connect(&server);
    second.send(get("/2")).response();
    second
        .send("POST /3 HTTP/1.1\r\nX-Sig: abc\r\nContent-Length: 2\r\n\r\n{}")
        .response();
    let requests = server.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.target.as_str(), r.connection))
        .collect();
    assert_eq!(seen, [("/1", 1), ("/2", 2), ("/3", 2)]);
    assert_eq!(
        (requests[2].method.as_str(), requests[2].body.as_slice()),
        ("POST", &b"{}"[..])
    );
    assert_eq!(requests[2].header("x-sig"), Some("abc"));
    assert_eq!((server.request_count(), server.connection_count()), (3, 2));
}

#[test]
fn an_unrecorded_server_counts_but_keeps_nothing() {
    let server = Server::start_unrecorded("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let mut client = Client::connect(&server);
    client.send(get("/a")).response();
    client.send(get("/b")).response();
    assert_eq!(server.request_count(), 2);
    assert!(server.requests().is_empty());
}

#[test]
fn wait_for_returns_once_requests_arrive_or_time_runs_out() {
    let server = ok_server();
    assert!(!server.wait_for(1, Duration::from_millis(50)));
    let addr = server.addr();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(get("/late").as_bytes()).unwrap();
        stream.read_exact(&mut [0; 12]).unwrap();
    });
    assert!(server.wait_for(1, Duration::from_secs(5)));
    assert!(server.wait_for(0, Duration::ZERO));
    sender.join().unwrap();
}

#[test]
fn url_points_at_loopback() {
    let server = Server::start("0.0.0.0:0", |_| Reply::ok()).unwrap();
    let port = server.addr().port();
    assert_eq!(
        server.url("/hooks/qlm"),
        format!("http://127.0.0.1:{port}/hooks/qlm")
    );
}

#[test]
fn shutdown_does_not_hang_on_open_connections() {
    let delay = Duration::from_secs(30);
    let server = Server::start("127.0.0.1:0", move |request| {
        match request.target.as_str() {
            "/slow" => Reply::ok().with_delay(delay),
            _ => Reply::ok(),
        }
    })
    .unwrap();
    let addr = server.addr();
    let mut idle = Client::connect(&server);
    idle.send(get("/")).response();
    let mut slow = Client::connect(&server);
    slow.send(get("/slow"));
    assert!(server.wait_for(2, Duration::from_secs(5)));
    let started = Instant::now();
    server.shutdown();
    // Waiting on either connection would take ~30 s (the slow answer's delay, the idle
    // timeout): well under that, on a loaded machine too.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(idle.is_closed());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn dropping_the_server_stops_it() {
    let addr = {
        let server = ok_server();
        server.addr()
    };
    assert!(TcpStream::connect(addr).is_err());
}

/// Reads one response, reusing buffers, and returns its status.
fn read_response(reader: &mut impl BufRead, line: &mut Vec<u8>, body: &mut Vec<u8>) -> u16 {
    line.clear();
    reader.read_until(b'\n', line).unwrap();
    let status = std::str::from_utf8(&line[9..12]).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        reader.read_until(b'\n', line).unwrap();
        if line == b"\r\n" {
            break;
        }
        let text = std::str::from_utf8(line).unwrap();
        if let Some((name, value)) = text.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    body.resize(length, 0);
    reader.read_exact(body).unwrap();
    status
}

#[test]
#[ignore = "benchmark: cargo test --release --lib receiver -- --ignored --nocapture"]
fn sequential_keep_alive_throughput() {
    const REQUESTS: usize = 20_000;
    let server = Server::start_unrecorded("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let body = format!("{{\"license\":\"{}\"}}", "k".repeat(886));
    assert_eq!(body.len(), 900);
    let request = format!(
        "POST /hooks/bench HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         X-Keyhook-Signature: sha256={}\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr(),
        "0".repeat(64),
        body.len(),
    );
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(&stream);
    let (mut line, mut reply) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for _ in 0..REQUESTS {
        (&stream).write_all(request.as_bytes()).unwrap();
        assert_eq!(read_response(&mut reader, &mut line, &mut reply), 200);
    }
    let elapsed = started.elapsed();
    let rate = REQUESTS as f64 / elapsed.as_secs_f64();
    println!("receiver: {REQUESTS} sequential keep-alive POSTs in {elapsed:.2?}: {rate:.0} req/s");
    assert_eq!(
        (server.request_count(), server.connection_count()),
        (REQUESTS, 1)
    );
}
