//! Durable delivery: nothing is lost when the receiver is down or keyhook is killed, retries
//! follow the policy, and two processes never send the same delivery twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::gate::Gate;
use crate::support::ports::ClosedPort;
use crate::support::unprivileged::as_user_with_threads;
use crate::support::{Test, later, marked_run, stderr, stdout};
use keyhook::receiver::{Reply, Request, Server};

const SECRET: &str = "test-secret";

/// `count` licenses that all match, and a task posting them to `url`.
fn many(count: i64, url: &str, extra_webhook: &str) -> Test {
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("all", "all", url, extra_webhook);
    let mut conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    let conn = conn.transaction().unwrap();
    for id in 1..=count {
        conn.execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate) VALUES (?1, ?2, '2027-01-01T00:00:00')",
            rusqlite::params![id, format!("KEY-{id:04}")],
        )
        .unwrap();
    }
    conn.commit().unwrap();
    test
}

/// A receiver that answers `failure` to its first `count` requests and 200 after that.
fn failing_first(count: usize, failure: Reply) -> Server {
    let calls = AtomicUsize::new(0);
    Server::start("127.0.0.1:0", move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) < count {
            failure.clone()
        } else {
            Reply::ok()
        }
    })
    .unwrap()
}

/// The exit code of `keyhook <args>`.
fn code<const N: usize>(test: &Test, args: [&str; N]) -> Option<i32> {
    test.keyhook(args).output().unwrap().status.code()
}

/// A receiver that answers 200 at once until its `n`-th request, which it holds, with every
/// later one, until the test opens the gate (`n` = 0 holds them all); and the count of
/// requests that reached it.
fn holding_from(n: usize) -> (Server, Arc<Gate>, Arc<AtomicUsize>) {
    let gate = Gate::new();
    let arrived = Arc::new(AtomicUsize::new(0));
    let server = Server::start("127.0.0.1:0", {
        let (gate, arrived) = (Arc::clone(&gate), Arc::clone(&arrived));
        move |_| {
            if arrived.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                gate.hold();
            }
            Reply::ok()
        }
    })
    .unwrap();
    (server, gate, arrived)
}

/// `keyhook <args>` started in the background, its output captured.
fn spawn<const N: usize>(test: &Test, args: [&str; N]) -> std::process::Child {
    test.process(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn key(request: &Request) -> String {
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    json["LicenseInfo"]["ActivationKey"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every key received, with the requests for it.
fn by_key(server: &Server) -> HashMap<String, Vec<Request>> {
    let mut map: HashMap<String, Vec<Request>> = HashMap::new();
    for request in server.requests() {
        map.entry(key(&request)).or_default().push(request);
    }
    map
}

fn assert_all_arrived_once_or_identically(server: &Server, count: i64) {
    let map = by_key(server);
    assert_eq!(
        map.len() as i64,
        count,
        "every license reached the receiver"
    );
    for (key, requests) in map {
        let first = &requests[0];
        for again in &requests[1..] {
            assert_eq!(
                again.header("X-Keyhook-Delivery"),
                first.header("X-Keyhook-Delivery"),
                "{key}"
            );
            assert_eq!(again.body, first.body, "{key}: same body bytes");
            assert_eq!(
                again.header("X-QLM-Signature"),
                first.header("X-QLM-Signature"),
                "{key}"
            );
        }
    }
}

fn integrity(test: &Test) {
    let conn = rusqlite::Connection::open(test.path("keyhook-state.db")).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(verdict, "ok");
    let orphans: i64 = conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(
        orphans, 0,
        "every body, delivery and attempt has its parent"
    );
}

#[test]
fn sigkill_at_several_points_loses_nothing() {
    for kill_after in [0, 1, 7, 23] {
        // The kill lands while request `kill_after` is in flight: the receiver holds it.
        let (server, gate, arrived) = holding_from(kill_after);
        let test = many(30, &server.url("/"), "");
        let mut child = test.process(["run-task", "all"]).spawn().unwrap();
        if kill_after > 0 {
            assert!(gate.wait_arrived(1), "kill point {kill_after}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
        gate.open();
        let received_before = arrived.load(Ordering::SeqCst);
        assert!(
            received_before < 30,
            "killed before the end at {kill_after}"
        );
        integrity(&test);
        test.keyhook(["status"]).assert().success();
        let retry = test.keyhook(["retry"]).output().unwrap();
        assert!(retry.status.success(), "{}", stderr(&retry));
        if received_before == 0 && server.request_count() == 0 {
            // Killed before the run was recorded: no run happened, nothing is owed; a new run
            // delivers everything.
            test.keyhook(["run-task", "all"]).assert().success();
        }
        assert_all_arrived_once_or_identically(&server, 30);
        integrity(&test);
    }
}

/// The state's runs and deliveries, and whether a run is marked as being recorded (read while
/// keyhook runs; `None` before the state has its tables).
fn recording_in_state(test: &Test) -> Option<(i64, i64, bool)> {
    let path = test.path("keyhook-state.db");
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM deliveries),
                EXISTS (SELECT 1 FROM runs WHERE recording IS NOT NULL)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .ok()
}

/// Task `all` over 300 licenses with bodies of ~40 KB: its run is recorded in ~12 pieces.
fn big_run(server: &Server) -> Test {
    let test = many(300, &server.url("/"), "");
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute("UPDATE LicenseKeys SET Comment = ?1", [&"c".repeat(40_000)])
        .unwrap();
    test
}

/// `run-task all` started, and what the state held when a piece of its run was first seen
/// committed (or when it ended first).
fn spawn_until_a_piece(test: &Test) -> (std::process::Child, Option<(i64, i64, bool)>) {
    let mut child = test.process(["run-task", "all"]).spawn().unwrap();
    let started = Instant::now();
    let mut seen = None;
    while started.elapsed() < Duration::from_secs(20) {
        seen = recording_in_state(test);
        if matches!(seen, Some((_, deliveries, true)) if deliveries > 0)
            || child.try_wait().unwrap().is_some()
        {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    (child, seen)
}

/// A state holding a run of [`big_run`] killed between two pieces of its recording: some
/// pieces in the file, the run still marked.
fn killed_while_recording(server: &Server) -> Test {
    for _ in 0..30 {
        let test = big_run(server);
        let (mut child, seen) = spawn_until_a_piece(&test);
        child.kill().unwrap();
        child.wait().unwrap();
        // Killed between two pieces: caught. Too early or too late: again, on a new state.
        if matches!(seen, Some((_, deliveries, true)) if deliveries > 0)
            && matches!(recording_in_state(&test), Some((1, _, true)))
        {
            return test;
        }
    }
    panic!("no kill landed between two pieces of the recording");
}

#[test]
fn a_kill_while_a_big_run_is_recorded_leaves_no_run_and_the_next_one_sends_each_once() {
    // A kill between pieces leaves them in the file; none is sent, no one counts them, and
    // the task's next lock holder removes them.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = killed_while_recording(&server);
    assert_eq!(server.request_count(), 0);
    integrity(&test);
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(!status.contains("wait"), "no delivery waits: {status}");
    let log = stdout(&test.keyhook(["log"]).output().unwrap());
    assert!(!log.contains("KEY-"), "the log lists none of it: {log}");
    // Nothing is owed: a retry sends nothing (there is nothing due to retry).
    let retry = test.keyhook(["retry"]).output().unwrap();
    assert!(retry.status.success(), "{}", stderr(&retry));
    assert_eq!(
        server.request_count(),
        0,
        "nothing of a half-recorded run is sent"
    );
    // The task's next run removes it, then records and sends every license, once.
    test.keyhook(["run-task", "all"]).assert().success();
    assert_eq!(re_sends(&server), 0);
    assert_eq!(by_key(&server).len(), 300);
    assert_eq!(recording_in_state(&test), Some((1, 300, false)));
    integrity(&test);
}

#[test]
fn prune_leaves_a_marked_run_alone_while_its_task_lock_is_held() {
    // A run being recorded right now is marked too, and its process holds the task's lock:
    // here the test holds it, beside a marked run.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(3, &server.url("/"), "");
    test.keyhook(["run-task", "all"]).assert().success();
    let state = test.path("keyhook-state.db");
    marked_run(&state, "all", None, 0, "KEY-0001");
    let held = match keyhook::state::lock::TaskLock::try_acquire(&state, "all").unwrap() {
        keyhook::state::lock::Acquired::Held(lock) => lock,
        keyhook::state::lock::Acquired::Busy(path) => panic!("{} is held", path.display()),
    };
    let prune = || {
        let output = test
            .keyhook(["prune", "--older-than", "1s"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    assert!(!prune().contains("removed"));
    assert_eq!(recording_in_state(&test), Some((2, 4, true)));
    drop(held);
    assert!(prune().contains("removed 1 run(s) killed while they were being recorded"));
    assert_eq!(recording_in_state(&test), Some((1, 3, false)));
    assert_eq!(server.request_count(), 3);
}

#[test]
fn a_run_killed_while_recording_whose_task_is_gone_is_removed_by_prune_and_troubles_no_one() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = killed_while_recording(&server);
    std::fs::remove_file(test.path("tasks/all.toml")).unwrap();
    // Not a delivery waiting for a task that is gone: `retry` and `run-due` have nothing to
    // say of it.
    for command in ["retry", "run-due"] {
        let output = test.keyhook([command]).output().unwrap();
        assert!(output.status.success(), "{command}: {}", stderr(&output));
        assert!(
            !stderr(&output).contains("all"),
            "{command}: {}",
            stderr(&output)
        );
    }
    let pruned = test
        .keyhook(["prune", "--older-than", "30d"])
        .output()
        .unwrap();
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert!(
        stdout(&pruned).contains("removed 1 run(s) killed while they were being recorded"),
        "{}",
        stdout(&pruned)
    );
    assert_eq!(recording_in_state(&test), Some((0, 0, false)));
    assert_eq!(server.request_count(), 0);
    integrity(&test);
}

/// How many requests reached `server` beyond one per license: deliveries sent again.
fn re_sends(server: &Server) -> usize {
    by_key(server)
        .values()
        .map(|requests| requests.len() - 1)
        .sum()
}

/// How many deliveries the state file holds as delivered (read while keyhook runs).
fn delivered_in_state(test: &Test) -> i64 {
    let path = test.path("keyhook-state.db");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        [],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn answers_are_committed_without_waiting_for_more_so_a_kill_re_sends_only_the_one_in_flight() {
    // Outcomes are committed in groups, but within a few milliseconds of their answer: while
    // request 300 is held, the 299 answered before it reach the state file without any
    // further answer, and a SIGKILL then re-sends the held one alone.
    let (server, gate, _) = holding_from(300);
    let test = many(400, &server.url("/"), "");
    let mut child = test.process(["run-task", "all"]).spawn().unwrap();
    assert!(gate.wait_arrived(1), "request 300 is out");
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered_in_state(&test) < 299 {
        assert!(
            Instant::now() < deadline,
            "the answered deliveries were never committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    gate.open();
    assert_eq!(delivered_in_state(&test), 299);
    test.keyhook(["retry"]).assert().success();
    assert_all_arrived_once_or_identically(&server, 400);
    assert_eq!(
        re_sends(&server),
        1,
        "only the request in flight went out again"
    );
    integrity(&test);
}

#[test]
fn a_kill_at_full_speed_re_sends_at_most_the_uncommitted_window() {
    // Killed as soon as request 700 arrives: what was answered but not committed yet goes out
    // again (same id, same bytes), never more than the window keyhook states: the uncommitted
    // answers, the request in flight and the answer before it (handed in as 700 leaves).
    let window = keyhook::delivery::dispatch::MAX_UNCOMMITTED + 2;
    let (server, gate, _) = holding_from(700);
    let test = many(900, &server.url("/"), "");
    let mut child = test.process(["run-task", "all"]).spawn().unwrap();
    assert!(gate.wait_arrived(1), "request 700 is out");
    child.kill().unwrap();
    child.wait().unwrap();
    gate.open();
    integrity(&test);
    test.keyhook(["retry"]).assert().success();
    assert_all_arrived_once_or_identically(&server, 900);
    let again = re_sends(&server);
    assert!(
        (1..=window).contains(&again),
        "{again} re-sends, at most {window}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_sending_threads_are_named_for_top_and_perf() {
    // `top -H`, `ps -L` and perf tell the threads apart by name: while the first request is
    // held, each of the run's two workers is there as keyhook-sendN.
    let (server, gate, _) = holding_from(1);
    let test = many(5, &server.url("/"), "");
    let mut child = spawn(&test, ["run-task", "all", "--concurrency", "2"]);
    assert!(gate.wait_arrived(1), "a request is out");
    // A thread names itself once it runs: look until both have, or a minute has passed.
    let wanted = ["keyhook-send1", "keyhook-send2"];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut names = thread_names(child.id());
    while !wanted
        .iter()
        .all(|name| names.iter().any(|seen| seen == name))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
        names = thread_names(child.id());
    }
    gate.open();
    assert!(child.wait().unwrap().success());
    for name in wanted {
        assert!(names.iter().any(|seen| seen == name), "{name} in {names:?}");
    }
    assert_eq!(server.requests().len(), 5);
}

/// The names of a process's threads, from /proc.
#[cfg(target_os = "linux")]
fn thread_names(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

#[test]
fn a_sending_thread_that_cannot_start_fails_the_run_at_once_and_loses_nothing() {
    // Run as a user of its own whose limit on processes and threads leaves room for two
    // threads: the second of four sending threads cannot start. keyhook says why and what to
    // do, exits 3 at once (it used to wait forever for the workers it had started), sends
    // nothing, and `retry` sends every delivery later.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(5, &server.url("/"), "");
    let command = test.process(["run-task", "all", "--concurrency", "4"]);
    let Some(limited) = as_user_with_threads(command, 54321, 2) else {
        return;
    };
    let output = finish_within_a_minute(&test, limited);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    // Which thread fails depends on when the reader's exit is counted: "2 of 4" or "1 of 4".
    assert!(
        error.contains("could not start sending thread ")
            && error.contains(" of 4")
            && error.contains("`ulimit -u`")
            && error.contains("`keyhook retry`"),
        "{error}"
    );
    assert!(server.requests().is_empty(), "nothing was sent");
    test.keyhook(["retry"]).assert().success();
    assert_all_arrived_once_or_identically(&server, 5);
}

#[test]
fn a_reader_thread_that_cannot_start_fails_the_run_and_records_nothing() {
    // Room for the main thread alone: the licenses cannot be read on a thread of their own.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(5, &server.url("/"), "");
    let command = test.process(["run-task", "all"]);
    let Some(limited) = as_user_with_threads(command, 54322, 1) else {
        return;
    };
    let output = finish_within_a_minute(&test, limited);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("could not start a thread to read the licenses")
            && error.contains("nothing was recorded"),
        "{error}"
    );
    assert!(server.requests().is_empty());
    let log = test.keyhook(["log", "--task", "all"]).output().unwrap();
    assert!(stdout(&log).contains("no deliveries"), "{}", stdout(&log));
    test.keyhook(["run-task", "all"]).assert().success();
    assert_all_arrived_once_or_identically(&server, 5);
}

#[test]
fn an_https_webhook_at_a_host_name_is_looked_up_on_the_sending_thread_when_no_other_can_start() {
    // An https:// webhook goes through ureq, whose own name lookup starts a thread and panics
    // when it cannot: the run ended with "a sending thread stopped on an internal error". The
    // lookup is now keyhook's own, which looks the name up on the sending thread when no
    // thread of its own can start, so the run goes as any other (here: connection refused,
    // retried later, exit 1), and `retry` tries all 5 again.
    let port = ClosedPort::new();
    let url = port
        .url("/")
        .replace("http://127.0.0.1:", "https://localhost:");
    let test = many(5, &url, "");
    let command = test.process(["run-task", "all"]);
    let Some(limited) = as_user_with_threads(command, 54323, 2) else {
        return;
    };
    let output = finish_within_a_minute(&test, limited);
    let (said, error) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{said}{error}");
    assert!(said.contains("5 failed"), "{said}{error}");
    assert!(!error.contains("panicked"), "{error}");
    let retried = test
        .keyhook(["retry", "--now", &later(600)])
        .output()
        .unwrap();
    assert!(
        stdout(&retried).contains("retried 5"),
        "{}",
        stdout(&retried)
    );
}

#[test]
fn an_https_webhook_at_an_ip_address_needs_no_thread_to_look_it_up() {
    // The same limit, but the host is an IP address: taken as it is, no lookup, no thread, so
    // the run goes as any other (here: connection refused, retried later, exit 1).
    let port = ClosedPort::new();
    let test = many(5, &port.url("/").replace("http://", "https://"), "");
    let command = test.process(["run-task", "all"]);
    let Some(limited) = as_user_with_threads(command, 54325, 2) else {
        return;
    };
    let output = finish_within_a_minute(&test, limited);
    let (said, error) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{said}{error}");
    assert!(said.contains("5 failed"), "{said}{error}");
    assert!(!error.contains("panicked"), "{error}");
}

#[test]
fn retry_goes_on_with_the_other_tasks_when_one_cannot_start_its_threads() {
    // Every first attempt fails; then `retry` runs with room for two threads: task `one`
    // (one sender) sends its five, task `four` (four senders) cannot start its second and
    // says so by name, and the exit is 3.
    let server = failing_first(10, Reply::status(503));
    let test = many(5, &server.url("/"), "").task("four", "all", &server.url("/"), "");
    let text = std::fs::read_to_string(test.path("tasks/four.toml")).unwrap();
    let test = test.write("tasks/four.toml", &format!("concurrency = 4\n{text}"));
    test.keyhook(["run-task", "all"]).assert().code(1);
    test.keyhook(["run-task", "four"]).assert().code(1);
    assert_eq!(server.request_count(), 10);
    let command = test.process(["retry", "--now", &later(600)]);
    let Some(limited) = as_user_with_threads(command, 54324, 2) else {
        return;
    };
    let output = finish_within_a_minute(&test, limited);
    let (said, error) = (stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(3), "{said}{error}");
    assert!(
        said.contains("error: four: could not start sending thread "),
        "{said}{error}"
    );
    assert_eq!(server.request_count(), 15, "task `all` sent its five");
}

/// Runs `command` (the folder opened to its user first), killing it if it is still running
/// after a minute.
fn finish_within_a_minute(test: &Test, mut command: std::process::Command) -> std::process::Output {
    open_to_everyone(test.dir.path());
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("keyhook still runs after a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Lets every user read and write `path` and everything in it (the state files that root
/// made, for a test's own user).
fn open_to_everyone(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.is_dir();
    let mode = if dir { 0o777 } else { 0o666 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    if dir {
        for entry in std::fs::read_dir(path).unwrap() {
            open_to_everyone(&entry.unwrap().path());
        }
    }
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_143() {
    let (server, gate, _) = holding_from(3);
    let test = many(40, &server.url("/"), "");
    let child = spawn(&test, ["run-task", "all"]);
    assert!(gate.wait_arrived(1), "the third request is out");
    unsafe_kill(child.id(), "TERM");
    // Answered only once keyhook has taken the signal: the request is in flight at the stop.
    wait_until_taken(child.id(), 15);
    gate.open();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("stopped by a signal"),
        "{}",
        stdout(&output)
    );
    let sent = server.request_count();
    let log = test
        .keyhook(["log", "--status", "delivered", "--json", "--limit", "1000"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&log).lines().count(),
        sent,
        "every request sent was recorded as delivered"
    );
    test.keyhook(["retry"]).assert().success();
    assert_all_arrived_once_or_identically(&server, 40);
    assert_eq!(
        server.request_count(),
        40,
        "no duplicates after a clean stop"
    );
}

/// A stop does not wait for a long search to end (or its deadline): the search is stopped at
/// once, nothing is sent, and the exit says the signal (143), not a database error (3).
#[test]
fn sigterm_stops_a_long_search_at_once() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(200, &server.url("/"), "")
        .write("keyhook.toml", "query_timeout = \"120s\"\n")
        // 200^4 rows to count: minutes of work, far past the test's bound.
        .search(
            "all",
            "(SELECT count(*) FROM LicenseKeys a, LicenseKeys b, LicenseKeys c, LicenseKeys d) > 0",
        );
    let child = test
        .process(["run-task", "all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_caught(child.id(), 15);
    let stopping = Instant::now();
    unsafe_kill(child.id(), "TERM");
    let output = child.wait_with_output().unwrap();
    let took = stopping.elapsed();
    assert_eq!(output.status.code(), Some(143), "{output:?}");
    assert!(
        stderr(&output).contains("the search was stopped by SIGTERM before it ended"),
        "{}",
        stderr(&output)
    );
    assert!(took < Duration::from_secs(60), "stopped after {took:?}");
    assert_eq!(server.request_count(), 0);
}

/// Waits until process `pid` catches signal number `signal` (its handler is installed: the
/// `SigCgt` mask of `/proc/<pid>/status`).
fn wait_until_caught(pid: u32, signal: u32) {
    let bit = 1u64 << (signal - 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if mask_has(&status, &["SigCgt:"], bit) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} never caught signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until no thread of process `pid` has signal number `signal` pending: its handler has
/// run. (Linux: the `SigPnd` and `ShdPnd` masks in `/proc/<pid>/task/*/status`.)
fn wait_until_taken(pid: u32, signal: u32) {
    let bit = 1u64 << (signal - 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(pid, bit) {
        assert!(Instant::now() < deadline, "signal {signal} never taken");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pending(pid: u32, bit: u64) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        mask_has(&status, &["SigPnd:", "ShdPnd:"], bit)
    })
}

/// Whether one of the signal masks `fields` of a `/proc` status text has `bit` set.
fn mask_has(status: &str, fields: &[&str], bit: u64) -> bool {
    status.lines().any(|line| {
        fields
            .iter()
            .find_map(|field| line.strip_prefix(field))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & bit != 0)
    })
}

#[test]
fn a_receiver_failing_the_first_requests_gets_them_on_retry() {
    let server = failing_first(3, Reply::status(503));
    let test = many(5, &server.url("/"), "");
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("5 matched, 2 delivered, 3 failed"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("3 failed deliveries will be retried"),
        "{}",
        stdout(&output)
    );
    let _redacted = test.redacted().bind_to_scope();
    let status = test.keyhook(["status"]).output().unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    insta::assert_snapshot!("status_with_failures", stdout(&status));
    // Not due yet: the first wait is 5 s (±10%).
    let early = test
        .keyhook(["retry", "--now", &later(2)])
        .output()
        .unwrap();
    assert!(early.status.success());
    assert_eq!(server.request_count(), 5);
    let output = test
        .keyhook(["retry", "--now", &later(10)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        stdout(&output).contains("all: retried 3, 3 delivered, 0 failed"),
        "{}",
        stdout(&output)
    );
    assert_all_arrived_once_or_identically(&server, 5);
    let log = test
        .keyhook(["log", "--json", "--attempts"])
        .output()
        .unwrap();
    assert!(log.status.success(), "{}", stderr(&log));
    insta::assert_snapshot!("log_json_attempts", stdout(&log));
    let status = test.keyhook(["status"]).output().unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    insta::assert_snapshot!("status_all_delivered", stdout(&status));
}

#[test]
fn a_receiver_down_then_back_gets_everything() {
    let down = ClosedPort::new();
    let test = many(4, &down.url("/hook"), "retry_interval = \"1h\"");
    assert_eq!(code(&test, ["run-task", "all"]), Some(1));
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let _back = down.forward_to(&server);
    test.keyhook(["retry", "--now", &later(3601)])
        .assert()
        .success();
    assert_all_arrived_once_or_identically(&server, 4);
    let log = test
        .keyhook(["log", "--json", "--attempts"])
        .output()
        .unwrap();
    for line in stdout(&log).lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(entry["status"], "delivered");
        assert_eq!(entry["attempts"].as_array().unwrap().len(), 2);
        assert!(
            entry["attempts"][0]["error"]
                .as_str()
                .unwrap()
                .contains("connection"),
            "{entry}"
        );
    }
}

#[test]
fn retry_after_on_429_is_honoured() {
    let server = failing_first(1, Reply::status(429).with_header("Retry-After", "120"));
    let test = many(1, &server.url("/"), "");
    assert_eq!(code(&test, ["run-task", "all"]), Some(1));
    test.keyhook(["retry", "--now", &later(60)])
        .assert()
        .success();
    assert_eq!(server.request_count(), 1, "not before Retry-After");
    test.keyhook(["retry", "--now", &later(121)])
        .assert()
        .success();
    assert_eq!(server.request_count(), 2);
}

#[test]
fn a_delivery_dies_after_max_retries_and_log_shows_it() {
    let server = Server::start("127.0.0.1:0", |_| {
        Reply::status(500).with_body("still broken")
    })
    .unwrap();
    let test = many(
        1,
        &server.url("/"),
        "max_retries = 2\nretry_interval = \"1m\"",
    );
    assert_eq!(code(&test, ["run-task", "all"]), Some(1));
    assert_eq!(code(&test, ["retry", "--now", &later(61)]), Some(1));
    let last = test
        .keyhook(["retry", "--now", &later(122)])
        .output()
        .unwrap();
    assert_eq!(last.status.code(), Some(1));
    assert!(
        stdout(&last).contains("1 deliveries are dead"),
        "{}",
        stdout(&last)
    );
    // Nothing more is due, ever.
    test.keyhook(["retry", "--now", &later(100_000)])
        .assert()
        .success();
    assert_eq!(server.request_count(), 3);
    let dead = test.keyhook(["log", "--status", "dead"]).output().unwrap();
    let text = stdout(&dead);
    assert!(
        text.contains("KEY-0001") && text.contains("gave up after 2 retries"),
        "{text}"
    );
    assert!(
        text.contains("HTTP 500 Internal Server Error: still broken"),
        "{text}"
    );
}

#[test]
fn client_errors_are_not_retried_and_410_disables_the_webhook_loudly() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(404)).unwrap();
    let test = many(2, &server.url("/"), "");
    assert_eq!(code(&test, ["run-task", "all"]), Some(1));
    test.keyhook(["retry", "--now", &later(100_000)])
        .assert()
        .success();
    assert_eq!(server.request_count(), 2, "a 404 is not retried");

    let gone = Server::start("127.0.0.1:0", |_| Reply::status(410)).unwrap();
    let test = many(3, &gone.url("/"), "");
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("answered 410 Gone: the webhook of task `all` is DISABLED"),
        "{}",
        stdout(&output)
    );
    assert_eq!(gone.request_count(), 1, "nothing more after the 410");
    let again = test
        .keyhook(["run-task", "all", "--force"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stdout(&again).contains("webhook DISABLED"),
        "{}",
        stdout(&again)
    );
    // What waits is counted over both runs: 2 left by the first, 3 recorded by this one.
    assert!(
        stdout(&again).contains("5 deliveries wait (3 of them from this run)"),
        "{}",
        stdout(&again)
    );
    assert_eq!(gone.request_count(), 1);
    let status = test.keyhook(["status"]).output().unwrap();
    assert!(
        stdout(&status).contains("DISABLED: 410 Gone"),
        "{}",
        stdout(&status)
    );
    assert!(
        stdout(&status)
            .contains("5 deliveries wait in all (pending or failed), 2 of them from earlier runs"),
        "{}",
        stdout(&status)
    );

    // Fixed: point the task elsewhere and re-enable; the waiting deliveries go out.
    let fixed = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = test.task("all", "all", &fixed.url("/"), "");
    // One sent by hand first, to try the new url: said to go to a disabled webhook.
    let log = stdout(
        &test
            .keyhook(["log", "--json", "--status", "pending"])
            .output()
            .unwrap(),
    );
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    let tried = test
        .keyhook(["resend", first["id"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(tried.status.success(), "{}", stderr(&tried));
    assert!(
        stderr(&tried).contains("webhook DISABLED"),
        "{}",
        stderr(&tried)
    );
    assert_eq!(fixed.request_count(), 1);
    // `check` says it too: the files are valid, but nothing is sent until it is enabled.
    let checked = test.keyhook(["check"]).output().unwrap();
    assert!(checked.status.success(), "{}", stdout(&checked));
    assert!(
        stdout(&checked).contains("webhook DISABLED since ")
            && stdout(&checked).contains("`keyhook enable all`"),
        "{}",
        stdout(&checked)
    );
    test.keyhook(["enable", "all"]).assert().success();
    assert!(!stdout(&test.keyhook(["check"]).output().unwrap()).contains("DISABLED"));
    test.keyhook(["retry"]).assert().success();
    assert_eq!(
        fixed.request_count(),
        5,
        "2 left from the first run, 3 from the forced one (one of them resent by hand)"
    );
}

#[test]
fn two_concurrent_runs_of_one_task_never_double_send() {
    // The first run is held in its first request until the gate opens.
    let (server, gate, _) = holding_from(1);
    let test = many(20, &server.url("/"), "");
    let first = spawn(&test, ["run-task", "all"]);
    assert!(gate.wait_arrived(1));
    let second = test
        .keyhook(["run-task", "all", "--force"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(75), "{}", stderr(&second));
    assert!(stderr(&second).contains("task `all` is being run by another keyhook process"));
    // Without --force too: its slot has a run, but that run has not ended.
    let plain = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(plain.status.code(), Some(75), "{}", stdout(&plain));
    assert!(stderr(&plain).contains("is being run by another keyhook process"));
    let retry = test.keyhook(["retry"]).output().unwrap();
    assert_eq!(
        retry.status.code(),
        Some(75),
        "a retry leaves a running task alone"
    );
    assert!(stdout(&retry).contains("another keyhook process is running it"));
    assert_eq!(
        gate.expired(),
        0,
        "the first run was mid-request all along: the others did not wait for it"
    );
    gate.open();
    let output = first.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(server.request_count(), 20);
    assert_eq!(by_key(&server).len(), 20);
}

#[test]
fn resend_sends_the_same_delivery_again() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(1, &server.url("/"), "");
    test.keyhook(["run-task", "all"]).assert().success();
    let first = server.requests()[0].clone();
    let id = first.header("X-Keyhook-Delivery").unwrap().to_string();
    let output = test.keyhook(["resend", &id[..12]]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(&format!("delivered {id}")));
    let again = &server.requests()[1];
    assert_eq!(again.header("X-Keyhook-Delivery"), Some(id.as_str()));
    assert_eq!(again.body, first.body);
    assert_eq!(
        again.header("X-QLM-Signature"),
        first.header("X-QLM-Signature")
    );
    let missing = test.keyhook(["resend", "msg_nope"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

/// `resend` to a receiver that still fails is one POST: the failure is scheduled by the
/// retry policy, not sent again at once until the delivery's retries are spent (it was: ten
/// POSTs in a second, then dead).
#[test]
fn resend_to_a_failing_receiver_is_one_attempt() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(500)).unwrap();
    let test = many(1, &server.url("/"), "");
    let run = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    let id = server.requests()[0]
        .header("X-Keyhook-Delivery")
        .unwrap()
        .to_string();
    let output = test.keyhook(["resend", &id]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(server.request_count(), 2, "{}", stdout(&output));
    let log = stdout(&test.keyhook(["log", "--json"]).output().unwrap());
    assert!(
        log.contains("\"failed\""),
        "still waiting for its retry: {log}"
    );
    assert!(!log.contains("\"dead\""), "{log}");
}

#[test]
fn disabled_webhooks_log_the_run_and_send_nothing() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(3, &server.url("/"), "enabled = false");
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert!(output.status.success());
    assert!(stdout(&output).contains("nothing was sent"));
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(status.contains("disabled in task file"), "{status}");
    test.keyhook(["retry", "--now", &later(100_000)])
        .assert()
        .success();
    assert_eq!(server.request_count(), 0);
}

#[test]
fn a_corrupt_state_file_is_an_error_never_a_silent_reset() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(1, &server.url("/"), "");
    let garbage = b"this is not a database, but it was precious".repeat(200);
    std::fs::write(test.path("keyhook-state.db"), &garbage).unwrap();
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("keyhook-state.db is unreadable"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("move it aside"));
    assert_eq!(
        std::fs::read(test.path("keyhook-state.db")).unwrap(),
        garbage
    );
    assert_eq!(server.request_count(), 0);
}

#[test]
fn the_state_database_holds_no_secret_and_the_exact_body() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(2, &server.url("/"), "");
    test.keyhook(["run-task", "all"]).assert().success();
    for file in ["keyhook-state.db", "keyhook-state.db-wal"] {
        if let Ok(bytes) = std::fs::read(test.path(file)) {
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{file}"
            );
        }
    }
    let conn = rusqlite::Connection::open(test.path("keyhook-state.db")).unwrap();
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT b.body FROM deliveries AS d JOIN delivery_bodies AS b USING (seq) WHERE d.activation_key = 'KEY-0001'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let sent = server
        .requests()
        .into_iter()
        .find(|r| key(r) == "KEY-0001")
        .unwrap();
    // Stored packed (the LicenseInfo's keys left out), so in fewer bytes than were sent.
    assert!(stored.len() < sent.body.len(), "the body is stored packed");
    let body = keyhook::licenses::license_info::unpack_body(&stored).unwrap();
    assert_eq!(body.as_ref(), sent.body.as_slice());
}

/// A stored body damaged on disk (a packed body cut short) holds back nothing: that delivery
/// is given up, dead with the reason in the log, never sent with other bytes; the others go
/// out, and the exit says a delivery is dead.
#[test]
fn a_damaged_stored_body_is_given_up_and_the_others_are_sent() {
    let server = failing_first(5, Reply::status(500));
    let test = many(5, &server.url("/"), "");
    assert_eq!(code(&test, ["run-task", "all"]), Some(1));
    let conn = rusqlite::Connection::open(test.path("keyhook-state.db")).unwrap();
    conn.execute_batch(
        "UPDATE delivery_bodies SET body = substr(body, 1, 60)
             WHERE seq = (SELECT seq FROM deliveries WHERE activation_key = 'KEY-0003');
         UPDATE deliveries SET next_attempt_at = 0;",
    )
    .unwrap();
    let retry = test.keyhook(["retry"]).output().unwrap();
    assert_eq!(retry.status.code(), Some(1), "{}", stdout(&retry));
    assert!(
        stdout(&retry).contains("1 deliveries are dead"),
        "{}",
        stdout(&retry)
    );
    let received = by_key(&server);
    assert_eq!(received["KEY-0003"].len(), 1, "only the first attempt");
    for other in ["KEY-0001", "KEY-0002", "KEY-0004", "KEY-0005"] {
        assert_eq!(received[other].len(), 2, "{other}");
        assert_eq!(received[other][0].body, received[other][1].body, "{other}");
    }
    let log = stdout(&test.keyhook(["log", "--status", "dead"]).output().unwrap());
    assert!(
        log.contains("KEY-0003") && log.contains("stored body is damaged"),
        "{log}"
    );
    // Given up for good: not claimed, not sent, on the next call.
    assert_eq!(code(&test, ["retry"]), Some(0));
    assert_eq!(server.request_count(), 9);
}

#[test]
fn prune_removes_old_settled_deliveries_only() {
    let server = failing_first(1, Reply::status(500));
    let test = many(3, &server.url("/"), "retry_interval = \"400d\"");
    test.keyhook(["run-task", "all"]).output().unwrap();
    let output = test
        .keyhook(["prune", "--older-than", "90d", "--now", &later(100 * 86400)])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        stdout(&output).contains("deleted 0 settled deliveries"),
        "a run with a failed delivery is kept: {}",
        stdout(&output)
    );
    test.keyhook(["retry", "--now", &later(401 * 86400)])
        .assert()
        .success();
    let output = test
        .keyhook(["prune", "--older-than", "90d", "--now", &later(401 * 86400)])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("deleted 3 settled deliveries")
            && stdout(&output).contains("(older than 90d)"),
        "{}",
        stdout(&output)
    );
    let log = test.keyhook(["log", "--json"]).output().unwrap();
    assert_eq!(stdout(&log), "");
    // The run is gone, not the fact that the task ran.
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(
        status.contains("(pruned)") && !status.contains("never"),
        "{status}"
    );
}

#[test]
fn concurrency_sends_each_delivery_once_over_several_connections() {
    let (server, most) = meeting_overlap();
    let test = many(64, &server.url("/"), "");
    let output = test
        .keyhook(["run-task", "all", "--concurrency", "8"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("64 matched, 64 delivered, 0 failed"),
        "{}",
        stdout(&output)
    );
    assert_eq!(server.request_count(), 64, "no delivery sent twice");
    assert_eq!(by_key(&server).len(), 64);
    assert!(
        server.connection_count() > 1 && server.connection_count() <= 8,
        "{} connections",
        server.connection_count()
    );
    // Several requests in hand at once, rather than a time bound that a busy machine misses.
    let most = most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} requests at once");
    let log = test
        .keyhook(["log", "--status", "delivered", "--json", "--limit", "1000"])
        .output()
        .unwrap();
    assert_eq!(stdout(&log).lines().count(), 64);
}

#[test]
fn retry_sends_with_the_tasks_own_concurrency() {
    // Every first attempt fails; the retries, the backlog after an outage, go out with the
    // task file's `concurrency`, as a run does.
    let most = Arc::new(AtomicUsize::new(0));
    let (now, calls) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let seen = Arc::clone(&most);
    let server = Server::start("127.0.0.1:0", move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) < 24 {
            return Reply::status(503);
        }
        hold_until_met(&now, &seen);
        Reply::ok()
    })
    .unwrap();
    let test = many(24, &server.url("/"), "");
    let text = std::fs::read_to_string(test.path("tasks/all.toml")).unwrap();
    let test = test.write("tasks/all.toml", &format!("concurrency = 4\n{text}"));
    let first = test.keyhook(["run-task", "all"]).output().unwrap();
    assert_eq!(server.request_count(), 24, "{}", stdout(&first));
    assert!(stdout(&first).contains("24 failed"), "{}", stdout(&first));
    let output = test
        .keyhook(["retry", "--now", &later(600)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.request_count(), 48, "each retried once");
    let most = most.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} retries at once");
}

/// A receiver that takes `millis` per request and tells the most requests it had in hand at
/// once.
fn counting_overlap(millis: u64) -> (Server, Arc<AtomicUsize>) {
    let most = Arc::new(AtomicUsize::new(0));
    let now = AtomicUsize::new(0);
    let seen = Arc::clone(&most);
    let server = Server::start("127.0.0.1:0", move |_| {
        let current = now.fetch_add(1, Ordering::SeqCst) + 1;
        seen.fetch_max(current, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(millis));
        now.fetch_sub(1, Ordering::SeqCst);
        Reply::ok()
    })
    .unwrap();
    (server, most)
}

/// A receiver that keeps each request until another one is in hand too (1 s at most) and
/// tells the most it had in hand at once: requests sent together meet, however slow the
/// machine, where a fixed hold could end before the next one came.
fn meeting_overlap() -> (Server, Arc<AtomicUsize>) {
    let most = Arc::new(AtomicUsize::new(0));
    let now = AtomicUsize::new(0);
    let seen = Arc::clone(&most);
    let server = Server::start("127.0.0.1:0", move |_| {
        hold_until_met(&now, &seen);
        Reply::ok()
    })
    .unwrap();
    (server, most)
}

/// Counts a request in hand (`now`, the most at once in `most`) until another is too, 1 s at
/// most.
fn hold_until_met(now: &AtomicUsize, most: &AtomicUsize) {
    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
    most.fetch_max(current, Ordering::SeqCst);
    // The last request of a run has no one to meet: it waits the whole second.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while now.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    now.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn by_default_one_request_at_a_time_and_with_concurrency_several() {
    // Sequential sending commits each outcome while the next request is out; it must still
    // never have two requests out at once.
    let (server, most) = counting_overlap(5);
    let test = many(40, &server.url("/"), "");
    let output = test.keyhook(["run-task", "all"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.request_count(), 40);
    assert_eq!(most.load(Ordering::SeqCst), 1, "requests overlapped");
    assert_eq!(server.connection_count(), 1);

    let (server, most) = meeting_overlap();
    let test = many(40, &server.url("/"), "");
    let output = test
        .keyhook(["run-task", "all", "--concurrency", "4"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.request_count(), 40);
    let most = most.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} requests at once");
}

/// `tasks/all.toml` with `[webhook] enabled = false` (or back to true).
fn switch_task(test: &Test, on: bool) {
    let path = test.path("tasks/all.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("\nenabled = false\n", "\n");
    let text = match on {
        true => text,
        false => text.replace("[webhook]\n", "[webhook]\nenabled = false\n"),
    };
    std::fs::write(&path, text).unwrap();
}

#[test]
fn retries_wait_while_the_task_s_webhook_or_every_webhook_is_switched_off() {
    let server = failing_first(3, Reply::status(503));
    let test = many(3, &server.url("/"), "");
    test.keyhook(["run-task", "all"]).assert().code(1);
    assert_eq!(server.request_count(), 3);
    // The task's own switch: `retry` and `run-due` send nothing and say why.
    switch_task(&test, false);
    for command in ["retry", "run-due"] {
        let output = test
            .keyhook([command, "--now", &later(600)])
            .output()
            .unwrap();
        let said = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{command}: {said}");
        assert!(
            said.contains("all: retries wait: [webhook] enabled = false in "),
            "{command}: {said}"
        );
    }
    assert_eq!(server.request_count(), 3);
    // Every webhook's switch, the task's own back on.
    switch_task(&test, true);
    let test = test.write("keyhook.toml", "webhooks_enabled = false\n");
    let output = test
        .keyhook(["retry", "--now", &later(600)])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("retries wait: webhooks_enabled = false in keyhook.toml"),
        "{}",
        stdout(&output)
    );
    assert_eq!(server.request_count(), 3);
    let test = test.write("keyhook.toml", "webhooks_enabled = true\n");
    let output = test
        .keyhook(["retry", "--now", &later(600)])
        .output()
        .unwrap();
    assert!(stdout(&output).contains("retried 3"), "{}", stdout(&output));
    assert_eq!(server.request_count(), 6);
}

#[test]
fn resend_sends_nothing_while_every_webhook_is_switched_off_and_says_so() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = many(1, &server.url("/"), "");
    test.keyhook(["run-task", "all"]).assert().success();
    let id = server.requests()[0]
        .header("X-Keyhook-Delivery")
        .unwrap()
        .to_string();
    let test = test.write("keyhook.toml", "webhooks_enabled = false\n");
    let output = test.keyhook(["resend", &id]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("webhooks_enabled = false in keyhook.toml"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.request_count(), 1);
    let log = stdout(&test.keyhook(["log", "--json"]).output().unwrap());
    assert!(log.contains("\"delivered\""), "left as it was: {log}");
    // The task's own switch off: sent by hand all the same, with a warning.
    let test = test.write("keyhook.toml", "webhooks_enabled = true\n");
    switch_task(&test, false);
    let output = test.keyhook(["resend", &id]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("its webhook is disabled"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.request_count(), 2);
}

#[test]
fn a_removed_task_s_deliveries_never_go_to_another_task_called_like_it() {
    let server = failing_first(2, Reply::status(503));
    let test = many(2, &server.url("/gone"), "");
    test.keyhook(["run-task", "all"]).assert().code(1);
    std::fs::remove_file(test.path("tasks/all.toml")).unwrap();
    let other = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = test.write(
        "tasks/zz.toml",
        &format!(
            "name = \"ALL\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\n[webhook]\n\
             url = \"{}\"\nsecret = \"other-secret\"\n",
            other.url("/zz")
        ),
    );
    let output = test
        .keyhook(["retry", "--now", &later(600)])
        .output()
        .unwrap();
    let said = stdout(&output);
    assert!(
        said.contains("all: deliveries wait, but tasks/all.toml is gone or invalid"),
        "{said}"
    );
    assert_eq!(other.request_count(), 0, "{said}");
    assert_eq!(server.request_count(), 2);
    // The log finds them by their stem, though another task is called that now.
    let log = stdout(
        &test
            .keyhook(["log", "--task", "all", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(log.lines().count(), 2, "{log}");
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(
        status.contains("all: 2 deliveries wait, but tasks/all.toml is gone"),
        "{status}"
    );
}
