//! keyhook's state on PostgreSQL, shared by several hosts: the same behaviour as the SQLite
//! state (each case below runs against both), each slot run by one host, deliveries claimed
//! with a lease that another host takes over after a SIGKILL, and `state migrate`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keyhook::receiver::{Reply, Server};

use crate::postgres::Schema;
use crate::support::gate::Gate;
use crate::support::{Test, later, marked_run, stdout};

/// Where a test keeps its state.
enum Backend {
    Sqlite,
    Postgres(Schema),
}

impl Backend {
    /// The back end, or `None` when the PostgreSQL tests are skipped (outside CI).
    fn new(postgres: bool) -> Option<Backend> {
        if postgres {
            Schema::new().map(Backend::Postgres)
        } else {
            Some(Backend::Sqlite)
        }
    }

    /// `test` with its state here.
    fn apply(&self, test: Test) -> Test {
        match self {
            Backend::Sqlite => test,
            Backend::Postgres(schema) => test.env("KEYHOOK_STATE", &state_url(schema)),
        }
    }
}

fn state_url(schema: &Schema) -> String {
    let joiner = if schema.base.contains('?') { '&' } else { '?' };
    format!("{}{joiner}schema={}", schema.base, schema.name)
}

/// Each case once per back end: `<case>_on_sqlite` and `<case>_on_postgres`.
macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test] fn $case() { if let Some(backend) = super::Backend::new(false) { super::$case(&backend) } })*
        }
        mod on_postgres {
            $(#[test] fn $case() { if let Some(backend) = super::Backend::new(true) { super::$case(&backend) } })*
        }
    };
}

mod commands;

on_both!(
    a_run_delivers_everything_and_log_and_status_say_so,
    a_slot_runs_once,
    failures_are_retried_with_the_same_id_and_bytes,
    resend_sends_the_same_id_and_bytes,
    a_slot_whose_run_could_not_be_recorded_runs_at_the_next_call,
    a_slot_whose_secret_was_missing_runs_once_it_is_there,
    a_removed_task_s_waiting_deliveries_can_be_given_up,
    a_webhook_keeps_its_last_delivery_when_prune_deletes_it,
);

/// `prune` deletes the deliveries a webhook's "last delivered" was read off: it stays.
fn a_webhook_keeps_its_last_delivery_when_prune_deletes_it(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(Test::new().write(
        "webhooks/hook.toml",
        &format!(
            "name = \"hook\"\nurl = \"{}\"\nevents = [\"license.*\"]\nsecret = \"s3cret\"\n",
            server.url("/")
        ),
    ));
    test.keyhook(["events", "install"]).assert().success();
    test.simple_license(1, "2026-12-01T00:00:00");
    test.keyhook(["dispatch"]).assert().success();
    let last = |test: &Test| -> serde_json::Value {
        let listed = test
            .keyhook(["webhooks", "list", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap()[0]["last_delivery"]
            .clone()
    };
    let before = last(&test);
    assert!(before.is_i64(), "delivered: {before}");
    let pruned = test
        .keyhook(["prune", "--older-than", "1h"])
        .env("KEYHOOK_NOW", later(2 * 3600))
        .output()
        .unwrap();
    assert!(
        stdout(&pruned).contains("deleted 1 settled deliveries"),
        "{}",
        stdout(&pruned)
    );
    assert_eq!(last(&test), before, "not \"never\" once the rows are gone");
}

/// `count` matching licenses and a task `stem` posting them to `url`.
fn licenses(test: Test, count: i64) -> Test {
    let test = test.search("all", "SubscriptionExpiryDate > '2000-01-01'");
    for id in 1..=count {
        test.simple_license(id, "2027-01-01T00:00:00");
    }
    test
}

fn ids(server: &Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| {
            r.header("X-Keyhook-Delivery")
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn a_run_delivers_everything_and_log_and_status_say_so(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(licenses(Test::new(), 5).task("t", "all", &server.url("/"), ""));
    let run = test.keyhook(["run-task", "t"]).output().unwrap();
    assert!(run.status.success(), "{}", stdout(&run));
    assert!(
        stdout(&run).contains("5 matched, 5 delivered, 0 failed"),
        "{}",
        stdout(&run)
    );
    let sent: HashSet<String> = ids(&server).into_iter().collect();
    assert_eq!(sent.len(), 5);
    let log = test.keyhook(["log", "--json"]).output().unwrap();
    let logged: HashSet<String> = stdout(&log)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .inspect(|entry| assert_eq!(entry["status"], "delivered"))
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(logged, sent);
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(status.contains("┆ 5 "), "{status}");
}

fn a_slot_runs_once(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(licenses(Test::new(), 2).task("t", "all", &server.url("/"), ""));
    test.keyhook(["run-task", "t"]).assert().success();
    let again = test.keyhook(["run-task", "t"]).output().unwrap();
    assert!(again.status.success());
    assert!(stdout(&again).contains("already ran"), "{}", stdout(&again));
    assert_eq!(server.request_count(), 2);
}

fn a_slot_whose_run_could_not_be_recorded_runs_at_the_next_call(backend: &Backend) {
    // The license database is away when the slot comes: the run fails before anything is
    // recorded. On a shared state its claim on the slot went back, so the next call runs it
    // (it used to say the slot was run by this very host, exit 0, until the lease ran out).
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(licenses(Test::new(), 2).task("t", "all", &server.url("/"), ""));
    test.keyhook(["run-due"]).assert().success();
    let (db, away) = (test.path("licenses.db"), test.path("licenses.away"));
    std::fs::rename(&db, &away).unwrap();
    let failed = test
        .keyhook(["run-due", "--now", &later(86_400)])
        .output()
        .unwrap();
    assert!(!failed.status.success(), "{}", stdout(&failed));
    std::fs::rename(&away, &db).unwrap();
    let again = test.keyhook(["run-due", "--now", &later(86_400)]);
    the_slot_runs_now(again, &server);
}

/// `run-due` (for the next day's slot) runs the slot: both licenses delivered.
fn the_slot_runs_now(mut run_due: assert_cmd::Command, server: &Server) {
    let again = run_due.output().unwrap();
    let said = both(&again);
    assert!(again.status.success(), "{said}");
    assert!(said.contains("2 delivered"), "{said}");
    assert_eq!(server.request_count(), 2);
}

/// A command's stdout and stderr, one after the other.
fn both(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn a_slot_whose_secret_was_missing_runs_once_it_is_there(backend: &Backend) {
    // The same after the slot is claimed and before the run is recorded: the webhook's secret
    // is read from an environment variable that is not set.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(licenses(Test::new(), 2).write(
        "tasks/t.toml",
        &format!(
            "name = \"t\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\n[webhook]\n\
             url = \"{}\"\nsecret_env = \"KEYHOOK_TEST_T_SECRET\"\n",
            server.url("/")
        ),
    ));
    // Said from the first call (exit 2), hours before the slot; the task is still seen.
    let first = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(first.status.code(), Some(2), "{}", both(&first));
    assert!(
        both(&first).contains("KEYHOOK_TEST_T_SECRET"),
        "{}",
        both(&first)
    );
    let failed = test
        .keyhook(["run-due", "--now", &later(86_400)])
        .output()
        .unwrap();
    let said = both(&failed);
    assert!(!failed.status.success(), "{said}");
    assert!(said.contains("KEYHOOK_TEST_T_SECRET"), "{said}");
    let mut again = test.keyhook(["run-due", "--now", &later(86_400)]);
    again.env("KEYHOOK_TEST_T_SECRET", "now-set");
    the_slot_runs_now(again, &server);
}

fn a_removed_task_s_waiting_deliveries_can_be_given_up(backend: &Backend) {
    // Task `t` fails its 2 deliveries, then its file goes: every run-due says they wait
    // (exit 1) until `prune --removed-tasks` gives them up; task `u`, whose file is there
    // but broken, keeps its own.
    let server = Server::start("127.0.0.1:0", |_| Reply::status(503)).unwrap();
    let test = backend.apply(
        licenses(Test::new(), 2)
            .task("t", "all", &server.url("/"), "")
            .task("u", "all", &server.url("/"), ""),
    );
    test.keyhook(["run-task", "t"]).assert().code(1);
    test.keyhook(["run-task", "u"]).assert().code(1);
    std::fs::remove_file(test.path("tasks/t.toml")).unwrap();
    let test = test.write("tasks/u.toml", "name = \"u\"\nsearch = \n");
    let retry = test
        .keyhook(["retry", "--now", &later(600)])
        .output()
        .unwrap();
    assert_eq!(retry.status.code(), Some(1), "{}", stdout(&retry));
    assert!(
        stdout(&retry).contains("keyhook prune --removed-tasks"),
        "{}",
        stdout(&retry)
    );
    // From a folder without tasks/ (a wrong --config) every task would look removed: refused.
    std::fs::create_dir_all(test.path("elsewhere")).unwrap();
    let wrong = test
        .keyhook(["--config", "elsewhere", "prune", "--removed-tasks"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{}", stdout(&wrong));
    let pruned = test.keyhook(["prune", "--removed-tasks"]).output().unwrap();
    let said = stdout(&pruned);
    assert!(pruned.status.success(), "{said}");
    assert!(
        said.contains("t: ") && said.contains("gave up 2 waiting deliveries"),
        "{said}"
    );
    assert!(
        said.contains("u: ") && said.contains("is there but invalid"),
        "{said}"
    );
    let log = stdout(
        &test
            .keyhook(["log", "--task", "t", "--json"])
            .output()
            .unwrap(),
    );
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{log}");
    assert!(
        entries.iter().all(|entry| entry["status"] == "dead"),
        "{log}"
    );
    assert!(log.contains("was removed"), "{log}");
    let waiting = stdout(
        &test
            .keyhook(["log", "--task", "u", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(waiting.matches("\"failed\"").count(), 2, "{waiting}");
    let again = test.keyhook(["prune", "--removed-tasks"]).output().unwrap();
    assert!(!stdout(&again).contains("gave up"), "{}", stdout(&again));
    assert_eq!(server.request_count(), 4);
    // The task's lock was the state's own: on a server, no lock file beside a URL-named path.
    let stray: Vec<_> = std::fs::read_dir(test.path("."))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("postgres"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn failures_are_retried_with_the_same_id_and_bytes(backend: &Backend) {
    let calls = AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) < 3 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = backend.apply(licenses(Test::new(), 3).task("t", "all", &server.url("/"), ""));
    assert_eq!(
        test.keyhook(["run-task", "t"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    let later = "2026-11-23T11:00:00";
    let retry = test.keyhook(["--now", later, "retry"]).output().unwrap();
    assert!(retry.status.success(), "{}", stdout(&retry));
    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    for (first, again) in requests[..3].iter().zip(&requests[3..]) {
        assert_eq!(
            first.header("X-Keyhook-Delivery"),
            again.header("X-Keyhook-Delivery")
        );
        assert_eq!(first.body, again.body);
    }
}

fn resend_sends_the_same_id_and_bytes(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(licenses(Test::new(), 1).task("t", "all", &server.url("/"), ""));
    test.keyhook(["run-task", "t"]).assert().success();
    let id = ids(&server)[0].clone();
    let resend = test.keyhook(["resend", &id]).output().unwrap();
    assert!(resend.status.success(), "{}", stdout(&resend));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("X-Keyhook-Delivery"), Some(id.as_str()));
    assert_eq!(requests[0].body, requests[1].body);
}

/// Rows of a query in the test's schema.
fn query(schema: &Schema, sql: &str) -> Vec<postgres::Row> {
    let mut client = schema.client();
    client
        .batch_execute(&format!("SET search_path = {}", schema.name))
        .unwrap();
    client.query(sql, &[]).unwrap()
}

#[test]
fn three_hosts_calling_run_due_together_run_each_slot_once_and_send_each_delivery_once() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let mut test = licenses(Test::new(), 3);
    for task in ["a", "b", "c"] {
        test = test.write(
            &format!("tasks/{task}.toml"),
            &format!(
                "name = \"{task}\"\nsearch = \"all\"\nschedule = \"every 1 hour\"\n\n\
                 [webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
                server.url("/")
            ),
        );
    }
    let test = test.env("KEYHOOK_STATE", &state_url(&schema));
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
        .unwrap()
        .and_hms_opt(0, 0, 30)
        .unwrap();
    const INSTANTS: i64 = 100;
    for hour in 0..INSTANTS {
        let now = (start + chrono::Duration::hours(hour))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let hosts: Vec<_> = ["h1", "h2", "h3"]
            .iter()
            .map(|host| {
                test.process(["--now", &now, "--host", host, "run-due"])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for host in hosts {
            let output = host.wait_with_output().unwrap();
            assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
        }
    }
    let runs = query(&schema, "SELECT task, slot, host FROM runs");
    let mut slots = HashSet::new();
    for row in &runs {
        let slot: (String, Option<i64>) = (row.get(0), row.get(1));
        assert!(slots.insert(slot.clone()), "slot {slot:?} ran twice");
    }
    assert!(
        runs.len() as i64 >= 3 * (INSTANTS - 1),
        "{} runs",
        runs.len()
    );
    let hosts: HashSet<String> = runs.iter().map(|row| row.get(2)).collect();
    println!("runs by {} hosts", hosts.len());
    let sent = ids(&server);
    let unique: HashSet<&String> = sent.iter().collect();
    assert_eq!(unique.len(), sent.len(), "a delivery id was sent twice");
    assert_eq!(
        sent.len(),
        runs.len() * 3,
        "each license of each run arrived"
    );
    let senders = query(
        &schema,
        "SELECT count(DISTINCT host) FROM attempts GROUP BY delivery_seq HAVING count(*) > 1",
    );
    assert!(senders.is_empty(), "a delivery was attempted twice");
}

#[test]
fn a_host_killed_mid_run_leaves_its_deliveries_to_another_after_the_lease() {
    let Some(schema) = Schema::new() else { return };
    let gate = Gate::new();
    let arrived = Arc::new(AtomicUsize::new(0));
    let server = Server::start("127.0.0.1:0", {
        let (gate, arrived) = (Arc::clone(&gate), Arc::clone(&arrived));
        move |_| {
            if arrived.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
                gate.hold();
            }
            Reply::ok()
        }
    })
    .unwrap();
    let test = licenses(Test::new(), 10)
        .task("t", "all", &server.url("/"), "")
        .env("KEYHOOK_STATE", &state_url(&schema))
        // Long enough that a slow machine cannot outlast it between the kill and the first
        // `retry`; its end is then brought forward in the database (below).
        .env("KEYHOOK_LEASE", "60s");
    let mut first = test
        .process(["--host", "dies", "run-task", "t"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while arrived.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the third request never came"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Outcomes are committed in groups (within 2 ms of an answer): let the two answered ones
    // land, so the kill catches only the request in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while query(&schema, "SELECT count(*) FROM attempts WHERE host = 'dies'")[0].get::<_, i64>(0)
        < 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    gate.open();
    // Its claims hold until the lease ends: another host sends nothing of them before.
    let early = test
        .keyhook(["--host", "takes-over", "retry"])
        .output()
        .unwrap();
    assert!(early.status.success(), "{}", stdout(&early));
    assert_eq!(server.request_count(), 3, "{}", stdout(&early));
    // The lease ends (by the server's clock, as every lease is read).
    query(
        &schema,
        "UPDATE deliveries SET claimed_until = now() - interval '1 second'
         WHERE claimed_by IS NOT NULL",
    );
    let after = test
        .keyhook(["--host", "takes-over", "retry"])
        .output()
        .unwrap();
    assert!(after.status.success(), "{}", stdout(&after));
    let mut by_key: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
    for request in server.requests() {
        let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let key = json["LicenseInfo"]["ActivationKey"]
            .as_str()
            .unwrap()
            .to_string();
        let id = request.header("X-Keyhook-Delivery").unwrap().to_string();
        by_key
            .entry(key)
            .or_default()
            .push((id, request.body.clone()));
    }
    assert_eq!(by_key.len(), 10, "every license arrived");
    for (key, sends) in by_key {
        assert!(
            sends.iter().all(|send| *send == sends[0]),
            "{key}: same id and bytes"
        );
    }
    let waiting = query(
        &schema,
        "SELECT count(*) FROM deliveries WHERE status <> 'delivered'",
    );
    assert_eq!(waiting[0].get::<_, i64>(0), 0);
    let log = stdout(&test.keyhook(["log"]).output().unwrap());
    assert!(log.contains("takes-over") && log.contains("dies"), "{log}");
}

#[test]
fn state_migrate_moves_history_and_pending_deliveries_once() {
    let Some(schema) = Schema::new() else { return };
    let calls = AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = licenses(Test::new(), 4).task("t", "all", &server.url("/"), "");
    assert_eq!(
        test.keyhook(["--host", "old-box", "run-task", "t"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    // A run killed while it was recorded (still marked) is no run: it does not come along.
    marked_run(&test.path("keyhook-state.db"), "u", None, 0, "K");
    rusqlite::Connection::open(test.path("keyhook-state.db"))
        .unwrap()
        .execute(
            "INSERT INTO bad_rows (run_id, task, license_id, activation_key, reason, created_at)
             VALUES (99, 'u', 2, 'K2', 'bad', 0)",
            [],
        )
        .unwrap();
    let url = state_url(&schema);
    let state = test.path("keyhook-state.db");
    let state = state.to_str().unwrap();
    let moved = test
        .keyhook(["state", "migrate", "--from", state, "--to", &url])
        .output()
        .unwrap();
    assert!(moved.status.success(), "{}", stdout(&moved));
    assert!(
        stdout(&moved)
            .contains("1 runs, 4 deliveries (2 pending or failed), 4 attempts and 0 bad rows"),
        "{}",
        stdout(&moved)
    );
    let again = test
        .keyhook(["state", "migrate", "--from", state, "--to", &url])
        .output()
        .unwrap();
    assert_ne!(again.status.code(), Some(0), "a second migrate is refused");
    let test = test.env("KEYHOOK_STATE", &url);
    let before: HashSet<String> = ids(&server).into_iter().collect();
    let retry = test
        .keyhook(["--now", "2026-11-23T11:00:00", "retry"])
        .output()
        .unwrap();
    assert!(retry.status.success(), "{}", stdout(&retry));
    let requests = ids(&server);
    assert_eq!(requests.len(), 6);
    assert!(
        requests[4..].iter().all(|id| before.contains(id)),
        "the same ids"
    );
    // And the same bytes: the SQLite state stored them packed, the server holds them as sent.
    let sent = server.requests();
    for again in &sent[4..] {
        let id = again.header("X-Keyhook-Delivery");
        let first = sent[..4]
            .iter()
            .find(|r| r.header("X-Keyhook-Delivery") == id)
            .unwrap();
        assert_eq!(again.body, first.body, "{id:?}");
        assert!(again.body.starts_with(b"{\"Name\":"), "{id:?}");
    }
    let status = stdout(&test.keyhook(["status"]).output().unwrap());
    assert!(status.contains("┆ 4 "), "{status}");
    assert!(
        status.contains("old-box"),
        "the host that ran it came along: {status}"
    );
    // The run's slot came along: it is not run again.
    let again = stdout(&test.keyhook(["run-task", "t"]).output().unwrap());
    assert!(again.contains("already ran"), "{again}");
}

/// Waits (at most 30 s) until `sql`, a count, reaches `n`; whether it did.
fn wait_for_count(schema: &Schema, sql: &str, n: i64) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if query(schema, sql)[0].get::<_, i64>(0) >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_host_that_loses_the_slot_helps_send_its_run_and_no_delivery_goes_twice() {
    let Some(schema) = Schema::new() else { return };
    let gate = Gate::new();
    let server = Server::start("127.0.0.1:0", {
        let gate = Arc::clone(&gate);
        move |_| {
            gate.hold();
            Reply::ok()
        }
    })
    .unwrap();
    let test = licenses(Test::new(), 200)
        .write(
            "tasks/t.toml",
            &format!(
                "name = \"t\"\nsearch = \"all\"\nschedule = \"every 1 hour\"\n\n\
                 [webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
                server.url("/")
            ),
        )
        .env("KEYHOOK_STATE", &state_url(&schema));
    // First seen an hour before, so the slot at 10:00 is due for both hosts.
    test.keyhook(["--now", "2026-11-23T09:00:30", "--host", "prep", "run-due"])
        .assert()
        .success();
    let hosts: Vec<_> = ["h1", "h2"]
        .iter()
        .map(|host| {
            test.process(["--now", "2026-11-23T10:00:30", "--host", host, "run-due"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both hold claims on the run's deliveries before any answer comes back.
    let both = wait_for_count(
        &schema,
        "SELECT count(DISTINCT split_part(claimed_by, ':', 1)) FROM deliveries",
        2,
    );
    gate.open();
    let outputs: Vec<String> = hosts
        .into_iter()
        .map(|host| {
            let output = host.wait_with_output().unwrap();
            assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
            stdout(&output)
        })
        .collect();
    assert!(both, "the second host never claimed any: {outputs:?}");
    let sent = ids(&server);
    let unique: HashSet<&String> = sent.iter().collect();
    assert_eq!(unique.len(), sent.len(), "a delivery id was sent twice");
    assert_eq!(sent.len(), 200, "{outputs:?}");
    let runs = query(&schema, "SELECT count(*) FROM runs WHERE slot IS NOT NULL");
    assert_eq!(runs[0].get::<_, i64>(0), 1, "the slot ran once");
    let by_host = query(
        &schema,
        "SELECT count(DISTINCT host), count(*) FROM attempts",
    );
    assert_eq!(
        (by_host[0].get::<_, i64>(0), by_host[0].get::<_, i64>(1)),
        (2, 200),
        "both hosts sent, each delivery once: {outputs:?}"
    );
    let all = outputs.join("\n");
    assert!(all.contains("sent by other hosts"), "{all}");
    assert!(
        all.contains("this host helped send its deliveries"),
        "{all}"
    );
}

#[test]
fn claims_are_renewed_while_a_batch_of_slow_posts_is_sent() {
    let Some(schema) = Schema::new() else { return };
    let gate = Gate::new();
    let server = Server::start("127.0.0.1:0", {
        let gate = Arc::clone(&gate);
        move |_| {
            gate.hold();
            Reply::ok()
        }
    })
    .unwrap();
    let test = licenses(Test::new(), 10)
        .task("t", "all", &server.url("/"), "")
        .env("KEYHOOK_STATE", &state_url(&schema))
        .env("KEYHOOK_LEASE", "4s");
    let run = test
        .process(["--host", "slow", "run-task", "t"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(gate.wait_arrived(1));
    // One and a half leases after the claim, every claim is still this host's and live.
    std::thread::sleep(Duration::from_secs(6));
    let live = query(
        &schema,
        "SELECT count(*) FROM deliveries WHERE claimed_by LIKE 'slow:%' AND claimed_until > now()",
    );
    gate.open();
    let output = run.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(live[0].get::<_, i64>(0), 10, "the lease ran out mid-batch");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("not recorded"), "{stderr}");
    assert_eq!(server.request_count(), 10);
}
