//! Event dispatch: committed changes reach the webhooks that subscribe to them, once (re-sends
//! keep their id), in commit order per license; `watch` notices a commit within a second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::gate::Gate;
use crate::support::watching::{PATIENCE, Watching};
use crate::support::{Test, later, stderr, stdout};
use keyhook::receiver::{Reply, Request, Server};

/// A configuration with one webhook posting every license event to `url`, events installed.
fn with_webhook(url: &str, extra: &str) -> Test {
    let test = Test::new().write(
        "webhooks/hook.toml",
        &format!(
            "name = \"hook\"\nurl = \"{url}\"\nevents = [\"license.*\"]\nsecret = \"s3cret\"\n\
             format = \"standard\"\n{extra}\n"
        ),
    );
    test.keyhook(["events", "install"]).assert().success();
    test
}

/// The license database, as another program (the writer) opens it.
fn writer(test: &Test) -> rusqlite::Connection {
    rusqlite::Connection::open(test.path("licenses.db")).unwrap()
}

fn code<const N: usize>(test: &Test, args: [&str; N]) -> Option<i32> {
    test.keyhook(args).output().unwrap().status.code()
}

/// (delivery id, event type, license id) of each request, in arrival order.
fn seen(server: &Server) -> Vec<(String, String, i64)> {
    server.requests().iter().map(describe).collect()
}

fn describe(request: &Request) -> (String, String, i64) {
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    (
        request.header("X-Keyhook-Delivery").unwrap().to_string(),
        request.header("X-Keyhook-Event").unwrap().to_string(),
        // The payload is the license's `LicenseInfo`; every test license's key is `K<ID>`.
        json["data"]["ActivationKey"].as_str().unwrap()[1..]
            .parse()
            .unwrap(),
    )
}

#[test]
fn each_committed_change_is_delivered_once_and_a_rolled_back_one_never() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let mut conn = writer(&test);
    conn.execute(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
        [],
    )
    .unwrap();
    let rolled_back = conn.transaction().unwrap();
    rolled_back
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2')",
            [],
        )
        .unwrap();
    rolled_back.rollback().unwrap();
    conn.execute("UPDATE LicenseKeys SET Email = 'a@b.c' WHERE ID = 1", [])
        .unwrap();
    let status = stdout(&test.keyhook(["events", "status"]).output().unwrap());
    assert!(
        status.contains("outbox: 2 rows, 2 not yet taken"),
        "{status}"
    );
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    let status = stdout(&test.keyhook(["events", "status"]).output().unwrap());
    assert!(
        status.contains("outbox: 2 rows, 0 not yet taken"),
        "{status}"
    );
    let got = seen(&server);
    let events: Vec<(&str, i64)> = got.iter().map(|(_, e, id)| (e.as_str(), *id)).collect();
    assert_eq!(events, [("license.created", 1), ("license.updated", 1)]);
    for (id, _, _) in &got {
        assert!(id.starts_with("evt_") && id.len() == 25, "{id}");
    }
    let request = &server.requests()[0];
    assert_eq!(
        request.header("webhook-id"),
        None,
        "qlm signature by default"
    );
    assert!(request.header("X-QLM-Signature").is_some());
    // A second pass finds nothing new.
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    assert_eq!(server.request_count(), 2);
    let log = stdout(
        &test
            .keyhook(["log", "--webhook", "hook", "--event", "license.updated"])
            .output()
            .unwrap(),
    );
    assert!(log.contains("hook license.updated"), "{log}");
    assert!(!log.contains("license.created"), "{log}");
    // A webhook in the log, its file broken, then gone: other filters that match nothing say
    // just that.
    std::fs::write(
        test.path("webhooks/hook.toml"),
        "name = \"hook\"\nevents = 3\n",
    )
    .unwrap();
    let broken = test
        .keyhook(["log", "--webhook", "hook", "--status", "dead"])
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(0), "{}", stderr(&broken));
    std::fs::remove_file(test.path("webhooks/hook.toml")).unwrap();
    let none = test
        .keyhook(["log", "--webhook", "hook", "--status", "dead"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(0), "{}", stderr(&none));
    assert!(
        stdout(&none).contains("no deliveries match"),
        "{}",
        stdout(&none)
    );
    // A webhook that is neither a file nor in the log: an error, as an unknown --task is.
    let unknown = test.keyhook(["log", "--webhook", "nope"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("no webhook is called `nope`")
            && stderr(&unknown).contains("(webhooks: none)"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn a_later_event_of_a_license_waits_for_its_failing_earlier_one_then_follows_it() {
    let calls = AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(503),
            _ => Reply::ok(),
        }
    })
    .unwrap();
    let test = with_webhook(
        &server.url("/"),
        "retry_schedule = [\"1m\"]\nmax_retries = 3",
    );
    let conn = writer(&test);
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1');
         INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2');
         UPDATE LicenseKeys SET Email = 'a@b.c' WHERE ID = 1;",
    )
    .unwrap();
    assert_eq!(code(&test, ["dispatch"]), Some(1));
    let first: Vec<(String, i64)> = seen(&server)
        .into_iter()
        .map(|(_, e, id)| (e, id))
        .collect();
    assert_eq!(
        first,
        [("license.created".into(), 1), ("license.created".into(), 2)]
    );
    let log = stdout(&test.keyhook(["log"]).output().unwrap());
    assert!(log.contains("waiting for evt_"), "{log}");
    assert!(log.contains("LicenseKeys:1"), "{log}");
    // Not due yet: nothing moves, and dispatch says what waits (it used to say nothing).
    const WAITS: &str =
        "hook: 1 delivery waits behind an earlier one of the same license or customer";
    let quiet = test.keyhook(["dispatch"]).output().unwrap();
    assert_eq!(quiet.status.code(), Some(0));
    assert!(stdout(&quiet).contains(WAITS), "{}", stdout(&quiet));
    assert_eq!(server.request_count(), 2);
    // `run-due`, from cron every minute: the same line only from a pass that sent something
    // to the webhook, not in every cron mail.
    let cron = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(cron.status.code(), Some(0), "{}", stderr(&cron));
    assert!(!stdout(&cron).contains("waits behind"), "{}", stdout(&cron));
    conn.execute_batch("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (3, 'K3');")
        .unwrap();
    let cron = test.keyhook(["run-due"]).output().unwrap();
    assert_eq!(cron.status.code(), Some(0), "{}", stderr(&cron));
    assert!(stdout(&cron).contains(WAITS), "{}", stdout(&cron));
    assert_eq!(server.request_count(), 3);
    // After the retry wait, the creation goes, then the update.
    let due = later(120);
    let sent = test.keyhook(["--now", &due, "dispatch"]).output().unwrap();
    assert_eq!(sent.status.code(), Some(0));
    assert!(!stdout(&sent).contains("waits behind"), "{}", stdout(&sent));
    let all = seen(&server);
    let license_1: Vec<&str> = all
        .iter()
        .filter(|(_, _, id)| *id == 1)
        .map(|(_, e, _)| e.as_str())
        .collect();
    assert_eq!(
        license_1,
        ["license.created", "license.created", "license.updated"]
    );
    let ids: Vec<&str> = all
        .iter()
        .filter(|(_, _, id)| *id == 1)
        .map(|(delivery, _, _)| delivery.as_str())
        .collect();
    assert_eq!(ids[0], ids[1], "the retry keeps the delivery id");
}

/// A receiver that answers 200 until its `n`-th request, which it holds (with every later
/// one) until the gate opens.
fn holding_from(n: usize) -> (Server, Arc<Gate>) {
    let gate = Gate::new();
    let arrived = Arc::new(AtomicUsize::new(0));
    let server = Server::start("127.0.0.1:0", {
        let gate = Arc::clone(&gate);
        move |_| {
            if arrived.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                gate.hold();
            }
            Reply::ok()
        }
    })
    .unwrap();
    (server, gate)
}

#[test]
fn sigkill_mid_send_loses_nothing_and_duplicates_only_as_resends_with_the_same_id() {
    let (server, gate) = holding_from(3);
    let test = with_webhook(&server.url("/"), "");
    let conn = writer(&test);
    for id in 1..=6 {
        conn.execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
            rusqlite::params![id, format!("K{id}")],
        )
        .unwrap();
    }
    let mut child = test
        .process(["dispatch"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(gate.wait_arrived(1), "the third request arrives");
    child.kill().unwrap();
    child.wait().unwrap();
    gate.open();
    // Killed between passes too: more changes, then a pass that completes.
    conn.execute("UPDATE LicenseKeys SET Email = 'x@y.z' WHERE ID = 2", [])
        .unwrap();
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    let mut bodies: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut events = BTreeSet::new();
    for request in server.requests() {
        let (id, event, license) = describe(&request);
        bodies.entry(id).or_default().insert(request.body.clone());
        events.insert((event, license));
    }
    assert_eq!(
        bodies.len(),
        7,
        "six creations and one update, each under one id"
    );
    assert!(
        bodies.values().all(|b| b.len() == 1),
        "a re-send is byte-identical"
    );
    assert!(events.contains(&("license.updated".to_string(), 2)));
}

#[test]
fn watch_delivers_a_commit_and_stops_cleanly_on_sigterm() {
    // That a commit runs a pass at once, not at the next tick, is `watch`'s unit test
    // (`a_commit_by_another_connection_is_due_at_once_and_nothing_else_is`): a bound on the
    // latency here would measure the machine's load as much as keyhook.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let watching = Watching::start(&test);
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (7, 'K7')",
            [],
        )
        .unwrap();
    assert!(server.wait_for(1, PATIENCE), "delivered");
    assert_eq!(watching.stop(), Some(0));
    assert_eq!(server.request_count(), 1);
}

#[test]
fn watch_sends_a_retry_when_it_comes_due() {
    // Each pass reads the clock afresh: a watch started before a retry's time still sends it.
    let calls = AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(503),
            _ => Reply::ok(),
        }
    })
    .unwrap();
    let test = with_webhook(
        &server.url("/"),
        "retry_schedule = [\"2s\"]\nmax_retries = 3",
    );
    // The real clock: a pinned one never reaches the retry's time.
    let mut command = test.process(["watch"]);
    command.env_remove("KEYHOOK_NOW");
    let watching = Watching::spawn(command);
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (7, 'K7')",
            [],
        )
        .unwrap();
    let retried = server.wait_for(2, PATIENCE);
    assert_eq!(watching.stop(), Some(0));
    assert!(retried, "the retry was sent by the running watch");
    let all = seen(&server);
    assert_eq!(all[0].0, all[1].0, "the retry keeps the delivery id");
}

#[test]
fn no_event_is_taken_while_a_webhook_file_is_broken_so_none_is_lost_for_it() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let other = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let hook = |url: &str, events: &str| {
        format!(
            "name = \"crm\"\nurl = \"{url}\"\nevents = [\"{events}\"]\nsecret = \"s3cret\"\n\
             format = \"standard\"\n"
        )
    };
    let test = with_webhook(&server.url("/"), "").write(
        "webhooks/crm.toml",
        &hook(&other.url("/"), "license.updatd"),
    );
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    for args in [&["dispatch"][..], &["run-due"]] {
        let output = test.keyhook(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = crate::support::stdout(&output) + &crate::support::stderr(&output);
        assert!(
            text.contains("webhooks/crm.toml") && text.contains("no new event is taken"),
            "{args:?}: {text}"
        );
        // run-due lists every problem first: the file is named there, and only there.
        assert_eq!(
            text.matches("webhooks/crm.toml").count(),
            1,
            "{args:?}: {text}"
        );
    }
    let watch = test.keyhook(["watch"]).output().unwrap();
    assert_eq!(watch.status.code(), Some(2));
    assert!(crate::support::stderr(&watch).contains("webhooks/crm.toml"));
    assert_eq!(server.request_count(), 0, "the good webhook waits too");
    // Fixed, the event reaches both, once.
    let test = test.write(
        "webhooks/crm.toml",
        &hook(&other.url("/"), "license.created"),
    );
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    assert_eq!(server.request_count(), 1);
    assert_eq!(other.request_count(), 1);
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    assert_eq!(server.request_count() + other.request_count(), 2);
}

/// The broken file is the only webhook: that is not "no active webhooks" (exit 0) but the
/// same error, since its events wait.
#[test]
fn a_broken_webhook_file_that_is_the_only_one_is_an_error() {
    let test = with_webhook("http://127.0.0.1:9/", "").write(
        "webhooks/hook.toml",
        "name = \"hook\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.created\"]\nsecret =\n",
    );
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    for args in [&["dispatch"][..], &["watch"], &["run-due"]] {
        let output = test.keyhook(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = crate::support::stdout(&output) + &crate::support::stderr(&output);
        assert!(text.contains("webhooks/hook.toml"), "{args:?}: {text}");
        assert!(!text.contains("no active webhooks"), "{args:?}: {text}");
    }
}

/// `retry` with deliveries of a webhook whose file broke since: it cannot tell which webhook
/// the broken file was, so it says that it may be that one.
#[test]
fn retry_says_a_waiting_webhook_may_be_a_broken_file() {
    let test = with_webhook("http://127.0.0.1:9/", "retry_schedule = [\"1s\"]");
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    assert_eq!(code(&test, ["dispatch"]), Some(1), "the receiver is down");
    let test = test
        .write("webhooks/hook.toml", "name = \"hook\"\nurl =\n")
        .env("KEYHOOK_NOW", "2030-01-01T00:00:00");
    let output = test.keyhook(["retry"]).output().unwrap();
    let text = crate::support::stdout(&output) + &crate::support::stderr(&output);
    assert!(
        text.contains(
            "hook: deliveries wait, but its webhook is gone, inactive or of another \
             environment (or its file is broken: `keyhook check` names it); they stay pending"
        ),
        "{text}"
    );
}

#[test]
fn a_license_row_with_text_that_is_not_utf8_is_skipped_and_the_events_after_it_go_on() {
    // One license's Comment holds bytes that are not UTF-8: its event cannot be sent as it
    // is, so it is said and skipped; the events before and after it are delivered (they used
    // to wait behind it forever, every dispatch failing to read the outbox).
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let conn = writer(&test);
    for id in 1..=3 {
        conn.execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
            rusqlite::params![id, format!("K{id}")],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE LicenseKeys SET Comment = CAST(x'41ff42' AS TEXT) WHERE ID = 2",
        [],
    )
    .unwrap();
    conn.execute("UPDATE LicenseKeys SET UserData = 'after' WHERE ID = 3", [])
        .unwrap();
    let output = test.keyhook(["dispatch"]).output().unwrap();
    let said = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        said.contains("Comment holds text that is not UTF-8"),
        "{said}"
    );
    let delivered: Vec<(String, i64)> = seen(&server)
        .into_iter()
        .map(|(_, event, license)| (event, license))
        .collect();
    assert!(
        delivered.contains(&("license.updated".to_string(), 3)),
        "{delivered:?}"
    );
    assert!(
        !delivered
            .iter()
            .any(|(event, license)| *license == 2 && event == "license.updated")
    );
    assert_eq!(delivered.len(), 4, "3 created, 1 updated: {delivered:?}");
    // Nothing waits behind it: the next dispatch has nothing to do.
    let again = test.keyhook(["dispatch"]).output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(server.request_count(), 4);
}

#[test]
fn dispatches_running_at_once_beside_a_writer_wait_for_each_other_rather_than_fail() {
    // Four dispatch loops on one state file while another program writes licenses: each pass
    // either sends or finds the URL busy (exit 75), none fails on a locked state (exit 3). A
    // transaction that read before it wrote failed at once when another process had written
    // in between, instead of waiting its turn.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let conn = writer(&test);
    for id in 1..=20 {
        conn.execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
            rusqlite::params![id, format!("K{id}")],
        )
        .unwrap();
    }
    test.keyhook(["dispatch"]).assert().success();
    drop(conn);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let conn = writer(&test);
            for n in 0..150 {
                conn.execute(
                    "UPDATE LicenseKeys SET UserData = ?1 WHERE ID = ?2",
                    rusqlite::params![n.to_string(), n % 20 + 1],
                )
                .unwrap();
            }
        });
        let loops: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    (0..15)
                        .map(|_| test.keyhook(["dispatch"]).output().unwrap())
                        .filter(|output| output.status.code() == Some(3))
                        .map(|output| stderr(&output))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for failed in loops.into_iter().map(|pass| pass.join().unwrap()) {
            assert!(failed.is_empty(), "{failed:?}");
        }
    });
}

#[test]
fn dispatches_starting_together_on_a_new_state_do_not_call_it_emptied() {
    // The first to open the state creates its file (0 bytes for a moment); the others must
    // not take that for a truncated copy and warn that its history is gone.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    for round in 0..6 {
        let state = format!("new-{round}.db");
        let children: Vec<_> = (0..3)
            .map(|_| {
                test.process(["dispatch", "--state", &state])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&output.stderr).to_string();
            assert!(!err.contains("was empty (0 bytes)"), "{err}");
        }
    }
}

#[test]
fn event_retries_wait_while_every_webhook_is_switched_off() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(503)).unwrap();
    let test = with_webhook(&server.url("/"), "");
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    assert_eq!(code(&test, ["dispatch"]), Some(1));
    let sent = server.request_count();
    let test = test.write("keyhook.toml", "webhooks_enabled = false\n");
    let output = test
        .keyhook(["retry", "--now", &later(3600)])
        .output()
        .unwrap();
    let said = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{said}");
    assert!(
        said.contains("hook: retries wait: webhooks_enabled = false in keyhook.toml"),
        "{said}"
    );
    assert_eq!(server.request_count(), sent);
}

#[test]
fn a_license_database_another_program_keeps_locked_is_named_by_dispatch() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let holder = writer(&test);
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let output = test.keyhook(["dispatch"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("licenses.db is locked: another program has held a write lock"),
        "{}",
        stderr(&output)
    );
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_license_database_restored_from_an_older_copy_is_said_and_reinstalling_the_events_mends_it() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let backup = test.path("backup.db");
    std::fs::copy(test.path("licenses.db"), &backup).unwrap();
    for id in 1..=3 {
        writer(&test)
            .execute(
                "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
                rusqlite::params![id, format!("K{id}")],
            )
            .unwrap();
    }
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    assert_eq!(server.request_count(), 3);
    // The older copy comes back: its outbox numbers its next event where the cursor passed.
    std::fs::copy(&backup, test.path("licenses.db")).unwrap();
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (7, 'K7')",
            [],
        )
        .unwrap();
    let output = test.keyhook(["dispatch"]).output().unwrap();
    assert!(
        stderr(&output).contains("was replaced by an older copy (a restore?)")
            && stderr(&output).contains("keyhook events install"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.request_count(), 3, "not sent, and said so");
    // Reinstalled, the outbox numbers above the cursor again: the next change goes out.
    test.keyhook(["events", "uninstall", "--force"])
        .assert()
        .success();
    test.keyhook(["events", "install"]).assert().success();
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (8, 'K8')",
            [],
        )
        .unwrap();
    let output = test.keyhook(["dispatch"]).output().unwrap();
    assert!(
        !stderr(&output).contains("older copy"),
        "{}",
        stderr(&output)
    );
    assert_eq!(server.request_count(), 4);
    assert_eq!(seen(&server)[3].2, 8);
}

#[test]
fn a_license_database_dispatched_under_a_new_path_says_why_nothing_is_recorded() {
    // The file moves to another folder: its event cursor is kept by path, so the outbox is
    // read from the start, and its deliveries are in the state already. Said, not a bare
    // constraint error.
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    writer(&test)
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
    assert_eq!(code(&test, ["dispatch"]), Some(0));
    std::fs::create_dir_all(test.path("moved")).unwrap();
    std::fs::rename(test.path("licenses.db"), test.path("moved/licenses.db")).unwrap();
    // The state stays where it was (by default it is beside the license database).
    let state = test.path("keyhook-state.db");
    assert!(state.exists());
    let output = test
        .keyhook(["--db", "moved/licenses.db", "--state"])
        .arg(&state)
        .arg("dispatch")
        .output()
        .unwrap();
    crate::support::assert_events_recorded_again(&output);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn watch_waits_longer_between_passes_that_keep_failing() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_webhook(&server.url("/"), "");
    let watching = Watching::start(&test);
    // Every pass fails while the outbox is gone.
    writer(&test)
        .execute_batch("ALTER TABLE keyhook_outbox RENAME TO hidden_outbox")
        .unwrap();
    watching.wait_for_line(&["dispatch pass failed"]);
    std::thread::sleep(Duration::from_secs(3));
    let failed = watching.stderr().matches("dispatch pass failed").count();
    // Polling every 25 ms without a backoff made ~120 in 3 s.
    assert!(
        (3..=12).contains(&failed),
        "{failed}:\n{}",
        watching.stderr()
    );
    assert_eq!(watching.stop(), Some(0));
}
