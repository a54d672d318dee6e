//! `keyhook dry-run`, `list` and `check` against real SQLite files.

use crate::support::{self, Test, stderr, stdout, text};
use rusqlite::types::Value;

fn renewals() -> Test {
    let test = Test::new().write(
        "searches/upcoming-renewals.toml",
        "name = \"Upcoming Renewals\"\n\
         description = \"Subscriptions that expire in the next 30 days.\"\n\
         sql = \"SubscriptionExpiryDate > [today_start] And SubscriptionExpiryDate < [today_start+30]\"\n",
    );
    for (id, name, expiry) in [
        (1, "José Álvarez", "2026-11-25T10:00:00"),
        (2, "Zoë Müller", "2026-12-20T23:00:00"),
        (3, "Mei Chen 陈美", "2027-01-10T10:00:00"),
        (4, "Ólafur Þórsson", "2026-11-22T10:00:00"),
    ] {
        test.license(&[
            ("ID", Value::Integer(id)),
            ("ActivationKey", text(&format!("KEY-{id}"))),
            ("FullName", text(name)),
            ("Email", text(&format!("user{id}@example.com"))),
            ("ProductName", text("Orion Studio")),
            ("SubscriptionExpiryDate", text(expiry)),
            ("ExpiryDate", text(expiry)),
            ("LicenseModel", text("subscription")),
        ]);
    }
    test
}

#[test]
fn table_preview_is_pinned() {
    let output = renewals()
        .keyhook(["dry-run", "upcoming-renewals"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn search_by_name_count_limit_and_json() {
    let test = renewals();
    let count = test
        .keyhook(["dry-run", "Upcoming Renewals", "--count"])
        .output()
        .unwrap();
    assert_eq!(stdout(&count), "2\n");

    let limited = test
        .keyhook(["dry-run", "upcoming-renewals", "--limit", "1"])
        .output()
        .unwrap();
    let text = stdout(&limited);
    assert!(text.contains("2 licenses match (showing 1)."), "{text}");
    assert_eq!(text.matches("KEY-").count(), 1);

    let json = test
        .keyhook(["dry-run", "upcoming-renewals", "--json"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = stdout(&json)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["ActivationKey"], "KEY-1");
    assert_eq!(lines[0]["FullName"], "José Álvarez");
    assert_eq!(lines[0]["LicenseModel"], 3);
    assert_eq!(lines[1]["ActivationKey"], "KEY-2");

    let one = test
        .keyhook(["dry-run", "upcoming-renewals", "--json", "--limit", "1"])
        .output()
        .unwrap();
    assert_eq!(stdout(&one).lines().count(), 1);
}

#[test]
fn the_clock_and_zone_decide_today() {
    let test = renewals();
    // At 2026-12-19 the 30-day window holds only license 2 and 3 (3 expires 2027-01-10).
    let count = test
        .keyhook([
            "dry-run",
            "upcoming-renewals",
            "--count",
            "--now",
            "2026-12-19T12:00:00",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&count), "2\n");
    // 2026-11-24T23:30 in UTC is already the 25th in Tokyo: license 1 (25th 10:00) still matches,
    // but [today_start] has moved past license 4 either way.
    let count = test
        .keyhook([
            "dry-run",
            "upcoming-renewals",
            "--count",
            "--now",
            "2026-11-25T23:30:00Z",
            "--timezone",
            "Asia/Tokyo",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&count), "1\n");
}

#[test]
fn nothing_is_written_to_the_license_database() {
    let test = renewals();
    let before = std::fs::read(test.path("licenses.db")).unwrap();
    test.keyhook(["dry-run", "upcoming-renewals"])
        .assert()
        .success();
    test.keyhook(["dry-run", "upcoming-renewals", "--json"])
        .assert()
        .success();
    assert_eq!(std::fs::read(test.path("licenses.db")).unwrap(), before);
}

#[test]
fn errors_name_the_file_and_what_is_wrong() {
    let cases: [(Test, &str, &str); 6] = [
        (
            renewals().write("searches/bad.toml", "name = \"Bad\"\nsql = \"x = 1\n"),
            "bad",
            "searches/bad.toml: invalid TOML",
        ),
        (
            renewals().write("searches/bad.toml", "name = \"Bad\"\nsql = \"x\"\nsq = 1\n"),
            "bad",
            "unknown field `sq`",
        ),
        (renewals(), "nope", "no search or task is called `nope`"),
        (
            renewals().search("bad", "ExpiryDate < [today_strat+1]"),
            "bad",
            "searches/bad.toml: field `sql`: unknown placeholder `[today_strat+1]` at line 2, column 21",
        ),
        (
            renewals().search("bad", "ID IN (SELECT 1 FROM sqlite_master)"),
            "bad",
            "search `bad` (searches/bad.toml): refused: the search reads table sqlite_master",
        ),
        (
            renewals().search("bad", "Colour = 'red'"),
            "bad",
            "search `bad` (searches/bad.toml): SQLite rejected the search: no such column: Colour",
        ),
    ];
    for (test, name, expected) in cases {
        let output = test.keyhook(["dry-run", name]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{expected}: {output:?}");
        assert!(
            stderr(&output).contains(expected),
            "{expected}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_missing_database_says_how_to_make_one() {
    let test = renewals();
    let output = test
        .keyhook(["dry-run", "upcoming-renewals", "--db", "elsewhere.db"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("elsewhere.db does not exist (create one with `keyhook db init`")
    );
}

#[test]
fn check_reports_every_problem_and_exits_2() {
    let test = renewals()
        .search("typo", "ExpiryDate > [yesterday_strat]")
        .search("other-table", "ID IN (SELECT 1 FROM sqlite_master)")
        .write("tasks/orphan.toml", "name = \"Orphan\"\nsearch = \"missing\"\nschedule = \"every 1 day\"\n[webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\n")
        .write("tasks/broken.toml", "name = \"Broken\"\n[webhook\n");
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    for expected in [
        "error: searches/other-table.toml: field `sql`: refused: the search reads table sqlite_master",
        "error: searches/typo.toml: field `sql`: unknown placeholder `[yesterday_strat]`",
        "error: tasks/broken.toml: invalid TOML",
        "error: tasks/orphan.toml: field `search`: no search is called `missing`",
        "4 problem(s) found",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    let valid = renewals().keyhook(["check"]).output().unwrap();
    assert!(valid.status.success(), "{valid:?}");
    assert_eq!(stdout(&valid), "ok: 1 searches and 0 tasks are valid\n");
}

#[test]
fn list_shows_searches_and_tasks() {
    let test = renewals().task("renewals", "upcoming-renewals", "http://127.0.0.1:9/", "");
    let output = test.keyhook(["list"]).output().unwrap();
    let text = stdout(&output);
    assert!(text.contains("upcoming-renewals"), "{text}");
    assert!(
        text.contains("Subscriptions that expire in the next 30 days."),
        "{text}"
    );
    assert!(text.contains("every day at 00:00"), "{text}");
    assert!(text.contains("never ran"), "{text}");
    assert!(text.contains("next 2026-11-24 00:00 UTC"), "{text}");
    assert!(text.contains("search: upcoming-renewals"), "{text}");
}

#[test]
fn the_example_definitions_match_the_demo_database_on_any_day() {
    let repo = support::repo();
    for now in [
        "2026-11-23T10:00:00",
        "2028-02-29T00:30:00",
        "2026-12-31T23:59:00",
        "2027-03-01T08:00:00",
    ] {
        let test = Test::new();
        test.keyhook(["db", "demo", "--force", "--now", now])
            .assert()
            .success();
        for search in [
            "upcoming-renewals",
            "expired-yesterday",
            "trials-ending-soon",
            "maintenance-due-this-month",
            "new-orders-yesterday",
        ] {
            let output = test
                .keyhook(["dry-run", search, "--count", "--now", now])
                .env("KEYHOOK_CONFIG", repo)
                .output()
                .unwrap();
            assert!(output.status.success(), "{search}: {}", stderr(&output));
            let count: u64 = stdout(&output).trim().parse().unwrap();
            assert!(count > 0, "{search} matches nothing on {now}");
        }
    }
}
