//! What a receiver's answer comes to, over keyhook's own plain-HTTP client and over ureq
//! (`https://`): heads with many fields, long or non-ASCII `Location`s, hang-ups, and a
//! receiver that reads a request and closes without answering.

use crate::support::pki::Ca;
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
