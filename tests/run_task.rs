//! `keyhook run-task` against a real receiver on 127.0.0.1: what arrives, and every failure path.

use std::sync::Arc;

use crate::support::gate::Gate;
use crate::support::ports::ClosedPort;
use crate::support::{self, Test, stdout};
use keyhook::receiver::{Reply, Server};

/// Three licenses expiring within 30 days of the pinned clock, one later, one without a date.
fn renewals(url: &str, extra_webhook: &str) -> Test {
    let test = Test::new()
        .search(
            "renewals",
            "SubscriptionExpiryDate > [today_start] And SubscriptionExpiryDate < [today_start+30]",
        )
        .task("renewals", "renewals", url, extra_webhook);
    test.simple_license(1, "2026-11-25T10:00:00")
        .simple_license(2, "2026-12-20T10:00:00")
        .simple_license(3, "2026-12-01T00:00:00")
        .simple_license(4, "2027-03-01T10:00:00")
        .license(&[("ID", rusqlite::types::Value::Integer(5))]);
    test
}

fn keys(server: &Server) -> Vec<String> {
    let mut keys: Vec<String> = server
        .requests()
        .iter()
        .map(|request| {
            let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            json["LicenseInfo"]["ActivationKey"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn each_match_is_posted_once_over_one_connection() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = renewals(&server.url("/hook"), "");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(keys(&server), ["KEY-1", "KEY-2", "KEY-3"]);
    assert_eq!(server.connection_count(), 1, "one keep-alive connection");
    let ids: std::collections::HashSet<String> = server
        .requests()
        .iter()
        .map(|r| r.header("X-Keyhook-Delivery").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "one delivery id per license");
    let text = stdout(&output);
    assert!(
        text.starts_with("renewals: 3 matched, 3 delivered, 0 failed in "),
        "{text}"
    );
    let body: serde_json::Value = serde_json::from_slice(&server.requests()[0].body).unwrap();
    assert_eq!(body["Name"], "renewals");
    assert_eq!(body["WebHookUserData"], "ud");
}

#[test]
fn the_task_can_be_named_by_its_name_too() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = renewals(&server.url("/"), "").write(
        "tasks/renewals.toml",
        &format!(
            "name = \"Upcoming Renewals\"\nsearch = \"renewals\"\nschedule = \"every 1 day\"\n\
                 [webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
            server.url("/")
        ),
    );
    test.keyhook(["run-task", "upcoming renewals"])
        .assert()
        .success();
    assert_eq!(server.request_count(), 3);
}

#[test]
fn a_500_is_a_failure_with_status_and_body_and_exit_1() {
    let server = Server::start("127.0.0.1:0", |request| {
        if request.body_text().contains("KEY-2") {
            Reply::status(500).with_body("database is on fire")
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = renewals(&server.url("/"), "");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "failed: license 2 (KEY-2): HTTP 500 Internal Server Error: database is on fire"
        ),
        "{text}"
    );
    assert!(text.contains("3 matched, 2 delivered, 1 failed"), "{text}");
}

/// A reader that goes away (`keyhook run-task ... | head -1`) does not hide the run's outcome:
/// the run finishes and exits 1 for its failure; a dry-run, which only prints, stops at the
/// close and exits 0.
#[test]
fn a_closed_pipe_keeps_a_runs_exit_code() {
    let server = Server::start("127.0.0.1:0", |request| {
        if request.body_text().contains("KEY-2") {
            Reply::status(500)
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = renewals(&server.url("/"), "");
    let exit_with_reader_gone = |args: &[&str]| {
        let mut child = test
            .process(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        child.wait().unwrap().code()
    };
    assert_eq!(exit_with_reader_gone(&["run-task", "renewals"]), Some(1));
    assert_eq!(server.request_count(), 3, "every match was sent");
    assert_eq!(exit_with_reader_gone(&["dry-run", "renewals"]), Some(0));
}

#[test]
fn connection_refused_is_a_failure() {
    let down = ClosedPort::new();
    let test = renewals(&down.url("/"), "");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("failed: license 1 (KEY-1): connection"),
        "{text}"
    );
    assert!(text.contains("3 matched, 0 delivered, 3 failed"), "{text}");
}

#[test]
fn a_receiver_that_never_answers_times_out() {
    // Every answer is held until keyhook has exited, so it can only have given up on its own:
    // no clock bound, which a busy machine could miss.
    let gate = Gate::new();
    let server = Server::start("127.0.0.1:0", {
        let gate = Arc::clone(&gate);
        move |_| {
            gate.hold();
            Reply::ok()
        }
    })
    .unwrap();
    let test = renewals(&server.url("/"), "timeout = \"300ms\"");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(gate.expired(), 0, "keyhook waited for an answer");
    gate.open();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert_eq!(text.matches("no answer within 300ms").count(), 3, "{text}");
    assert_eq!(gate.arrived(), 3, "each request was sent");
}

#[test]
fn a_proxy_in_the_environment_carries_plain_http() {
    // keyhook's own plain-HTTP client steps aside when a proxy is set: ureq opens a tunnel
    // through the proxy (CONNECT) to a host only the proxy could reach. This stand-in proxy
    // answers the CONNECT like any request, so what comes back is not asserted; that the
    // requests went to it is.
    let proxy = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = renewals("http://licenses.example.invalid/hook", "")
        .env("HTTP_PROXY", &proxy.url(""))
        .env("NO_PROXY", "");
    test.keyhook(["run-task", "renewals"]).output().unwrap();
    let seen: Vec<String> = proxy
        .requests()
        .iter()
        .map(|request| format!("{} {}", request.method, request.target))
        .collect();
    assert_eq!(seen[0], "CONNECT licenses.example.invalid:80", "{seen:?}");
    assert!(seen.contains(&"POST /hook".to_string()), "{seen:?}");
}

#[test]
fn redirects_are_not_followed_and_say_where_they_point() {
    let server = Server::start("127.0.0.1:0", |request| {
        if request.target == "/old" {
            Reply::status(301).with_header(
                "Location",
                "https://bob:hunter2@new.example.com/hook?api_token=tok3nvalue",
            )
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = renewals(&server.url("/old"), "");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "HTTP 301 Moved Permanently: redirected to https://bob:***@new.example.com/hook?api_token=***"
        ),
        "{text}"
    );
    // Masked as the task's url is, in the log too.
    let log = stdout(
        &test
            .keyhook(["log", "--json", "--attempts"])
            .output()
            .unwrap(),
    );
    assert!(
        !log.contains("hunter2") && !log.contains("tok3nvalue"),
        "{log}"
    );
    assert!(
        server.requests().iter().all(|r| r.target == "/old"),
        "not followed"
    );
}

#[test]
fn json_summary_lists_failures() {
    let server = Server::start("127.0.0.1:0", |request| {
        if request.body_text().contains("KEY-3") {
            Reply::status(422).with_body("unknown customer")
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = renewals(&server.url("/"), "");
    let output = test
        .keyhook(["run-task", "renewals", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["task"], "renewals");
    assert_eq!(
        (
            json["matched"].as_u64(),
            json["delivered"].as_u64(),
            json["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(json["failures"][0]["activation_key"], "KEY-3");
    assert_eq!(json["failures"][0]["status"], 422);
    assert!(json["elapsed"].as_f64().is_some());
    let _redacted = test.redacted().bind_to_scope();
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn a_disabled_webhook_sends_nothing_and_says_so() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = renewals(&server.url("/"), "enabled = false");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("webhook disabled ([webhook] enabled = false in"),
        "{text}"
    );
    assert!(text.contains("3 matched, 0 delivered, 0 failed"), "{text}");
    assert_eq!(server.request_count(), 0);

    let test = renewals(&server.url("/"), "").write("keyhook.toml", "webhooks_enabled = false\n");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert!(stdout(&output).contains("webhooks_enabled = false in keyhook.toml"));
    assert_eq!(server.request_count(), 0);
}

#[test]
fn configuration_errors_exit_2_and_send_nothing() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let url = server.url("/");
    let cases: [(Test, &str, &str); 4] = [
        (renewals(&url, ""), "nope", "no task is called `nope`"),
        (
            renewals(&url, "").write("tasks/renewals.toml", &format!(
                "name = \"r\"\nsearch = \"renewals\"\nschedule = \"every 1 day\"\n[webhook]\nurl = \"{url}\"\nsecret_env = \"KEYHOOK_TEST_UNSET_SECRET\"\n"
            )),
            "renewals",
            "environment variable KEYHOOK_TEST_UNSET_SECRET (secret_env) is not set",
        ),
        (
            renewals(&url, "").search("renewals", "Email = [tomorrow]"),
            "renewals",
            "unknown placeholder `[tomorrow]` at line 2, column 16",
        ),
        (
            renewals(&url, "").search("renewals", "NoSuchColumn = 1"),
            "renewals",
            "no such column: NoSuchColumn",
        ),
    ];
    for (test, task, expected) in cases {
        let output = test.keyhook(["run-task", task]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{expected}");
        let error = support::stderr(&output);
        assert!(error.contains(expected), "{expected}: {error}");
    }
    assert_eq!(server.request_count(), 0);
}

/// A 2xx whose head is large (a receiver behind a proxy that adds a big cookie) is delivered,
/// by keyhook's own client and by ureq (which carries https:// URLs) alike.
#[test]
fn a_2xx_with_a_head_over_64_kib_is_delivered_by_either_client() {
    for default_transport in [false, true] {
        let big = "a".repeat(100 * 1024);
        let server = Server::start("127.0.0.1:0", move |_| {
            Reply::ok().with_header("X-Big", &big)
        })
        .unwrap();
        let test = renewals(&server.url("/hook"), "");
        let mut command = test.keyhook(["run-task", "renewals"]);
        if default_transport {
            command.env("KEYHOOK_BENCH_DEFAULT_TRANSPORT", "1");
        }
        let output = command.output().unwrap();
        let text = stdout(&output);
        assert!(
            text.starts_with("renewals: 3 matched, 3 delivered, 0 failed in "),
            "ureq: {default_transport}: {text}"
        );
    }
}

/// `--json` says a 410 Gone as the text does: in `warnings`, and on stderr.
#[test]
fn a_410_is_a_warning_in_the_json_summary_too() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(410)).unwrap();
    let test = renewals(&server.url("/gone"), "");
    let output = test
        .keyhook(["run-task", "renewals", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("answered 410 Gone") && warnings.contains("keyhook enable renewals"),
        "{report}"
    );
    assert!(
        support::stderr(&output).contains("answered 410 Gone"),
        "{output:?}"
    );
}
