//! The rest of the commands, each case once per back end: `enable`, `set-last-run`, `prune`,
//! and event webhooks (`dispatch`, `run-due`, `watch`, `webhooks test`, `webhooks list`,
//! `status` and `log` for webhooks, `license.expired`). Then, on PostgreSQL only: per-license
//! order across hosts, and `state migrate` carrying the outbox cursor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keyhook::receiver::{Reply, Request, Server};

use super::{Backend, licenses};
use crate::postgres::Schema;
use crate::support::gate::Gate;
use crate::support::watching::Watching;
use crate::support::{Test, later, stdout};

on_both!(
    enable_re_enables_a_task_disabled_by_a_410,
    set_last_run_rewinds_the_date_a_run_counts_from,
    a_slot_run_early_is_not_sent_again_after_set_last_run,
    prune_forgets_settled_runs_and_keeps_waiting_ones,
    dispatch_keeps_per_license_order_and_log_says_what_waits,
    run_due_dispatches_events_once,
    webhooks_test_list_status_and_enable_after_a_410,
    an_expiry_fires_license_expired_once,
    watch_delivers_a_commit_and_stops_on_sigterm,
);

/// `--now` `seconds` after the pinned clock.
fn at(seconds: i64) -> String {
    later(seconds)
}

fn run<const N: usize>(test: &Test, args: [&str; N]) -> (Option<i32>, String) {
    let output = test.keyhook(args).output().unwrap();
    let text = format!(
        "{}{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

/// A receiver whose first `n` answers are `first`, then 200s.
fn failing_first(n: usize, first: u16) -> Server {
    let calls = AtomicUsize::new(0);
    Server::start("127.0.0.1:0", move |_| {
        match calls.fetch_add(1, Ordering::SeqCst) < n {
            true => Reply::status(first),
            false => Reply::ok(),
        }
    })
    .unwrap()
}

/// Events installed and one webhook `hook` posting every license event to `url`.
pub(super) fn with_hook(backend: &Backend, url: &str, extra: &str) -> Test {
    let test = backend.apply(Test::new().write(
        "webhooks/hook.toml",
        &format!(
            "name = \"hook\"\nurl = \"{url}\"\nevents = [\"license.*\"]\nsecret = \"s3cret\"\n\
             {extra}\n"
        ),
    ));
    test.keyhook(["events", "install"]).assert().success();
    test
}

/// The license database, as another program (the writer) opens it.
pub(super) fn writer(test: &Test) -> rusqlite::Connection {
    rusqlite::Connection::open(test.path("licenses.db")).unwrap()
}

/// (delivery id, event type, license id) of a request; every test license's key is `K<ID>`.
pub(super) fn describe(request: &Request) -> (String, String, i64) {
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    (
        request.header("X-Keyhook-Delivery").unwrap().to_string(),
        request.header("X-Keyhook-Event").unwrap().to_string(),
        json["LicenseInfo"]["ActivationKey"].as_str().unwrap()[1..]
            .parse()
            .unwrap(),
    )
}

fn enable_re_enables_a_task_disabled_by_a_410(backend: &Backend) {
    let server = failing_first(1, 410);
    let test = backend.apply(licenses(Test::new(), 2).task("t", "all", &server.url("/"), ""));
    let (code, text) = run(&test, ["run-task", "t"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("DISABLED"), "{text}");
    let (_, status) = run(&test, ["status"]);
    assert!(status.contains("DISABLED: 410 Gone"), "{status}");
    let (code, text) = run(&test, ["--now", &at(86_400), "retry"]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(server.request_count(), 1, "nothing goes while disabled");
    let (code, text) = run(&test, ["enable", "t"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("t: webhook re-enabled"), "{text}");
    let (code, text) = run(&test, ["--now", &at(86_400), "retry"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        server.request_count() >= 2,
        "the waiting delivery went: {text}"
    );
    let (_, status) = run(&test, ["status"]);
    assert!(!status.contains("DISABLED"), "{status}");
    let (_, text) = run(&test, ["enable", "t"]);
    assert!(text.contains("was not disabled"), "{text}");
}

fn set_last_run_rewinds_the_date_a_run_counts_from(backend: &Backend) {
    let test = backend.apply(
        Test::new()
            .search("new", "SubscriptionExpiryDate > [date]")
            .task("t", "new", "http://127.0.0.1:9/", "enabled = false"),
    );
    for (id, expiry) in [(1, "2026-11-10"), (2, "2026-11-20"), (3, "2026-12-01")] {
        test.simple_license(id, &format!("{expiry}T00:00:00"));
    }
    let (code, text) = run(&test, ["run-task", "t"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 matched"), "{text}");
    let (code, text) = run(&test, ["set-last-run", "t", "2026-11-01T00:00:00"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("last run set to 2026-11-01 00:00:00"),
        "{text}"
    );
    let (_, count) = run(&test, ["dry-run", "t", "--count"]);
    assert_eq!(count, "3\n");
    let (code, text) = run(&test, ["set-last-run", "t", "2027-01-01T00:00:00"]);
    assert_eq!(code, Some(2), "a time in the future is refused: {text}");
}

/// A slot run two days early (a wrong clock), repaired with `set-last-run`: when the slot
/// comes it counts as run (nothing sent twice), said once; the next one runs.
fn a_slot_run_early_is_not_sent_again_after_set_last_run(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(Test::new().search("all", "1 = 1").task(
        "daily",
        "all",
        &server.url("/"),
        "",
    ));
    test.simple_license(1, "2027-01-01T00:00:00");
    let day = 86_400;
    for now in [0, 2 * day] {
        let (code, text) = run(&test, ["--now", &at(now), "run-due"]);
        assert_eq!(code, Some(0), "{text}");
    }
    assert_eq!(server.request_count(), 1, "run two days early");
    let (code, text) = run(&test, ["--now", &at(3600), "set-last-run", "daily", &at(0)]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&test, ["--now", &at(day), "run-due"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 2, "{text}");
    let (code, text) = run(&test, ["--now", &at(2 * day), "run-due"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("already ran"), "{text}");
    assert_eq!(server.request_count(), 2, "not sent twice: {text}");
    let (code, text) = run(&test, ["--now", &at(2 * day + 60), "run-due"]);
    assert_eq!((code, text.as_str()), (Some(0), ""), "said once");
    let (code, text) = run(&test, ["--now", &at(3 * day), "run-due"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 3, "{text}");
}

fn prune_forgets_settled_runs_and_keeps_waiting_ones(backend: &Backend) {
    let server = failing_first(1, 500);
    let test = backend.apply(licenses(Test::new(), 3).task(
        "t",
        "all",
        &server.url("/"),
        "retry_interval = \"400d\"",
    ));
    run(&test, ["run-task", "t"]);
    let (code, text) = run(
        &test,
        ["--now", &at(100 * 86_400), "prune", "--older-than", "90d"],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("deleted 0 settled deliveries"), "{text}");
    let (code, _) = run(&test, ["--now", &at(401 * 86_400), "retry"]);
    assert_eq!(code, Some(0));
    let (_, text) = run(
        &test,
        ["--now", &at(401 * 86_400), "prune", "--older-than", "90d"],
    );
    assert!(text.contains("deleted 3 settled deliveries"), "{text}");
    let (_, log) = run(&test, ["log", "--json"]);
    assert_eq!(log, "");
}

fn dispatch_keeps_per_license_order_and_log_says_what_waits(backend: &Backend) {
    let server = failing_first(1, 503);
    let test = with_hook(
        backend,
        &server.url("/"),
        "retry_schedule = [\"1m\"]\nmax_retries = 3",
    );
    writer(&test)
        .execute_batch(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1');
             INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2');
             UPDATE LicenseKeys SET Email = 'a@b.c' WHERE ID = 1;",
        )
        .unwrap();
    let (code, text) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(1), "{text}");
    let (_, status) = run(&test, ["events", "status"]);
    assert!(status.contains("3 rows, 0 not yet taken"), "{status}");
    let first: Vec<(String, i64)> = server
        .requests()
        .iter()
        .map(describe)
        .map(|(_, event, id)| (event, id))
        .collect();
    assert_eq!(
        first,
        [("license.created".into(), 1), ("license.created".into(), 2)]
    );
    let (_, log) = run(&test, ["log"]);
    assert!(
        log.contains("waiting for evt_") && log.contains("LicenseKeys:1"),
        "{log}"
    );
    assert_eq!(run(&test, ["dispatch"]).0, Some(0), "not due yet");
    assert_eq!(server.request_count(), 2);
    assert_eq!(run(&test, ["--now", &at(120), "dispatch"]).0, Some(0));
    let all: Vec<(String, String, i64)> = server.requests().iter().map(describe).collect();
    let license_1: Vec<&str> = all
        .iter()
        .filter(|(_, _, id)| *id == 1)
        .map(|(_, event, _)| event.as_str())
        .collect();
    assert_eq!(
        license_1,
        ["license.created", "license.created", "license.updated"]
    );
    assert_eq!(all[0].0, all[2].0, "the retry keeps the delivery id");
    // `resend` of an event delivery, by a prefix of its id: the same id and bytes.
    let (code, text) = run(&test, ["resend", &all[3].0[..16]]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("delivered {}", all[3].0)), "{text}");
    let again = &server.requests()[4];
    assert_eq!(describe(again).0, all[3].0);
    assert_eq!(again.body, server.requests()[3].body);
}

fn run_due_dispatches_events_once(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_hook(backend, &server.url("/"), "");
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    let (code, text) = run(&test, ["run-due"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1, "{text}");
    let (code, text) = run(&test, ["run-due"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1, "taken once: {text}");
}

fn webhooks_test_list_status_and_enable_after_a_410(backend: &Backend) {
    let server = failing_first(1, 410);
    let test = with_hook(backend, &server.url("/"), "");
    let listed = |test: &Test| -> serde_json::Value {
        let (_, text) = run(test, ["webhooks", "list", "--json"]);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()[0].clone()
    };
    let (code, text) = run(&test, ["webhooks", "test", "hook"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("HTTP 410"), "{text}");
    let (_, status) = run(&test, ["status"]);
    let line = status
        .lines()
        .find(|l| l.contains("│ hook"))
        .expect(&status);
    assert!(line.contains("DISABLED: 410 Gone"), "{line}");
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    let (code, text) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("webhook DISABLED after 410 Gone"), "{text}");
    assert_eq!(server.request_count(), 1);
    let (code, text) = run(&test, ["enable", "hook"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("webhook re-enabled (1 URL(s))"), "{text}");
    let (code, text) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 2);
    let hook = listed(&test);
    assert_eq!(hook["failures"].as_i64(), Some(1), "the test's 410: {hook}");
    assert!(hook["last_delivery"].as_i64().is_some(), "{hook}");
    let (_, log) = run(&test, ["log", "--webhook", "hook"]);
    assert!(
        log.contains("hook license.created") && log.contains("delivered"),
        "{log}"
    );
    let (_, status) = run(&test, ["status"]);
    let line = status
        .lines()
        .find(|l| l.contains("│ hook"))
        .expect(&status);
    assert!(line.contains("active (production)"), "{line}");
}

fn an_expiry_fires_license_expired_once(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = backend.apply(
        Test::new().write(
            "webhooks/hook.toml",
            "name = \"hook\"\nurl = \"URL\"\nevents = [\"license_expired\"]\nsecret = \"s\"\n"
                .replace("URL", &server.url("/"))
                .as_str(),
        ),
    );
    test.keyhook(["events", "install"]).assert().success();
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate)
             VALUES (1, 'K1', '2026-11-23T12:00:00')",
            [],
        )
        .unwrap();
    assert_eq!(run(&test, ["dispatch"]).0, Some(0));
    assert_eq!(server.request_count(), 0, "not expired yet");
    let (code, text) = run(&test, ["--now", "2026-11-23T13:00:00", "dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1, "{text}");
    let id = server.requests()[0]
        .header("X-Keyhook-Delivery")
        .unwrap()
        .to_string();
    assert!(id.starts_with("evt_exp_1_"), "{id}");
    assert_eq!(
        run(&test, ["--now", "2026-11-23T14:00:00", "dispatch"]).0,
        Some(0)
    );
    assert_eq!(server.request_count(), 1, "once");
}

fn watch_delivers_a_commit_and_stops_on_sigterm(backend: &Backend) {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_hook(backend, &server.url("/"), "");
    let watching = Watching::start(&test);
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (7, 'K7')",
            [],
        )
        .unwrap();
    let delivered = server.wait_for(1, Duration::from_secs(20));
    assert_eq!(watching.stop(), Some(0));
    assert!(delivered, "the running watch sent the new event");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn an_event_whose_earlier_event_another_host_holds_waits_for_it_then_follows_it() {
    let Some(schema) = Schema::new() else { return };
    // The first request (host `dies`, license 1's creation) is held until the gate opens.
    let gate = Gate::new();
    let arrived = Arc::new(AtomicUsize::new(0));
    let server = Server::start("127.0.0.1:0", {
        let (gate, arrived) = (Arc::clone(&gate), Arc::clone(&arrived));
        move |_| {
            if arrived.fetch_add(1, Ordering::SeqCst) == 0 {
                gate.hold();
            }
            Reply::ok()
        }
    })
    .unwrap();
    // A lease long enough that a slow machine cannot outlast it before `other` has looked;
    // its end is then brought forward in the database (below).
    let backend = Backend::Postgres(schema);
    let test = with_hook(&backend, &server.url("/"), "").env("KEYHOOK_LEASE", "60s");
    let conn = writer(&test);
    conn.execute(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
        [],
    )
    .unwrap();
    let mut first = test
        .process(["--host", "dies", "dispatch"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(gate.wait_arrived(1), "the first event reaches the receiver");
    first.kill().unwrap(); // SIGKILL: its claim on license 1's creation stays until the lease
    first.wait().unwrap();
    gate.open();
    // Later changes, taken by another host at once: license 2 goes; license 1's update waits
    // behind its creation, which the dead host still holds. (The dead host's source lock
    // goes with its connection: tried again until the server noticed.)
    conn.execute_batch(
        "UPDATE LicenseKeys SET Email = 'a@b.c' WHERE ID = 1;
         INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2');",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (code, text) = run(&test, ["--host", "other", "dispatch"]);
        assert_eq!(code, Some(0), "{text}");
        if !text.contains("another host") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let after_kill: Vec<(String, i64)> = server.requests()[1..]
        .iter()
        .map(describe)
        .map(|(_, event, id)| (event, id))
        .collect();
    assert_eq!(after_kill, [("license.created".into(), 2)], "{text}");
    let (_, log) = run(&test, ["log"]);
    assert!(log.contains("waiting for evt_"), "{log}");
    // After the lease (ended by the server's clock, as every lease is read): the creation
    // again (same id), then the update.
    let Backend::Postgres(schema) = &backend else {
        unreachable!()
    };
    super::query(
        schema,
        "UPDATE deliveries SET claimed_until = now() - interval '1 second'
         WHERE claimed_by IS NOT NULL",
    );
    let (code, text) = run(&test, ["--host", "other", "dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    let all: Vec<(String, String, i64)> = server.requests().iter().map(describe).collect();
    let license_1: Vec<(&str, &str)> = all
        .iter()
        .filter(|(_, _, id)| *id == 1)
        .map(|(delivery, event, _)| (delivery.as_str(), event.as_str()))
        .collect();
    assert_eq!(license_1.len(), 3, "{all:?}");
    assert_eq!(license_1[0], license_1[1], "the same delivery, re-sent");
    assert_eq!(
        (license_1[1].1, license_1[2].1),
        ("license.created", "license.updated")
    );
}

#[test]
fn state_migrate_carries_the_outbox_cursor_and_a_disabled_webhook() {
    let Some(schema) = Schema::new() else { return };
    let server = failing_first(1, 410);
    let test = with_hook(&Backend::Sqlite, &server.url("/"), "");
    let conn = writer(&test);
    conn.execute(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
        [],
    )
    .unwrap();
    assert_eq!(run(&test, ["dispatch"]).0, Some(1), "a 410 disables it");
    let url = super::state_url(&schema);
    let state = test.path("keyhook-state.db");
    let (code, text) = run(
        &test,
        [
            "state",
            "migrate",
            "--from",
            state.to_str().unwrap(),
            "--to",
            &url,
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let test = test.env("KEYHOOK_STATE", &url);
    conn.execute(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2')",
        [],
    )
    .unwrap();
    let (code, text) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(1), "still disabled: {text}");
    assert!(
        text.contains("1 new event(s)"),
        "only the new one is taken: {text}"
    );
    run(&test, ["enable", "hook"]);
    let (code, text) = run(&test, ["--now", &at(86_400), "dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    let ids: Vec<String> = server.requests().iter().map(|r| describe(r).0).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 2, "each event under one id: {ids:?}");
}

#[test]
fn three_hosts_dispatching_together_record_and_send_each_event_once_in_order() {
    let Some(schema) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    // Kept to the end: dropped, it drops its schema.
    let backend = Backend::Postgres(schema);
    let test = with_hook(&backend, &server.url("/"), "");
    let conn = writer(&test);
    const ROUNDS: i64 = 8;
    for round in 0..ROUNDS {
        // Each round creates three licenses and updates the previous round's.
        for id in round * 3 + 1..=round * 3 + 3 {
            conn.execute(
                "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
                rusqlite::params![id, format!("K{id}")],
            )
            .unwrap();
        }
        conn.execute(
            "UPDATE LicenseKeys SET Email = 'x@y.z' WHERE ID BETWEEN ?1 AND ?2",
            [round * 3 - 2, round * 3],
        )
        .unwrap();
        let hosts: Vec<_> = ["h1", "h2", "h3"]
            .iter()
            .map(|host| {
                test.process(["--host", host, "dispatch"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for host in hosts {
            let output = host.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                stdout(&output),
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(output.status.code(), Some(0), "{text}");
        }
    }
    assert_eq!(run(&test, ["dispatch"]).0, Some(0));
    let all: Vec<(String, String, i64)> = server.requests().iter().map(describe).collect();
    let ids: std::collections::HashSet<&String> = all.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), all.len(), "an event was sent twice");
    assert_eq!(
        all.len() as i64,
        3 * ROUNDS + 3 * (ROUNDS - 1),
        "every event arrived"
    );
    for id in 1..=3 * (ROUNDS - 1) {
        let events: Vec<&str> = all
            .iter()
            .filter(|(_, _, license)| *license == id)
            .map(|(_, event, _)| event.as_str())
            .collect();
        assert_eq!(
            events,
            ["license.created", "license.updated"],
            "license {id}"
        );
    }
}
