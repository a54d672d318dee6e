//! A slot, run or first sighting recorded in the future (a wrong clock, `--now`, a stale
//! `KEYHOOK_NOW`) is said loudly by `run-due`, and `set-last-run` moves it back.

use crate::support::{Test, stderr, stdout};
use keyhook::receiver::{Reply, Server};

fn daily(server: &Server) -> Test {
    Test::new()
        .search("all", "1 = 1")
        .task("daily", "all", &server.url("/"), "")
}

fn run_due(test: &Test, now: &str) -> std::process::Output {
    test.keyhook(["run-due"])
        .env("KEYHOOK_NOW", now)
        .output()
        .unwrap()
}

fn assert_warns_and_sends_nothing(output: &std::process::Output, server: &Server, sent: usize) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let warning = stderr(output);
    assert!(warning.contains("task `daily`"), "{warning}");
    assert!(warning.contains("2030-01-01"), "names the time: {warning}");
    assert!(warning.contains("keyhook set-last-run daily"), "{warning}");
    assert_eq!(server.request_count(), sent);
}

#[test]
fn a_run_task_with_a_future_now_is_said_loudly_and_set_last_run_repairs_it() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = daily(&server);
    test.simple_license(1, "2027-01-01T00:00:00");
    test.keyhook(["run-task", "daily", "--now", "2030-01-01T10:00:00"])
        .assert()
        .success();
    assert_eq!(server.request_count(), 1);
    let output = run_due(&test, "2026-11-24T10:00:00");
    assert_warns_and_sends_nothing(&output, &server, 1);
    // `next` and `list` show what run-due will do: nothing before the recorded run.
    let next = test
        .keyhook(["next", "daily", "--now", "2026-11-24T10:00:00"])
        .output()
        .unwrap();
    assert!(stdout(&next).contains("  2030-01-02"), "{}", stdout(&next));
    assert!(!stdout(&next).contains("2026-11-25"), "{}", stdout(&next));
    assert!(
        stderr(&next).contains("later than now"),
        "{}",
        stderr(&next)
    );
    let list = test
        .keyhook(["list", "--now", "2026-11-24T10:00:00"])
        .output()
        .unwrap();
    assert!(
        stdout(&list).contains("next 2030-01-02"),
        "{}",
        stdout(&list)
    );
    test.keyhook([
        "set-last-run",
        "daily",
        "2026-11-23T10:00:00",
        "--now",
        "2026-11-24T10:00:00",
    ])
    .assert()
    .success();
    let output = run_due(&test, "2026-11-24T10:00:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stderr(&output), "");
    assert_eq!(server.request_count(), 2, "{}", stdout(&output));
}

#[test]
fn a_stale_keyhook_now_in_run_due_is_said_loudly_and_set_last_run_repairs_it() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = daily(&server);
    test.simple_license(1, "2027-01-01T00:00:00");
    assert!(run_due(&test, "2026-11-23T10:00:00").status.success());
    assert!(run_due(&test, "2030-01-01T10:00:00").status.success());
    assert_eq!(server.request_count(), 1, "the 2030 slot ran");
    for now in ["2026-11-25T10:00:00", "2026-11-25T10:01:00"] {
        let output = run_due(&test, now);
        assert_warns_and_sends_nothing(&output, &server, 1);
    }
    // A last run in the future is refused: it would block the task again.
    let future = test
        .keyhook(["set-last-run", "daily", "2027-01-01T00:00:00"])
        .env("KEYHOOK_NOW", "2026-11-25T10:00:00")
        .output()
        .unwrap();
    assert_eq!(future.status.code(), Some(2), "{future:?}");
    assert!(
        stderr(&future).contains("later than now"),
        "{}",
        stderr(&future)
    );
    // So is one before year 1: `[date]` would be outside the calendar on every run.
    let ancient = test
        .keyhook(["set-last-run", "daily", "--", "-0001-06-01T00:00"])
        .output()
        .unwrap();
    assert_eq!(ancient.status.code(), Some(2), "{ancient:?}");
    assert!(
        stderr(&ancient).contains("before year 1"),
        "{}",
        stderr(&ancient)
    );
    test.keyhook(["set-last-run", "daily", "2026-11-25T09:00:00"])
        .env("KEYHOOK_NOW", "2026-11-25T10:00:00")
        .assert()
        .success();
    // Today's slot counts as run (at 09:00); tomorrow's runs.
    let output = run_due(&test, "2026-11-25T10:02:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.request_count(), 1);
    let output = run_due(&test, "2026-11-26T10:00:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.request_count(), 2);
}

/// A slot run early by a wrong clock, then repaired with `set-last-run`: when that slot truly
/// comes it counts as run (nothing is sent twice), said once, not at every later call; the
/// next slot runs.
#[test]
fn a_slot_run_early_by_a_wrong_clock_is_not_sent_again_and_is_said_once() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = daily(&server);
    test.simple_license(1, "2027-01-01T00:00:00");
    assert!(run_due(&test, "2026-11-23T10:00:00").status.success());
    assert!(run_due(&test, "2026-11-25T10:00:00").status.success());
    assert_eq!(
        server.request_count(),
        1,
        "the 25th's slot ran, two days early"
    );
    test.keyhook(["set-last-run", "daily", "2026-11-23T10:00:00"])
        .env("KEYHOOK_NOW", "2026-11-23T12:00:00")
        .assert()
        .success();
    let output = run_due(&test, "2026-11-24T10:00:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.request_count(), 2);
    let output = run_due(&test, "2026-11-25T10:00:00");
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("already ran"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        server.request_count(),
        2,
        "the 25th's slot is not sent twice"
    );
    let output = run_due(&test, "2026-11-25T10:01:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "", "said once");
    let output = run_due(&test, "2026-11-26T10:00:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.request_count(), 3, "the 26th's slot runs");
}

/// `set-last-run` waits for no run: while one of the task holds its lock, it refuses (75),
/// since that run's end would record its own last run over the one set.
#[test]
fn set_last_run_refuses_while_a_run_of_the_task_goes_on() {
    let gate = crate::support::gate::Gate::new();
    let server = Server::start("127.0.0.1:0", {
        let gate = std::sync::Arc::clone(&gate);
        move |_| {
            gate.hold();
            Reply::ok()
        }
    })
    .unwrap();
    let test = daily(&server);
    test.simple_license(1, "2027-01-01T00:00:00");
    let mut running = test
        .process(["run-task", "daily"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(gate.wait_arrived(1), "the run's request arrived");
    let refused = test
        .keyhook(["set-last-run", "daily", "2026-11-01T00:00:00"])
        .output()
        .unwrap();
    gate.open();
    assert!(running.wait().unwrap().success());
    assert_eq!(refused.status.code(), Some(75), "{refused:?}");
    assert!(
        stderr(&refused).contains("being run by another keyhook process"),
        "{}",
        stderr(&refused)
    );
    test.keyhook(["set-last-run", "daily", "2026-11-01T00:00:00"])
        .assert()
        .success();
}

/// `check` says what `run-due` says of a state ahead of now, and exits 2 as it does: it runs
/// the same validation.
#[test]
fn check_says_a_state_ahead_of_now_as_run_due_does() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = daily(&server);
    test.keyhook(["run-task", "daily", "--now", "2030-01-01T10:00:00"])
        .assert()
        .success();
    let check = test
        .keyhook(["check", "--now", "2026-11-24T10:00:00"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    let text = stdout(&check);
    assert!(
        text.contains("task `daily`") && text.contains("later than now"),
        "{text}"
    );
}

/// `set-last-run` on a task keyhook has not seen yet sets its last run, not its first
/// sighting: the task then runs at its next slot, as `next` says, not at once for today's.
#[test]
fn set_last_run_on_a_new_task_does_not_make_it_run_at_once() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new().search("all", "1 = 1").write(
        "tasks/daily.toml",
        &format!(
            "name = \"daily\"\nsearch = \"all\"\nschedule = \"0 8 * * *\"\n[webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
            server.url("/")
        ),
    );
    test.simple_license(1, "2027-01-01T00:00:00");
    test.keyhook([
        "set-last-run",
        "daily",
        "2026-11-19T00:00:00",
        "--now",
        "2026-11-20T12:00:00",
    ])
    .assert()
    .success();
    let next = test
        .keyhook(["next", "daily", "-n", "1", "--now", "2026-11-20T12:00:30"])
        .output()
        .unwrap();
    assert!(
        stdout(&next).contains("2026-11-21 08:00"),
        "{}",
        stdout(&next)
    );
    let output = run_due(&test, "2026-11-20T12:01:00");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.request_count(), 0, "{}", stdout(&output));
    let output = run_due(&test, "2026-11-21T08:00:30");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(server.request_count(), 1, "{}", stdout(&output));
}

#[test]
fn a_time_shown_says_its_zone() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = daily(&server);
    let output = test
        .keyhook([
            "set-last-run",
            "daily",
            "2026-11-23T10:00:00",
            "--timezone",
            "Europe/Paris",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout(&output).contains("2026-11-23 10:00:00 CET"),
        "{}",
        stdout(&output)
    );
    let status = test
        .keyhook(["status", "--timezone", "America/New_York"])
        .output()
        .unwrap();
    assert!(
        stdout(&status).contains("2026-11-23 04:00:00 EST"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn a_time_shown_is_read_back_even_for_a_task_in_another_zone() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new().search("all", "1 = 1").write(
        "tasks/ny.toml",
        &format!(
            "name = \"ny\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\
             timezone = \"America/New_York\"\n\n[webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
            server.url("/")
        ),
    );
    let paris = |args: &[&str]| {
        let mut command = test.keyhook(args);
        command.env("KEYHOOK_TIMEZONE", "Europe/Paris");
        command.output().unwrap()
    };
    let set = paris(&["set-last-run", "ny", "2026-11-23T04:00:00"]);
    assert!(set.status.success(), "{set:?}");
    let shown = stdout(&set);
    assert!(shown.contains("2026-11-23 10:00:00 CET"), "{shown}");
    // What was shown, pasted back: the same instant.
    let again = paris(&["set-last-run", "ny", "2026-11-23 10:00:00 CET"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(stdout(&again), shown);
}
