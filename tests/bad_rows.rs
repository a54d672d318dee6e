//! A license row that cannot be read (text in an integer column, a blob, an unknown license
//! model, invalid UTF-8, an impossible date) holds back no other: the rest are delivered, each
//! bad row is recorded and named, and the run exits 4.

use crate::support::{Test, stderr, stdout};
use keyhook::receiver::{Reply, Server};

/// The bad rows, by key: (key, the column named in the error).
const BAD: [(&str, &str); 5] = [
    ("BAD-TEXT", "Duration"),
    ("BAD-BLOB", "Email"),
    ("BAD-MODEL", "LicenseModel"),
    ("BAD-UTF8", "FullName"),
    ("BAD-DATE", "ExpiryDate"),
];

/// Two good licenses and the five bad rows of [`BAD`], all matched by the task `all`.
fn licenses(url: &str) -> Test {
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("all", "all", url, "");
    test.simple_license(1, "2027-01-01T00:00:00")
        .simple_license(2, "2027-01-01T00:00:00");
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, Duration)
             VALUES (3, 'BAD-TEXT', '2027-01-01', 'thirty');
         INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, Email)
             VALUES (4, 'BAD-BLOB', '2027-01-01', x'00ff');
         INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, LicenseModel)
             VALUES (5, 'BAD-MODEL', '2027-01-01', 'lifetime');
         INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, FullName)
             VALUES (6, 'BAD-UTF8', '2027-01-01', CAST(x'41ff42' AS TEXT));
         INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, ExpiryDate)
             VALUES (7, 'BAD-DATE', '2027-01-01', '2026-02-30');",
    )
    .unwrap();
    test
}

/// Every bad row is named by key and column, and the task's secret appears nowhere.
fn assert_names_every_bad_row(text: &str) {
    assert!(!text.contains("test-secret"), "the secret leaked: {text}");
    for (key, column) in BAD {
        assert!(
            text.lines()
                .any(|line| line.contains(key) && line.contains(column)),
            "{key} ({column}) is named in:\n{text}"
        );
    }
}

#[test]
fn bad_rows_hold_back_no_other_and_exit_4() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = licenses(&server.url("/"));
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert_eq!(
        server.request_count(),
        2,
        "the good licenses were delivered"
    );
    let text = stdout(&output);
    assert!(
        text.contains("all: 7 matched, 2 delivered, 0 failed, 5 bad rows in"),
        "{text}"
    );
    assert_names_every_bad_row(&text);
    let log = test.keyhook(["log", "--status", "bad"]).output().unwrap();
    assert!(log.status.success(), "{log:?}");
    assert_names_every_bad_row(&stdout(&log));
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(status.contains("Bad rows"), "{status}");
    let row = status.lines().find(|line| line.contains("all")).unwrap();
    let cells: Vec<&str> = row.split(['│', '┆']).map(str::trim).collect();
    assert_eq!(cells[3..9], ["7", "2", "0", "0", "0", "5"], "{status}");
}

#[test]
fn the_json_summary_and_log_list_bad_rows_and_add_up() {
    let server = Server::start("127.0.0.1:0", |request| {
        if request.body_text().contains("KEY-1") {
            Reply::ok()
        } else {
            Reply::status(500)
        }
    })
    .unwrap();
    let test = licenses(&server.url("/"));
    let output = test
        .keyhook(["run-task", "all", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "bad rows outrank failures");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let count = |field: &str| json[field].as_u64().unwrap();
    assert_eq!(count("matched"), 7, "{json}");
    assert_eq!(count("bad_rows"), 5, "{json}");
    assert_eq!(
        count("delivered") + count("failed") + count("bad_rows") + count("not_sent"),
        count("matched"),
        "{json}"
    );
    let keys: Vec<&str> = json["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bad| bad["activation_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 5, "{json}");
    let log = stdout(&test.keyhook(["log", "--json"]).output().unwrap());
    let bad: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|entry: &serde_json::Value| entry["status"] == "bad")
        .collect();
    assert_eq!(bad.len(), 5, "{log}");
    assert!(
        bad.iter().any(|entry| entry["license_id"] == 5
            && entry["error"].as_str().unwrap().contains("lifetime"))
    );
}

#[test]
fn check_lists_every_bad_row_the_search_reaches() {
    let test = licenses("http://127.0.0.1:9/");
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = stdout(&output);
    assert_names_every_bad_row(&text);
    assert!(text.contains("tasks/all.toml"), "{text}");
    assert!(
        !text.contains("KEY-1"),
        "good rows are not problems: {text}"
    );
}

#[test]
fn dry_run_shows_bad_rows_rather_than_failing() {
    let test = licenses("http://127.0.0.1:9/");
    let output = test.keyhook(["dry-run", "all"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains("KEY-1") && text.contains("KEY-2"), "{text}");
    assert_names_every_bad_row(&text);
    let json = test.keyhook(["dry-run", "all", "--json"]).output().unwrap();
    assert!(json.status.success(), "{json:?}");
    assert_eq!(stdout(&json).lines().count(), 2, "good rows on stdout");
    assert_names_every_bad_row(&stderr(&json));
}

#[test]
fn run_due_delivers_the_rest_and_exits_4() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = licenses(&server.url("/"));
    // The task was first seen yesterday, so today's slot (00:00) is due now.
    test.keyhook(["run-due", "--now", "2026-11-22T10:00:00"])
        .assert()
        .success();
    let output = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert_eq!(server.request_count(), 2);
    assert_names_every_bad_row(&stdout(&output));
}

/// A bad value is quoted with its control characters escaped, wherever it is said: a value
/// that holds `ESC [2J` must not clear the screen of whoever reads `dry-run`, the run's
/// summary, `log --status bad` or cron's mail.
#[test]
fn a_bad_value_is_quoted_with_its_control_characters_escaped() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("all", "all", &server.url("/"), "");
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, Duration)
             VALUES (1, 'K1', '2027-01-01', '9' || char(27) || '[2J');
         INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, ExpiryDate)
             VALUES (2, 'K2', '2027-01-01', '2026-02-30' || char(13) || 'hidden');
         INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate, LicenseModel)
             VALUES (3, 'K3', '2027-01-01', 'x' || char(7));",
    )
    .unwrap();
    let dry = test.keyhook(["dry-run", "all"]).output().unwrap();
    let run = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(run.status.code(), Some(4), "{run:?}");
    let log = test.keyhook(["log", "--status", "bad"]).output().unwrap();
    for output in [&dry, &run, &log] {
        let text = format!("{}{}", stdout(output), stderr(output));
        for said in [
            "Duration holds `9\\u{1b}[2J`",
            "ExpiryDate holds `2026-02-30\\rhidden`",
            "LicenseModel holds `x\\u{7}`",
        ] {
            assert!(text.contains(said), "{said:?} in {text}");
        }
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\r']),
            "a raw control character in {text:?}"
        );
    }
}
