use super::*;

fn head(raw: &str) -> Result<Option<Head>, Failure> {
    read_head(&mut raw.as_bytes(), &mut Vec::new())
}

fn body(raw: &str) -> Result<Vec<u8>, Failure> {
    let mut reader = raw.as_bytes();
    let mut line = Vec::new();
    let head = read_head(&mut reader, &mut line)?.expect("a head");
    read_body(&mut reader, &head.framing, &mut line)
}

#[test]
fn reads_a_request_head() {
    let raw = "\r\nPOST /hooks/qlm?a=1 HTTP/1.1\r\nHost: x\r\nX-Sig:  v 1 \r\nEmpty:\r\n\r\n";
    let head = head(raw).unwrap().unwrap();
    assert_eq!(
        (head.method.as_str(), head.target.as_str()),
        ("POST", "/hooks/qlm?a=1")
    );
    let names: Vec<_> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(names, [("Host", "x"), ("X-Sig", "v 1"), ("Empty", "")]);
    assert_eq!(head.framing, Framing::Empty);
    assert!(head.keep_alive && !head.http10 && !head.expects_continue);
}

#[test]
fn end_of_stream_between_requests_is_not_an_error() {
    assert!(matches!(head(""), Ok(None)));
    assert!(matches!(head("\r\n"), Ok(None)));
    assert!(matches!(
        head("GET / HTTP/1.1\r\nHost: x\r\n"),
        Err(Failure::Gone)
    ));
}

#[test]
fn connection_persistence_follows_version_and_header() {
    let cases = [
        ("HTTP/1.1", "", true),
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "Connection: Upgrade, CLOSE\r\n", false),
        ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: keep-alive\r\n", true),
    ];
    for (version, field, keep_alive) in cases {
        let head = head(&format!("GET / {version}\r\n{field}\r\n"))
            .unwrap()
            .unwrap();
        assert_eq!(head.keep_alive, keep_alive, "{version} {field:?}");
    }
}

#[test]
fn bodies_are_framed_by_length_or_chunks() {
    let cases = [
        ("Content-Length: 5\r\n\r\nhelloEXTRA", "hello"),
        ("Content-Length: 5, 5\r\n\r\nhello", "hello"),
        ("Content-Length: 0\r\n\r\n", ""),
        ("\r\nignored", ""),
        (
            "Transfer-Encoding: Chunked\r\n\r\n5;x=1\r\nhello\r\n6 \r\n world\r\n0\r\nT: 1\r\n\r\n",
            "hello world",
        ),
        (
            "Transfer-Encoding: chunked\r\n\r\nA\nabcdefghij\n0\n\n",
            "abcdefghij",
        ),
    ];
    for (rest, expected) in cases {
        let raw = format!("POST / HTTP/1.1\r\n{rest}");
        assert_eq!(body(&raw).unwrap(), expected.as_bytes(), "{rest:?}");
    }
}

#[test]
fn unacceptable_requests_are_rejected_with_a_status() {
    let long_name = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD));
    let cases = [
        ("GARBAGE\r\n\r\n", 400),
        ("GET /  HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1 extra\r\n\r\n", 400),
        ("G(T / HTTP/1.1\r\n\r\n", 400),
        ("GET / FTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\n\r\n", 505),
        ("GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nName : v\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            413,
        ),
        ("POST / HTTP/1.1\r\nContent-Length: 67108865\r\n\r\n", 413),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        ("POST / HTTP/1.1\r\nExpect: magic\r\n\r\n", 417),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000\r\n",
            413,
        ),
        (long_name.as_str(), 431),
        (long_target.as_str(), 414),
    ];
    for (raw, status) in cases {
        match body(raw) {
            Err(Failure::Reject(got, _)) => assert_eq!(got, status, "{raw:.60?}"),
            other => panic!("{raw:.60?} gave {other:?}"),
        }
    }
}

#[test]
fn expect_100_continue_is_noticed_for_http11_only() {
    let raw = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n";
    assert!(head(raw).unwrap().unwrap().expects_continue);
    let raw = raw.replace("HTTP/1.1", "HTTP/1.0");
    assert!(!head(&raw).unwrap().unwrap().expects_continue);
}

#[test]
fn truncated_bodies_mean_the_client_is_gone() {
    for rest in [
        "Content-Length: 5\r\n\r\nhel",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhel",
    ] {
        let raw = format!("POST / HTTP/1.1\r\n{rest}");
        assert_eq!(body(&raw), Err(Failure::Gone), "{rest:?}");
    }
}
