//! Retries happen at their due time, in `retry` or `run-due`: a run sends each delivery once,
//! its summary counts deliveries, and no retry leaves before its wait (less the jitter).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::{Test, stdout};
use keyhook::receiver::{Reply, Server};

/// `count` licenses that all match, and a task posting them to `url`.
fn many(count: i64, url: &str, extra_webhook: &str) -> Test {
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("all", "all", url, extra_webhook);
    for id in 1..=count {
        test.simple_license(id, "2027-01-01T00:00:00");
    }
    test
}

/// `keyhook <args>` on the real clock (no `KEYHOOK_NOW`).
fn real_time<const N: usize>(test: &Test, args: [&str; N]) -> std::process::Output {
    test.process(args)
        .env_remove("KEYHOOK_NOW")
        .output()
        .unwrap()
}

/// Calls `keyhook retry` on the real clock until the server has `n` requests, or for at most
/// 30 s: far beyond the waits tested, as a busy machine may take a second per call.
fn retry_until(test: &Test, server: &Server, n: usize) {
    let started = Instant::now();
    while server.request_count() < n && started.elapsed() < Duration::from_secs(30) {
        real_time(test, ["retry"]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the current second is more than `fraction` through, so that a whole-second
/// truncation of "now" would show as a wait cut short.
fn late_in_a_second(fraction: f64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        if f64::from(now.subsec_millis()) / 1000.0 > fraction {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_run_sends_each_delivery_once_and_counts_deliveries() {
    let server = Server::start("127.0.0.1:0", |_| {
        Reply::status(500).with_delay(Duration::from_millis(300))
    })
    .unwrap();
    let test = many(5, &server.url("/"), "retry_schedule = [\"1s\"]");
    let output = real_time(&test, ["run-task", "all"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(server.request_count(), 5, "one request per delivery");
    let text = stdout(&output);
    assert!(text.contains("5 matched, 0 delivered, 5 failed"), "{text}");
    assert!(
        text.contains("5 failed deliveries will be retried"),
        "{text}"
    );
    // Every wait is 1 s (±10%), rounded up to a whole second.
    std::thread::sleep(Duration::from_millis(2300));
    let output = real_time(&test, ["retry"]);
    assert!(
        stdout(&output).contains("all: retried 5, 0 delivered, 5 failed"),
        "what was said to be retried is what retry sends: {}",
        stdout(&output)
    );
    assert_eq!(server.request_count(), 10);
}

#[test]
fn the_json_summary_counts_deliveries_not_attempts() {
    let server = Server::start("127.0.0.1:0", |request| {
        if request.body_text().contains("KEY-1") {
            Reply::ok().with_delay(Duration::from_millis(300))
        } else {
            Reply::status(503).with_delay(Duration::from_millis(300))
        }
    })
    .unwrap();
    let test = many(4, &server.url("/"), "retry_schedule = [\"1s\"]");
    let output = real_time(&test, ["run-task", "all", "--json"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["matched"], 4, "{json}");
    assert_eq!(json["delivered"], 1, "{json}");
    assert_eq!(json["failed"], 3, "{json}");
    assert_eq!(json["failures"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(server.request_count(), 4);
}

#[test]
fn a_retry_never_leaves_before_its_wait_less_the_jitter() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = many(1, &server.url("/"), "retry_schedule = [\"2s\"]");
    late_in_a_second(0.5);
    let output = real_time(&test, ["run-task", "all"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    retry_until(&test, &server, 2);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "the retry went out");
    let waited = requests[1]
        .received_at
        .duration_since(requests[0].received_at)
        .unwrap();
    assert!(
        waited >= Duration::from_millis(1800),
        "a 2s wait (±10%) left after {waited:?}"
    );
}
