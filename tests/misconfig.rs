//! A misconfiguration is an error that names what is wrong, never a quiet no-op, and `check`
//! finds what a run would fail on.

use crate::support::{Test, stderr, stdout};
use keyhook::receiver::{Reply, Server};

fn all_output(output: &std::process::Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

/// Each of `expected` appears in `text`.
fn says_each(text: &str, expected: &[&str]) {
    for what in expected {
        assert!(text.contains(what), "missing {what:?} in\n{text}");
    }
}

/// `what` appears exactly once in `text` (a problem said, and not again).
fn said_once(text: &str, what: &str) {
    assert_eq!(text.matches(what).count(), 1, "{what:?} once in:\n{text}");
}

#[test]
fn a_wrong_config_folder_is_an_error_not_a_quiet_success() {
    let test = Test::new().search("all", "ID > 0");
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap().to_string();
    let missing = format!("{empty}/nowhere");
    let file = test.path("licenses.db").to_str().unwrap().to_string();
    for (config, says) in [
        (missing.as_str(), "does not exist"),
        (empty.as_str(), "has no tasks/, searches/ or webhooks/"),
        (file.as_str(), "is not a folder"),
    ] {
        for args in [
            &["run-due"][..],
            &["list"],
            &["check"],
            &["retry"],
            &["status"],
            &["dispatch"],
            &["watch"],
        ] {
            let output = test
                .keyhook(["--config", config])
                .args(args)
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(2), "{config} {args:?}");
            let text = stderr(&output);
            assert!(text.contains(config) && text.contains(says), "{text}");
        }
        let output = test
            .keyhook(["run-due"])
            .env("KEYHOOK_CONFIG", config)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "KEYHOOK_CONFIG={config}");
    }
    // The triggers follow the folder's events.toml: a mistyped folder must not remove those
    // of the user's own events. Any folder that exists will do (the built-in events).
    for args in [
        &["events", "install"][..],
        &["events", "uninstall"],
        &["events", "status"],
    ] {
        let output = test
            .keyhook(["--config", &missing])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains("does not exist"), "{args:?}");
    }
    test.keyhook(["--config", &empty, "events", "status"])
        .assert()
        .success();
    // QLM's shape: webhooks in keyhook.toml's `[events]`, no folder of definitions.
    let qlm = tempfile::tempdir().unwrap();
    std::fs::write(
        qlm.path().join("keyhook.toml"),
        "[events]\nlicense_updated = \"http://127.0.0.1:9/u\"\nwebHookSecretKey = \"s3cr3t\"\n",
    )
    .unwrap();
    let output = test
        .keyhook(["--config", qlm.path().to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        !text.contains("has no tasks/") && text.contains("keyhook.toml: events are not installed"),
        "checked as a configuration folder: {text}"
    );
    // Commands that do not read definitions still work anywhere.
    test.keyhook(["--config", &missing, "secret", "new"])
        .assert()
        .success();
    // An editor's lock or backup beside the definitions is not one.
    let test = test
        .write("tasks/.#all.toml", "not = [toml")
        .write("searches/.all.toml", "")
        .task("t", "all", "http://127.0.0.1:9/", "");
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

/// A folder where each file fails only when it is run, not when it is loaded.
fn fails_at_run_time() -> Test {
    let test = Test::new()
        .search("ok", "ID > 0")
        .search("far", "SubscriptionExpiryDate < [now+9999999M]")
        .task(
            "badkey",
            "ok",
            "http://127.0.0.1:9/",
            "signature = \"standard\"",
        )
        .task("badport", "ok", "http://127.0.0.1:99999/", "");
    test.simple_license(1, "2026-11-25T10:00:00");
    test
}

#[test]
fn check_finds_what_a_run_would_fail_on() {
    let test = fails_at_run_time();
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    says_each(
        &text,
        &[
            "searches/far.toml: field `sql`: placeholder `[now+9999999M]`",
            "tasks/badkey.toml: [webhook]: the secret is not a Standard Webhooks key",
            "tasks/badport.toml: [webhook] field `url`: `http://127.0.0.1:99999/` has port 99999",
        ],
    );
    assert!(text.contains("3 problem(s) found"), "{text}");
    // The run fails on the same problems, with the same words.
    let run = test.keyhook(["run-task", "badkey"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(stderr(&run).contains("the secret is not a Standard Webhooks key"));
    let dry = test.keyhook(["dry-run", "far"]).output().unwrap();
    assert_eq!(dry.status.code(), Some(2));
    assert!(stderr(&dry).contains("goes outside the calendar"));
}

/// A `[webhook]` table with several wrong fields: `check` and the run name each one, a bad
/// `url` hiding none of the rest; the same in a webhook file of `webhooks/`.
#[test]
fn every_wrong_webhook_field_is_named_not_only_the_first() {
    let test = Test::new()
        .search("ok", "ID > 0")
        .task(
            "many",
            "ok",
            "ftp://127.0.0.1/",
            "timeout = \"soon\"\nretry_interval = \"often\"\nsignature = []",
        )
        .write(
            "webhooks/many.toml",
            "name = \"many\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.created\"]\n\
             secret = \"s\"\ntimeout = \"soon\"\nretry_interval = \"often\"\n",
        );
    test.simple_license(1, "2026-11-25T10:00:00");
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    says_each(
        &text,
        &[
            "tasks/many.toml: [webhook] field `url`",
            "tasks/many.toml: [webhook] field `timeout`",
            "tasks/many.toml: [webhook] field `retry_interval`",
            "tasks/many.toml: [webhook] field `signature`",
            "webhooks/many.toml: field `timeout`",
            "webhooks/many.toml: field `retry_interval`",
        ],
    );
    let run = test.keyhook(["run-task", "many"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let said = stderr(&run);
    assert!(
        said.contains("field `url`") && said.contains("field `timeout`"),
        "{said}"
    );
}

#[test]
fn a_value_of_the_wrong_shape_says_what_the_key_takes() {
    let test = Test::new()
        .search("ok", "ID > 0")
        .task(
            "odd",
            "ok",
            "http://127.0.0.1:9/",
            "signature = \"bogus\"\nretry_schedule = 5",
        )
        .write(
            "webhooks/odd.toml",
            "name = \"odd\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.created\"]\n\
             secret = \"s\"\nsignature = [\"qlm\", 3]\n",
        );
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    says_each(
        &text,
        &[
            "tasks/odd.toml: invalid TOML",
            "`signature` is \"qlm\" or \"standard\", or a list of them",
            "webhooks/odd.toml: invalid TOML",
        ],
    );
    assert!(!text.contains("untagged enum"), "serde's words: {text}");
    let test = test.task("odd", "ok", "http://127.0.0.1:9/", "retry_schedule = 5");
    let text = stdout(&test.keyhook(["check"]).output().unwrap());
    says_each(
        &text,
        &["`retry_schedule` is a preset (\"standard\") or a list of waits"],
    );
}

#[test]
fn a_settings_file_or_folder_that_links_nowhere_is_an_error_not_the_defaults() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .search("ok", "ID > 0")
        .task("t", "ok", &server.url("/"), "");
    test.simple_license(1, "2026-11-25T10:00:00");
    // keyhook.toml said `webhooks_enabled = false`, through a link whose target is gone.
    std::os::unix::fs::symlink(test.path("shared/settings.toml"), test.path("keyhook.toml"))
        .unwrap();
    let check = test.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", stdout(&check));
    says_each(
        &stdout(&check),
        &["keyhook.toml: it is a link to", "which does not exist"],
    );
    let run = test.keyhook(["run-task", "t"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", all_output(&run));
    assert!(server.requests().is_empty(), "nothing is sent on defaults");
    std::fs::remove_file(test.path("keyhook.toml")).unwrap();

    std::fs::rename(test.path("tasks"), test.path("tasks.real")).unwrap();
    std::os::unix::fs::symlink(test.path("nowhere/tasks"), test.path("tasks")).unwrap();
    let check = test.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(2), "{}", stdout(&check));
    says_each(&stdout(&check), &["tasks: it is a link to"]);
    let due = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(due.status.code(), Some(2), "{}", all_output(&due));
}

#[test]
fn a_name_is_found_whatever_the_case_of_its_letters_not_only_ascii_ones() {
    let test = Test::new()
        .write(
            "searches/overdue.toml",
            "name = \"Überfällig\"\nsql = \"ID > 0\"\n",
        )
        .task("t", "überfällig", "http://127.0.0.1:9/", "");
    test.simple_license(1, "2026-11-25T10:00:00");
    let check = test.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    for key in ["ÜBERFÄLLIG", "überfällig", "overdue"] {
        let count = test.keyhook(["dry-run", key, "--count"]).output().unwrap();
        assert_eq!(
            count.status.code(),
            Some(0),
            "{key}: {}",
            all_output(&count)
        );
        assert_eq!(stdout(&count).trim(), "1", "{key}");
    }
    // What there is, listed by file stem and name: either calls it.
    let missing = test.keyhook(["dry-run", "nothing"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("overdue (Überfällig)"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn every_wrong_field_of_keyhook_toml_is_said_at_once() {
    let test = Test::new().search("ok", "ID > 0").write(
        "keyhook.toml",
        "timezone = \"Europe/Berln\"\nquery_timeout = \"0s\"\nretry_interval = \"0s\"\n",
    );
    let expected = [
        "keyhook.toml: field `retry_interval`",
        "keyhook.toml: field `timezone`",
        "keyhook.toml: field `query_timeout`",
    ];
    let check = test.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    says_each(&stdout(&check), &expected);
    let run = test.keyhook(["dry-run", "ok"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    says_each(&stderr(&run), &expected);
}

#[test]
fn concurrency_has_one_range_everywhere() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .search("all", "ID > 0")
        .task("t", "all", &server.url("/"), "");
    test.simple_license(1, "2026-11-25T10:00:00");
    for value in ["0", "100000", "-1", "many"] {
        let output = test
            .keyhook(["run-task", "t", &format!("--concurrency={value}")])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "--concurrency {value}");
        assert!(stderr(&output).contains("1 to 256"), "{}", stderr(&output));
        let output = test
            .keyhook(["run-task", "t"])
            .env("KEYHOOK_CONCURRENCY", value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "KEYHOOK_CONCURRENCY={value}");
    }
    assert_eq!(server.request_count(), 0);
    let test = test.write(
        "tasks/t.toml",
        &format!(
            "name = \"t\"\nsearch = \"all\"\nschedule = \"every 1 day\"\nconcurrency = 100000\n\
             [webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
            server.url("/")
        ),
    );
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout(&output).contains("field `concurrency`: 100000 is out of range: from 1 to 256"),
        "{}",
        stdout(&output)
    );
    // Many workers for one delivery: no panic, one request.
    test.keyhook(["run-task", "t", "--concurrency", "256", "--force"])
        .output()
        .unwrap();
}

#[test]
fn a_password_in_a_url_is_never_shown() {
    let test = Test::new().search("all", "ID > 0").task(
        "t",
        "all",
        "http://bot:hunter2pass@127.0.0.1:99999/",
        "",
    );
    let text = all_output(&test.keyhook(["check"]).output().unwrap());
    assert!(text.contains("bot:***@127.0.0.1"), "{text}");
    let test = test.task("t", "all", "http://bot:hunter2pass@127.0.0.1:9/", "");
    for args in [
        &["dry-run", "t"][..],
        &["dry-run", "t", "--payloads"],
        &["check"],
    ] {
        let text = all_output(&test.keyhook(args).output().unwrap());
        assert!(!text.contains("hunter2pass"), "{args:?}: {text}");
    }
}

#[test]
fn resend_with_an_ambiguous_prefix_says_so() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .search("all", "ID > 0")
        .task("t", "all", &server.url("/"), "");
    for id in 1..=8 {
        test.simple_license(id, "2026-11-25T10:00:00");
    }
    test.keyhook(["run-task", "t"]).assert().success();
    let output = test.keyhook(["resend", "msg_"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("`msg_` is ambiguous"), "{text}");
    assert!(text.contains("more than 5 delivery ids"), "{text}");
    assert_eq!(
        text.matches("msg_").count(),
        6,
        "the prefix and five ids: {text}"
    );
    let log = stdout(&test.keyhook(["log", "--json"]).output().unwrap());
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let id = first["id"].as_str().unwrap();
    test.keyhook(["resend", &id[..id.len() - 2]])
        .assert()
        .success();
    assert_eq!(server.request_count(), 9);
    let output = test.keyhook(["resend", "msg_nothing"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no delivery `msg_nothing`"));
}

#[test]
fn status_does_not_show_a_skipped_slot_as_a_run() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new().search("all", "ID > 0").write(
        "tasks/weekdays.toml",
        &format!(
            "name = \"weekdays\"\nsearch = \"all\"\nschedule = \"0 9 * * MON-FRI\"\n\
             catch_up = \"1h\"\n[webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
            server.url("/")
        ),
    );
    test.simple_license(1, "2026-11-25T10:00:00");
    test.simple_license(2, "2026-11-25T10:00:00");
    for now in [
        "2026-11-23T08:00:00",
        "2026-11-23T09:00:10",
        "2026-11-24T15:00:00",
    ] {
        test.keyhook(["run-due", "--now", now]).assert().success();
    }
    assert_eq!(server.request_count(), 2);
    let text = stdout(
        &test
            .keyhook(["status", "--now", "2026-11-24T15:00:00"])
            .output()
            .unwrap(),
    );
    let row = text.lines().find(|line| line.contains("weekdays")).unwrap();
    assert!(row.contains("2026-11-23 09:00:10"), "{text}");
    assert!(row.contains(" 2 "), "the run's counts stay: {text}");
    assert!(
        text.contains("weekdays: skipped the slot at 2026-11-24 09:00:00"),
        "{text}"
    );
}

#[test]
fn json_output_is_one_document_and_warnings_go_to_stderr() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(410)).unwrap();
    let test = Test::new()
        .search("all", "ID > 0")
        .task("off", "all", &server.url("/"), "enabled = false")
        .task("gone", "all", &server.url("/"), "");
    test.simple_license(1, "2026-11-25T10:00:00");
    test.simple_license(2, "2026-11-25T10:00:00");
    // The first run meets the 410; the second finds the webhook disabled by it.
    test.keyhook(["run-task", "gone"]).output().unwrap();
    for (task, warning) in [
        ("off", "webhook disabled"),
        (
            "gone",
            "webhook DISABLED since its receiver answered 410 Gone",
        ),
    ] {
        let output = test
            .keyhook(["run-task", task, "--json", "--force"])
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{task}: stdout is not one JSON document ({e}): {}",
                stdout(&output)
            )
        });
        assert_eq!(json["matched"], 2, "{json}");
        assert!(
            stderr(&output).contains(warning),
            "{task}: {}",
            stderr(&output)
        );
        assert!(json["warnings"][0].as_str().unwrap().contains(warning));
    }
    // Before any run, `log --json` is no lines at all: the note goes to stderr.
    let fresh = Test::new().search("all", "ID > 0");
    let output = fresh.keyhook(["log", "--json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "", "no JSON lines, no text among them");
    assert!(
        stderr(&output).contains("no deliveries yet"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_broken_keyhook_toml_stops_every_command_but_check() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    // The kill switch beside a typo: running with defaults would send.
    let test = Test::new()
        .search("all", "ID > 0")
        .task("t", "all", &server.url("/"), "")
        .write(
            "keyhook.toml",
            "webhooks_enabled = false\nquery_timout = \"10s\"\n",
        );
    test.simple_license(1, "2026-11-25T10:00:00");
    for args in [
        &["run-task", "t"][..],
        &["run-due"],
        &["dry-run", "t"],
        &["next"],
        &["retry"],
        &["status"],
        &["list"],
        &["dispatch"],
    ] {
        let output = test.keyhook(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = stderr(&output);
        assert!(
            text.contains("keyhook.toml") && text.contains("query_timout"),
            "{args:?}: {text}"
        );
        assert!(text.contains("keyhook check"), "{args:?}: {text}");
    }
    assert_eq!(server.request_count(), 0, "nothing sent with defaults");
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stdout(&output).contains("query_timout"),
        "{}",
        stdout(&output)
    );
    // Set-up commands do not read it.
    test.keyhook(["secret", "new"]).assert().success();
}

#[test]
fn check_reports_a_search_that_fails_only_while_it_runs() {
    let test = Test::new()
        .search("json", "json_extract(Email, '$.x') IS NULL")
        .task("t", "json", "http://127.0.0.1:9/", "");
    test.simple_license(1, "2026-11-25T10:00:00");
    let run = test.keyhook(["run-task", "t"]).output().unwrap();
    assert_ne!(run.status.code(), Some(0), "{}", stderr(&run));
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(
        text.contains("tasks/t.toml: search `json` (searches/json.toml) fails when run now"),
        "{text}"
    );
    assert!(text.contains("malformed JSON"), "{text}");
}

#[test]
fn a_name_that_another_files_stem_takes_first_is_a_problem() {
    // `search = "renewals"` finds searches/renewals.toml before the search named so.
    let test = Test::new()
        .write(
            "searches/old.toml",
            "name = \"renewals\"\nsql = \"ID > 0\"\n",
        )
        .write(
            "searches/renewals.toml",
            "name = \"Renewals v2\"\nsql = \"ID > 1\"\n",
        );
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "searches/old.toml: field `name`: `renewals` is the file name of searches/renewals.toml"
        ),
        "{text}"
    );
    assert!(text.contains("1 problem(s) found"), "{text}");
}

#[test]
fn two_searches_of_one_name_make_a_task_that_names_it_run_neither() {
    // A copy made to try a variant, its `name` left as it was: the task must not run whichever
    // file sorts first.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .write(
            "searches/renewals.toml",
            "name = \"Upcoming Renewals\"\nsql = \"ID > 1\"\n",
        )
        .write(
            "searches/aaa-copy.toml",
            "name = \"upcoming renewals\"\nsql = \"ID > 0\"\n",
        )
        .task("t", "Upcoming Renewals", &server.url("/"), "");
    test.simple_license(1, "2026-11-25T10:00:00");
    test.simple_license(2, "2026-11-25T10:00:00");
    for args in [&["run-task", "t"][..], &["dry-run", "t"], &["check"]] {
        let output = test.keyhook(args).output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            all_output(&output)
        );
        let text = all_output(&output);
        assert!(
            text.contains("`Upcoming Renewals` is also the name in")
                || text.contains("`upcoming renewals` is also the name in"),
            "{args:?}: {text}"
        );
    }
    let check = all_output(&test.keyhook(["check"]).output().unwrap());
    assert!(
        check.contains("searches/aaa-copy.toml: field `name`"),
        "{check}"
    );
    assert!(
        check.contains("searches/renewals.toml: field `name`"),
        "{check}"
    );
    assert_eq!(server.request_count(), 0, "nothing sent");
    // Two tasks of one name: neither runs, and next and list list no times for them.
    let twice = test.write(
        "tasks/u.toml",
        "name = \"T\"\nsearch = \"renewals\"\nschedule = \"every 1 day\"\n\n[webhook]\n\
         url = \"http://127.0.0.1:9/\"\nsecret = \"test-secret\"\n",
    );
    let next = stdout(&twice.keyhook(["next"]).output().unwrap());
    assert!(
        next.contains("not run while its file or its search's has problems"),
        "{next}"
    );
    let list = stdout(&twice.keyhook(["list"]).output().unwrap());
    assert!(list.contains("not run: see `keyhook check`"), "{list}");
}

#[test]
fn check_says_events_are_not_installed_when_a_webhook_subscribes_to_them() {
    let test = Test::new().write(
        "webhooks/hook.toml",
        "name = \"hook\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.*\"]\n\
         secret = \"s3cret-value\"\n",
    );
    let check = test.keyhook(["check"]).output().unwrap();
    let text = all_output(&check);
    assert_eq!(check.status.code(), Some(2), "{text}");
    assert!(
        text.contains("webhooks/hook.toml: events are not installed in")
            && text.contains("run `keyhook events install` first"),
        "{text}"
    );
    // What check said is what the run stops on.
    let dispatch = test.keyhook(["dispatch"]).output().unwrap();
    assert_eq!(dispatch.status.code(), Some(2));
    assert!(all_output(&dispatch).contains("events are not installed in"));
    test.keyhook(["events", "install"]).assert().success();
    let check = test.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", all_output(&check));
}

/// A task file `name` running `search` every minute (so `run-due` finds it due), posting to
/// `url`.
fn minutely(name: &str, search: &str, url: &str) -> String {
    format!(
        "name = \"{name}\"\nsearch = \"{search}\"\nschedule = \"* * * * *\"\n\n[webhook]\n\
         url = \"{url}\"\nsecret = \"s3cret-value\"\n"
    )
}

#[test]
fn run_due_says_a_broken_search_of_a_due_task_once() {
    let missing = Test::new().write(
        "tasks/t.toml",
        &minutely("t", "nosuch", "http://127.0.0.1:9/"),
    );
    let output = missing.keyhook(["run-due"]).output().unwrap();
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    said_once(&text, "no search is called");

    let test = Test::new()
        .write("searches/s.toml", "name = \"s\"\nsql = \"ID > [nope]\"\n")
        .write("tasks/t.toml", &minutely("t", "s", "http://127.0.0.1:9/"));
    let output = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = all_output(&output);
    said_once(&text, "unknown placeholder `[nope]`");

    // A due task whose file has two problems (its name taken twice, its search missing):
    // each said once, not again as the run stops on them.
    let test = Test::new()
        .search("s", "ID > 0")
        .write(
            "tasks/a.toml",
            &minutely("same", "nope", "http://127.0.0.1:9/"),
        )
        .write(
            "tasks/b.toml",
            &minutely("same", "s", "http://127.0.0.1:9/"),
        );
    let output = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = all_output(&output);
    said_once(&text, "no search is called `nope`");
    said_once(&text, "tasks/a.toml: field `name`");
}

#[test]
fn check_says_every_bad_field_of_a_file_at_once() {
    let test = Test::new()
        .search("s", "ID > 0")
        .write(
            "tasks/t.toml",
            "name = \"t\"\nsearch = \"s\"\nschedule = \"every 0 minutes\"\ntimezone = \"Mars/Olympus\"\n\
             concurrency = 0\n\n[webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s3cret-value\"\n",
        )
        .write(
            "webhooks/w.toml",
            "name = \"w\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.nope\"]\n\
             environment = \"moon\"\nsecret = \"s3cret-value\"\n",
        );
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    says_each(
        &text,
        &[
            "tasks/t.toml: field `schedule`",
            "tasks/t.toml: field `timezone`",
            "tasks/t.toml: field `concurrency`",
            "webhooks/w.toml: field `events`",
            "webhooks/w.toml: field `environment`",
        ],
    );
    assert!(text.contains("5 problem(s) found"), "{text}");
}

#[test]
fn check_says_what_in_a_definitions_folder_is_not_read() {
    let task = "name = \"upper\"\nsearch = \"s\"\nschedule = \"every 1 day\"\n\n[webhook]\n\
                url = \"http://127.0.0.1:9/\"\nsecret = \"s3cret-value\"\n";
    let test = Test::new()
        .search("s", "ID > 0")
        .write("tasks/UPPER.TOML", task)
        .write("tasks/old.toml.bak", task)
        .write("tasks/typo.tml", task)
        .write("tasks/sub/nested.toml", task)
        .write("tasks/.hidden.toml", task)
        .write("tasks/renewals.secret", "s3cret-value")
        .write("tasks/certs/ca.pem", "not read as a definition");
    let output = test.keyhook(["check"]).output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "warnings only: {text}");
    assert!(text.contains("and 0 tasks are valid"), "{text}");
    assert!(text.contains("tasks/UPPER.TOML: not read"), "{text}");
    assert!(text.contains("tasks/old.toml.bak: not read"), "{text}");
    assert!(text.contains("tasks/typo.tml: not read"), "{text}");
    assert!(text.contains("tasks/sub: a folder"), "{text}");
    assert!(!text.contains(".hidden"), "{text}");
    assert!(
        !text.contains("renewals.secret") && !text.contains("certs"),
        "files beside the tasks: {text}"
    );
}

#[test]
fn run_due_says_a_missing_license_database_before_any_slot_comes() {
    let test = Test::new().search("s", "ID > 0").write(
        "tasks/daily.toml",
        "name = \"daily\"\nsearch = \"s\"\nschedule = \"every 1 day\"\nat = \"08:00\"\n\n\
         [webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s3cret-value\"\n",
    );
    // Not due at 10:00 (its slot was 08:00, before it was first seen): still said, once.
    let output = test
        .keyhook(["--db", "missing.db", "run-due"])
        .output()
        .unwrap();
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    said_once(&text, "license database missing.db does not exist");
    // Due (a minute-by-minute task): the run stops on it, and it is still said once.
    let test = test.write(
        "tasks/minutely.toml",
        &minutely("minutely", "s", "http://127.0.0.1:9/"),
    );
    let output = test
        .keyhook(["--db", "missing.db", "run-due"])
        .output()
        .unwrap();
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    said_once(&text, "does not exist");
}

#[test]
fn a_refused_webhook_file_does_not_keep_run_due_from_its_tasks() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let hook = "name = \"hook\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.*\"]\n\
                secret = \"s3cret-value\"\n";
    let test = Test::new()
        .search("s", "ID > 0")
        .write("webhooks/a.toml", hook)
        .write("webhooks/b.toml", hook)
        .write(
            "tasks/minutely.toml",
            &minutely("minutely", "s", &server.url("/")),
        );
    test.simple_license(1, "2026-11-25T10:00:00");
    test.keyhook(["events", "install"]).assert().success();
    let output = test.keyhook(["run-due"]).output().unwrap();
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("webhooks/b.toml: field `name`"), "{text}");
    assert_eq!(server.request_count(), 1, "the task ran: {text}");
    said_once(&text, "webhooks/a.toml: field `name`");
}

#[test]
fn next_and_list_show_no_times_for_a_task_whose_search_is_broken() {
    let test = Test::new()
        .write("searches/bad.toml", "name = \"bad\"\nsql = \"\"\n")
        .write("tasks/t.toml", &minutely("t", "bad", "http://127.0.0.1:9/"));
    let next = test.keyhook(["next"]).output().unwrap();
    assert!(
        stdout(&next).contains("not run while its file or its search's has problems"),
        "{}",
        stdout(&next)
    );
    let list = stdout(&test.keyhook(["list"]).output().unwrap());
    assert!(list.contains("not run: see `keyhook check`"), "{list}");
    // A state path that cannot be used leaves next's times from now, said.
    std::fs::create_dir(test.path("a-folder")).unwrap();
    let hint = test
        .keyhook(["--state", "a-folder", "next"])
        .output()
        .unwrap();
    assert_eq!(hint.status.code(), Some(0));
    assert!(
        stderr(&hint).contains("the state could not be read"),
        "{}",
        stderr(&hint)
    );
}

/// A FIFO (or a device) named `*.toml` is a problem of its own, not a `run-due` that hangs
/// every minute from cron, or reads `/dev/zero` until the memory is gone.
#[test]
fn a_definition_that_is_not_a_regular_file_is_refused_not_read() {
    let test = Test::new()
        .search("all", "ID > 0")
        .task("t", "all", "http://127.0.0.1:9/", "");
    let fifo = test.path("searches/fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", test.path("tasks/zero.toml")).unwrap();
    for command in ["run-due", "check"] {
        let output = test
            .keyhook([command])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{command}: {output:?}");
        let text = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            text.contains("fifo.toml: is not a regular file")
                && text.contains("zero.toml: is not a regular file"),
            "{command}: {text}"
        );
    }
}

/// The same for the files a task points at: a secret file that is a FIFO (`run-due` waited for
/// a writer forever, and ignored the first SIGTERM), a CA file that is `/dev/zero` (`check`
/// read it until the memory was gone), a secret file far too long to be one.
#[test]
fn a_secret_or_ca_file_that_is_not_a_regular_file_or_far_too_long_is_refused_not_read() {
    let task = |stem: &str, keys: &str| {
        format!(
            "name = \"{stem}\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\n\
             [webhook]\nurl = \"http://127.0.0.1:9/\"\n{keys}\n"
        )
    };
    let test = Test::new()
        .search("all", "ID > 0")
        .write(
            "tasks/fifo.toml",
            &task("fifo", "secret_file = \"../secret.fifo\""),
        )
        .write(
            "tasks/zero.toml",
            &task("zero", "secret = \"s3cret\"\nca_file = \"/dev/zero\""),
        )
        .write(
            "tasks/long.toml",
            &task("long", "secret_file = \"../long.secret\""),
        )
        .write("long.secret", &"x".repeat((1 << 20) + 1));
    let made = std::process::Command::new("mkfifo")
        .arg(test.path("secret.fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    let fifo = "could not read secret_file tasks/../secret.fifo: not a regular file";
    let zero = "could not read ca_file /dev/zero: not a regular file";
    let long = "could not read secret_file tasks/../long.secret: longer than 1 MiB";
    // `run-due` reads every task's secret, and a task's TLS files when it runs.
    for (args, says) in [
        (&["check"][..], &[fifo, zero, long][..]),
        (&["run-due"], &[fifo, long]),
        (&["run-task", "zero"], &[zero]),
    ] {
        let output = test
            .keyhook(args)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let text = format!("{}{}", stdout(&output), stderr(&output));
        for said in says {
            assert!(text.contains(said), "{args:?}: {said:?} in {text}");
        }
    }
}

#[test]
fn a_server_url_that_cannot_be_read_is_a_configuration_error_said_before_connecting() {
    let test = Test::new().search("all", "ID > 0");
    // Port 1: nothing answers there, so a URL read as good would fail to connect (exit 3).
    let bad_mode = "postgres://keyhook:hunter2@127.0.0.1:1/test?sslmode=bogus";
    let bad_schema = "postgres://keyhook@127.0.0.1:1/test?schema=Not-A-Name";
    for (args, env, says) in [
        (
            &["dry-run", "all", "--count"][..],
            ("KEYHOOK_DB", bad_mode),
            "--db (KEYHOOK_DB)",
        ),
        (&["check"], ("KEYHOOK_DB", bad_mode), "sslmode `bogus`"),
        (
            &["status"],
            ("KEYHOOK_STATE", bad_mode),
            "--state (KEYHOOK_STATE)",
        ),
        (
            &["run-due"],
            ("KEYHOOK_STATE", bad_schema),
            "schema `Not-A-Name`",
        ),
        (
            &["check"],
            ("KEYHOOK_STATE", bad_mode),
            "--state (KEYHOOK_STATE)",
        ),
        (
            &["watch"],
            ("KEYHOOK_STATE", bad_mode),
            "--state (KEYHOOK_STATE)",
        ),
        (&["watch"], ("KEYHOOK_DB", bad_mode), "--db (KEYHOOK_DB)"),
    ] {
        let output = test
            .keyhook(args)
            .env(env.0, env.1)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        let text = all_output(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {text}");
        assert!(text.contains(says), "{args:?}: {text}");
        assert!(
            !text.contains("hunter2"),
            "the password is never printed: {text}"
        );
        assert!(
            !text.contains("server answers"),
            "not a server's fault: {text}"
        );
    }
    // A command that connects to neither still works.
    for args in [&["secret", "new"][..], &["next"], &["events", "catalog"]] {
        let output = test
            .keyhook(args)
            .env("KEYHOOK_DB", bad_mode)
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = test
        .keyhook(["state", "migrate", "--from", "nowhere.db", "--to", bad_mode])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--to"), "{}", stderr(&output));
}

#[test]
fn a_clock_or_zone_from_the_environment_is_named_by_its_variable_too() {
    let test = Test::new().search("all", "ID > 0");
    let output = test
        .keyhook(["check"])
        .env("KEYHOOK_NOW", "garbage")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("KEYHOOK_NOW"),
        "{}",
        stderr(&output)
    );
    let output = test
        .keyhook(["check"])
        .env("KEYHOOK_TIMEZONE", "Mars/Base")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("KEYHOOK_TIMEZONE"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn every_key_of_a_definition_that_does_not_fit_is_said_at_once_with_the_other_fields() {
    let test = Test::new().search("ok", "ID > 0").write(
        "tasks/broken.toml",
        "name = \"Broken\"\nsearch = \"ok\"\nschedule = \"0 9 * * *\"\nconcurrency = \"x\"\n\
         schedul = \"0 9 * * *\"\n[webhook]\nurl = \"ftp://example.com\"\nsecret = \"s3cr3t-value\"\n\
         retries = 3\n",
    );
    let expected = [
        "tasks/broken.toml: invalid TOML at line 4",
        "unknown field `schedul`",
        "unknown field `retries`",
        "tasks/broken.toml: [webhook] field `url`",
    ];
    let check = test.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    let text = all_output(&check);
    says_each(&text, &expected);
    assert!(!text.contains("s3cr3t-value"), "{text}");
    let run = test.keyhook(["run-task", "broken"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    says_each(&stderr(&run), &expected);
    let settings = Test::new().search("ok", "ID > 0").write(
        "keyhook.toml",
        "timezone = \"Mars/Base\"\nquery_timout = \"5s\"\nretry_interval = 5\n",
    );
    let check = settings.keyhook(["check"]).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    says_each(
        &all_output(&check),
        &[
            "keyhook.toml: invalid TOML at line 2, column 1: unknown field `query_timout`",
            "keyhook.toml: invalid TOML at line 3",
            "keyhook.toml: field `timezone`",
        ],
    );
}

/// In one `run-due`, a configuration error said before the state turns out unusable keeps its
/// exit (2, the more serious, as the README's order says), and both are said.
#[test]
fn run_due_keeps_a_configuration_error_said_before_the_state_fails() {
    let test = Test::new()
        .search("all", "ID > 0")
        .write(
            "tasks/t.toml",
            "name = \"t\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\n\
             [webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret_env = \"KEYHOOK_TEST_UNSET_SECRET\"\n",
        );
    std::fs::create_dir(test.path("state-folder")).unwrap();
    let output = test
        .keyhook(["--state", "state-folder", "run-due"])
        .env_remove("KEYHOOK_TEST_UNSET_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(text.contains("KEYHOOK_TEST_UNSET_SECRET"), "{text}");
    assert!(text.contains("it is a folder, not a file"), "{text}");
}
