//! Every duration and count from a user (flags, TOML, environment) is checked: out of range is
//! a usage error (exit 2) that names where it came from, never a wrap that deletes history or
//! gives up on deliveries.

use crate::support::{Test, stderr, stdout};
use keyhook::receiver::{Reply, Server};

/// Far beyond any range, yet a valid u64 of seconds: `as i64` made it negative.
const HUGE: &str = "300000000000y";

/// One settled run of the task `all`, a year before the pinned clock.
fn settled(url: &str, extra_webhook: &str) -> Test {
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("all", "all", url, extra_webhook);
    test.simple_license(1, "2027-12-01T00:00:00");
    test
}

fn assert_usage_error(output: &std::process::Output, names: &str) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = format!("{}{}", stdout(output), stderr(output));
    assert!(text.contains(names), "names {names}: {text}");
    assert!(text.contains(HUGE), "names the value: {text}");
}

#[test]
fn prune_with_an_overflowing_age_deletes_nothing() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = settled(&server.url("/"), "");
    test.keyhook(["run-task", "all", "--now", "2025-11-23T10:00:00"])
        .assert()
        .success();
    let output = test
        .keyhook(["prune", "--older-than", HUGE])
        .output()
        .unwrap();
    assert_usage_error(&output, "--older-than");
    let log = stdout(&test.keyhook(["log", "--json"]).output().unwrap());
    assert_eq!(log.lines().count(), 1, "the settled run is still there");
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(!status.contains("never"), "{status}");
}

#[test]
fn log_since_and_verify_tolerance_refuse_overflowing_durations() {
    let test = settled("http://127.0.0.1:9/", "");
    let output = test.keyhook(["log", "--since", HUGE]).output().unwrap();
    assert_usage_error(&output, "--since");
    let output = test
        .keyhook([
            "verify",
            "--secret-env",
            "SECRET",
            "--tolerance",
            HUGE,
            "--headers",
            "h",
            "--body",
            "b",
        ])
        .env("SECRET", "s")
        .output()
        .unwrap();
    assert_usage_error(&output, "--tolerance");
}

#[test]
fn an_overflowing_give_up_after_in_a_task_is_a_configuration_error() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(503)).unwrap();
    let test = settled(&server.url("/"), &format!("give_up_after = \"{HUGE}\""));
    let output = test.keyhook(["check"]).output().unwrap();
    assert_usage_error(&output, "give_up_after");
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_usage_error(&output, "give_up_after");
    assert_eq!(server.request_count(), 0);
}

#[test]
fn overflowing_durations_in_keyhook_toml_and_first_run_since_are_named() {
    let test = settled("http://127.0.0.1:9/", "")
        .write("keyhook.toml", &format!("retry_interval = \"{HUGE}\"\n"));
    let output = test.keyhook(["check"]).output().unwrap();
    assert_usage_error(&output, "keyhook.toml: field `retry_interval`");
    let test = Test::new()
        .search("all", "1 = 1")
        .task("all", "all", "http://127.0.0.1:9/", "")
        .write(
            "tasks/all.toml",
            &format!(
                "name = \"all\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\
                 first_run_since = \"{HUGE}\"\n[webhook]\nurl = \"http://127.0.0.1:9/\"\n\
                 secret = \"s\"\n"
            ),
        );
    let output = test.keyhook(["check"]).output().unwrap();
    assert_usage_error(&output, "first_run_since");
    assert!(
        stdout(&output).contains("out of range"),
        "{}",
        stdout(&output)
    );
}

/// (Before, both ran on for hours: the count was taken as given.)
#[test]
fn counts_out_of_range_are_usage_errors() {
    let test = settled("http://127.0.0.1:9/", "");
    let huge = "18446744073709551615";
    let cases: [&[&str]; 2] = [
        &["next", "all", "-n", huge],
        &["db", "demo", "--licenses", huge, "--db", "fresh.db"],
    ];
    for args in cases {
        let output = test.keyhook(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(!test.path("fresh.db").exists(), "nothing written");
    }
}
