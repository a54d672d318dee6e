//! `run-due` at a sequence of pinned times against a real receiver: exactly the expected
//! deliveries arrive. Also `[date]`, `set-last-run`, `next` and `list`.

use crate::support::{Test, marked_run, stderr, stdout, text};
use keyhook::receiver::{Reply, Server};
use rusqlite::types::Value;

/// A task whose search matches exactly the license with `key`, sending `user_data`.
fn task(test: Test, stem: &str, schedule: &str, extra: &str, url: &str) -> Test {
    let test = test.search(stem, &format!("ActivationKey = '{stem}'"));
    test.license(&[("ActivationKey", text(stem))]);
    test.write(
        &format!("tasks/{stem}.toml"),
        &format!(
            "name = \"{stem}\"\nsearch = \"{stem}\"\nschedule = \"{schedule}\"\n{extra}\n\
             [webhook]\nurl = \"{url}\"\nsecret = \"s\"\nuser_data = \"{stem}\"\n"
        ),
    )
}

fn run_due(test: &Test, now: &str) -> std::process::Output {
    test.keyhook(["run-due", "--now", now]).output().unwrap()
}

fn received(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|request| {
            let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
            json["WebHookUserData"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn run_due_at_a_sequence_of_times_sends_exactly_what_is_due() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let url = server.url("/");
    let test = task(Test::new(), "daily", "every 1 day", "at = \"08:00\"", &url);
    let test = task(test, "weekdays", "0 9 * * MON-FRI", "", &url);
    let test = task(test, "sixhourly", "every 6 hours", "", &url);
    let test = task(test, "off", "* * * * *", "enabled = false", &url);

    // (now, what arrives at that call) — 2026-11-23 is a Monday.
    let steps: [(&str, &[&str]); 9] = [
        ("2026-11-23T07:00:00", &[]), // first seen: no slot before this fires
        ("2026-11-23T08:00:30", &["daily"]),
        ("2026-11-23T08:01:00", &[]),
        ("2026-11-23T09:00:10", &["weekdays"]),
        ("2026-11-23T12:00:05", &["sixhourly"]),
        ("2026-11-23T12:30:00", &[]),
        // Off for three days: each task runs once for its latest slot, not once per missed one.
        ("2026-11-26T10:00:00", &["daily", "sixhourly", "weekdays"]),
        ("2026-11-26T10:01:00", &[]),
        // Off again until Saturday night: the weekday slot (Fri 09:00) is older than its
        // one-day window and is skipped; the others are within theirs.
        ("2026-11-28T23:00:00", &["daily", "sixhourly"]),
    ];
    let mut expected_total = 0;
    for (now, expected) in steps {
        let before = server.request_count();
        let output = run_due(&test, now);
        assert!(
            output.status.success(),
            "{now}: {}{}",
            stdout(&output),
            stderr(&output)
        );
        let mut got: Vec<String> = received(&server)[before..].to_vec();
        got.sort();
        assert_eq!(got, expected, "at {now}: {}", stdout(&output));
        expected_total += expected.len();
        if now == "2026-11-28T23:00:00" {
            assert!(
                stdout(&output).contains("weekdays: skipped the slot at 2026-11-27 09:00:00"),
                "{}",
                stdout(&output)
            );
        }
    }
    assert_eq!(server.request_count(), expected_total);
    // The skip is logged once, not at every call.
    let again = run_due(&test, "2026-11-28T23:01:00");
    assert_eq!(stdout(&again), "");
}

#[test]
fn a_new_task_waits_for_its_first_slot_and_run_task_respects_the_slot() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = task(Test::new(), "hourly", "@hourly", "", &server.url("/"));
    // First seen at 10:20: the 10:00 slot came before it.
    assert_eq!(stdout(&run_due(&test, "2026-11-23T10:20:00")), "");
    assert_eq!(server.request_count(), 0);
    // By hand, run-task claims the current slot; a second run-task for it does nothing.
    test.keyhook(["run-task", "hourly", "--now", "2026-11-23T10:30:00"])
        .assert()
        .success();
    let again = test
        .keyhook(["run-task", "hourly", "--now", "2026-11-23T10:40:00"])
        .output()
        .unwrap();
    assert!(
        stdout(&again).contains("already ran for its slot at 2026-11-23 10:00:00"),
        "{}",
        stdout(&again)
    );
    assert_eq!(run_due(&test, "2026-11-23T10:50:00").stdout, b"");
    assert_eq!(server.request_count(), 1);
    test.keyhook([
        "run-task",
        "hourly",
        "--force",
        "--now",
        "2026-11-23T10:55:00",
    ])
    .assert()
    .success();
    assert_eq!(server.request_count(), 2);
    run_due(&test, "2026-11-23T11:00:01");
    assert_eq!(server.request_count(), 3);
}

#[test]
fn date_placeholder_is_the_previous_run_and_set_last_run_moves_it() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new().search("new-orders", "OrderDate > [date]").task(
        "new-orders",
        "new-orders",
        &server.url("/"),
        "",
    );
    for (id, order) in [
        (1, "2026-11-20T12:00:00"),
        (2, "2026-11-23T09:00:00"),
        (3, "2026-11-23T11:00:00"),
    ] {
        test.license(&[
            ("ID", Value::Integer(id)),
            ("ActivationKey", text(&format!("K{id}"))),
            ("OrderDate", text(order)),
        ]);
    }
    // First run: [date] is when the task was first seen (now), so nothing old is sent.
    let preview = test
        .keyhook(["dry-run", "new-orders", "--now", "2026-11-23T10:00:00"])
        .output()
        .unwrap();
    assert!(
        stdout(&preview).contains("[date] = 2026-11-23T10:00:00"),
        "{}",
        stdout(&preview)
    );
    let first = test
        .keyhook(["run-task", "new-orders", "--now", "2026-11-23T10:00:00"])
        .output()
        .unwrap();
    assert!(stdout(&first).contains("1 matched"), "{}", stdout(&first));
    // Rewind "last ran" to before every order: the next run sends them all.
    test.keyhook(["set-last-run", "new-orders", "2026-11-01T00:00:00"])
        .assert()
        .success();
    let preview = test
        .keyhook(["dry-run", "new-orders", "--count"])
        .output()
        .unwrap();
    assert_eq!(stdout(&preview), "3\n");
    let second = test
        .keyhook([
            "run-task",
            "new-orders",
            "--force",
            "--now",
            "2026-11-23T12:00:00",
        ])
        .output()
        .unwrap();
    assert!(stdout(&second).contains("3 matched"), "{}", stdout(&second));
    // And the run after that counts from the second run's start.
    let preview = test
        .keyhook(["dry-run", "new-orders", "--now", "2026-11-24T12:00:00"])
        .output()
        .unwrap();
    assert!(
        stdout(&preview).contains("[date] = 2026-11-23T12:00:00"),
        "{}",
        stdout(&preview)
    );
}

#[test]
fn first_run_since_sets_the_first_date() {
    let test = Test::new()
        .search("new-orders", "OrderDate > [date]")
        .task("new-orders", "new-orders", "http://127.0.0.1:9/", "")
        .write(
            "tasks/new-orders.toml",
            "name = \"n\"\nsearch = \"new-orders\"\nschedule = \"every 1 day\"\nfirst_run_since = \"7d\"\n\
             [webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\n",
        );
    let preview = test.keyhook(["dry-run", "new-orders"]).output().unwrap();
    assert!(
        stdout(&preview).contains("[date] = 2026-11-16T10:00:00"),
        "{}",
        stdout(&preview)
    );
    // A time later than now would make the first [date] a future one.
    let test = test.write(
        "tasks/new-orders.toml",
        "name = \"n\"\nsearch = \"new-orders\"\nschedule = \"every 1 day\"\n\
         first_run_since = \"2030-01-01\"\n[webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\n",
    );
    for args in [
        &["check"][..],
        &["run-task", "new-orders"],
        &["dry-run", "new-orders"],
    ] {
        let output = test.keyhook(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            text.contains("tasks/new-orders.toml: field `first_run_since`: 2030-01-01T00:00:00 is later than now"),
            "{args:?}: {text}"
        );
    }
    // Only a first run takes it: once the task has run, check, the run and its preview agree
    // that it is fine.
    test.keyhook(["set-last-run", "new-orders", "2026-11-20T00:00:00"])
        .assert()
        .success();
    for args in [
        &["check"][..],
        &["run-task", "new-orders"],
        &["dry-run", "new-orders"],
    ] {
        let output = test.keyhook(args).output().unwrap();
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!text.contains("first_run_since"), "{args:?}: {text}");
    }
}

#[test]
fn next_shows_run_times_with_zone_and_offset() {
    let test = task(
        Test::new(),
        "daily",
        "every 1 day",
        "at = \"02:30\"\ntimezone = \"Europe/Berlin\"",
        "http://127.0.0.1:9/",
    );
    let output = test
        .keyhook(["next", "daily", "-n", "3", "--now", "2026-03-27T12:00:00Z"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    // 2026-03-29 02:30 does not exist in Berlin: it runs right after the jump, at 03:00 CEST.
    for line in [
        "2026-03-28 02:30:00 +01:00",
        "2026-03-29 03:00:00 +02:00",
        "2026-03-30 02:30:00 +02:00",
    ] {
        assert!(text.contains(line), "{line}:\n{text}");
    }
    insta::assert_snapshot!(text);
    let list = test
        .keyhook(["list", "--now", "2026-03-27T12:00:00Z"])
        .output()
        .unwrap();
    assert!(
        stdout(&list).contains("next 2026-03-28 02:30 CET"),
        "{}",
        stdout(&list)
    );
}

#[test]
fn check_names_the_task_file_with_a_bad_schedule_or_zone() {
    let test = Test::new()
        .search("s", "1 = 1")
        .write("tasks/bad-schedule.toml", "name = \"a\"\nsearch = \"s\"\nschedule = \"every 3 fortnights\"\n[webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\n")
        .write("tasks/bad-zone.toml", "name = \"b\"\nsearch = \"s\"\nschedule = \"@daily\"\ntimezone = \"Mars/Olympus\"\n[webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\n");
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(
        text.contains("error: tasks/bad-schedule.toml: field `schedule`: `every 3 fortnights`"),
        "{text}"
    );
    assert!(
        text.contains("error: tasks/bad-zone.toml: field `timezone`: `Mars/Olympus`"),
        "{text}"
    );
    // run-due reports them too, and runs the valid ones regardless.
    let output = run_due(&test, "2026-11-23T10:00:00");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn check_warns_about_an_every_schedule_that_does_not_divide_a_day() {
    let url = "http://127.0.0.1:9/";
    let test = task(Test::new(), "seven", "every 7 minutes", "", url);
    let test = task(test, "half", "every 30 minutes", "", url);
    let test = task(test, "two-days", "every 48 hours", "", url);
    let test = task(
        test,
        "anchored",
        "every 5 hours",
        "start = \"2026-11-01T08:00\"",
        url,
    );
    let output = test.keyhook(["check"]).output().unwrap();
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "a warning only: {out}");
    assert!(
        out.contains("tasks/seven.toml: field `schedule`: `every 7 minutes` does not divide a day"),
        "{out}"
    );
    assert!(!out.contains("half.toml: field `schedule`"), "{out}");
    assert!(!out.contains("two-days.toml: field `schedule`"), "{out}");
    assert!(!out.contains("anchored.toml: field `schedule`"), "{out}");
}

#[test]
fn a_run_left_unfinished_by_a_kill_is_said_once_then_its_slot_is_done() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = task(Test::new(), "hourly", "@hourly", "", &server.url("/"));
    assert_eq!(stdout(&run_due(&test, "2026-11-23T09:20:00")), "");
    assert!(run_due(&test, "2026-11-23T10:00:30").status.success());
    assert_eq!(server.request_count(), 1);
    // What a kill after the record phase leaves: the 10:00 run recorded, never finished, and
    // the task's last slot still the one before.
    let conn = rusqlite::Connection::open(test.path("keyhook-state.db")).unwrap();
    conn.execute_batch(
        "UPDATE runs SET finished_at = NULL WHERE task = 'hourly';
         UPDATE tasks SET last_slot = NULL, last_run = NULL WHERE task = 'hourly';",
    )
    .unwrap();
    drop(conn);
    let first = run_due(&test, "2026-11-23T10:05:00");
    assert!(first.status.success(), "{first:?}");
    assert!(
        stdout(&first).contains(
            "its run for the slot at 2026-11-23 10:00:00 UTC was stopped before it finished"
        ),
        "{}",
        stdout(&first)
    );
    // Said once: the slot is done now, and the next calls before 11:00 have nothing to say.
    for now in ["2026-11-23T10:06:00", "2026-11-23T10:30:00"] {
        assert_eq!(stdout(&run_due(&test, now)), "", "{now}");
    }
    assert_eq!(server.request_count(), 1, "nothing sent twice");
    assert!(run_due(&test, "2026-11-23T11:00:10").status.success());
    assert_eq!(server.request_count(), 2, "the next slot runs");
}

#[test]
fn a_missed_slot_whose_run_was_killed_while_recording_is_skipped_and_said_so() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = task(
        Test::new(),
        "weekdays",
        "0 9 * * MON-FRI",
        "",
        &server.url("/"),
    );
    assert!(run_due(&test, "2026-11-23T07:00:00").status.success());
    // Friday 09:00's run was killed while it was recorded: its pieces are in the file, the run
    // still marked, holding the slot's key.
    let friday = 1_795_770_000;
    let state = test.path("keyhook-state.db");
    marked_run(&state, "weekdays", Some(friday), friday, "weekdays");
    // Saturday night: Friday's slot is older than its one-day window and is skipped, the
    // skip recorded in the killed run's place.
    let output = run_due(&test, "2026-11-28T23:00:00");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("weekdays: skipped the slot at 2026-11-27 09:00:00"),
        "{}",
        stdout(&output)
    );
    let conn = rusqlite::Connection::open(&state).unwrap();
    let (skipped, marked): (Option<String>, Option<i64>) = conn
        .query_row(
            &format!("SELECT skipped, recording FROM runs WHERE slot = {friday}"),
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert!(skipped.is_some_and(|why| why.contains("catch-up")));
    assert_eq!(marked, None);
    let deliveries: i64 = conn
        .query_row("SELECT count(*) FROM deliveries", [], |row| row.get(0))
        .unwrap();
    assert_eq!(deliveries, 0);
    assert_eq!(server.request_count(), 0);
}

/// `next` and `status` say that some files have problems (their tasks are not listed), as
/// `list` does; `next` says a task disabled in its file never runs rather than list times.
#[test]
fn listings_say_when_files_are_left_out_and_disabled_tasks_get_no_times() {
    let test = task(Test::new(), "daily", "0 8 * * *", "", "http://127.0.0.1:9/");
    let test = task(
        test,
        "off",
        "0 9 * * *",
        "enabled = false",
        "http://127.0.0.1:9/",
    );
    test.keyhook(["run-task", "daily"]).output().unwrap();
    let test = test.write(
        "tasks/broken.toml",
        "name = \"broken\"\nschedule = \"0 8 * * Monday-Friday\"\n",
    );
    for args in [&["next"][..], &["status"], &["list"]] {
        let output = test.keyhook(args).output().unwrap();
        assert!(
            stdout(&output).contains("1 definition file(s) have problems; run `keyhook check`"),
            "{args:?}: {}",
            stdout(&output)
        );
    }
    let off = stdout(&test.keyhook(["next", "off"]).output().unwrap());
    assert!(off.contains("disabled in its file"), "{off}");
    assert!(!off.contains("2026-"), "no times: {off}");
}

/// A slot that `run-due` skipped did not run: `run-task` says so, not "already ran".
#[test]
fn run_task_tells_a_skipped_slot_from_one_that_ran() {
    let test = task(
        Test::new(),
        "daily",
        "0 8 * * *",
        "catch_up = \"1h\"",
        "http://127.0.0.1:9/",
    );
    run_due(&test, "2026-11-19T07:00:00");
    let skipped = run_due(&test, "2026-11-20T10:00:00");
    assert!(stdout(&skipped).contains("skipped the slot"), "{skipped:?}");
    let output = test
        .keyhook(["run-task", "daily", "--now", "2026-11-20T10:05:00"])
        .output()
        .unwrap();
    let text = stdout(&output);
    assert!(
        text.contains("was skipped by run-due") && !text.contains("already ran"),
        "{text}"
    );
}

#[test]
fn run_due_says_a_secret_it_cannot_read_once_when_retries_wait_for_it_too() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(500)).unwrap();
    let test = task(Test::new(), "daily", "0 9 * * *", "", &server.url("/hook")).write(
        "tasks/daily.toml",
        &format!(
            "name = \"daily\"\nsearch = \"daily\"\nschedule = \"0 9 * * *\"\n\n[webhook]\n\
             url = \"{}\"\nsecret_env = \"KEYHOOK_TEST_UNSET_SECRET\"\n",
            server.url("/hook")
        ),
    );
    // Sent with the secret, answered 500: a retry waits.
    let failed = test
        .keyhook(["run-task", "daily", "--now", "2026-11-23T06:00:00"])
        .env("KEYHOOK_TEST_UNSET_SECRET", "s3cret")
        .output()
        .unwrap();
    assert_eq!(server.request_count(), 1, "{failed:?}");
    // A day later, the secret gone: the problem is said once, and the retries name it.
    let later = run_due(&test, "2026-11-24T06:00:00");
    let text = stdout(&later);
    assert_eq!(later.status.code(), Some(2), "{later:?}");
    assert_eq!(
        text.matches("KEYHOOK_TEST_UNSET_SECRET").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains("daily: retries wait (the error above)"),
        "{text}"
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn run_due_says_a_secret_it_cannot_read_on_every_call_not_only_at_the_slot() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = task(Test::new(), "daily", "0 9 * * *", "", &server.url("/hook")).write(
        "tasks/daily.toml",
        &format!(
            "name = \"daily\"\nsearch = \"daily\"\nschedule = \"0 9 * * *\"\n\n[webhook]\n\
             url = \"{}\"\nsecret_env = \"KEYHOOK_TEST_UNSET_SECRET\"\n",
            server.url("/hook")
        ),
    );
    // Hours before the slot: said, exit 2, nothing sent.
    let early = run_due(&test, "2026-11-23T06:00:00");
    assert_eq!(early.status.code(), Some(2), "{early:?}");
    assert!(
        stdout(&early).contains("KEYHOOK_TEST_UNSET_SECRET (secret_env) is not set"),
        "{}",
        stdout(&early)
    );
    // At the slot: said once, not twice.
    let due = run_due(&test, "2026-11-24T09:00:30");
    assert_eq!(due.status.code(), Some(2), "{due:?}");
    assert_eq!(
        stdout(&due).matches("KEYHOOK_TEST_UNSET_SECRET").count(),
        1,
        "{}",
        stdout(&due)
    );
    assert_eq!(server.request_count(), 0);
    // Set: quiet until the slot, then sent.
    let set = test
        .keyhook(["run-due", "--now", "2026-11-24T10:00:00"])
        .env("KEYHOOK_TEST_UNSET_SECRET", "s3cret")
        .output()
        .unwrap();
    assert_eq!(set.status.code(), Some(0), "{set:?}");
    assert_eq!(server.request_count(), 1, "{}", stdout(&set));
}
