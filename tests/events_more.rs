//! The rest of the event webhooks: `webhooks test`, `status` and `resend` for webhooks,
//! `license.expired` in dispatch, `events prune`.

use crate::support::{Test, later, stderr, stdout};
use keyhook::receiver::{Reply, Server};

/// A configuration with one webhook `hook` posting `events` to `url` (QLM format, secret
/// `s3cret`), events installed.
fn with_hook(url: &str, events: &str, extra: &str) -> Test {
    let test = Test::new().write(
        "webhooks/hook.toml",
        &format!(
            "name = \"hook\"\nurl = \"{url}\"\nevents = {events}\nsecret = \"s3cret\"\n{extra}\n"
        ),
    );
    test.keyhook(["events", "install"]).assert().success();
    test
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

/// License 1, `K1`, inserted into the test's license database: a `license.created` event.
fn insert_k1(test: &Test) {
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
            [],
        )
        .unwrap();
}

#[test]
fn webhooks_test_sends_a_signed_sample_event_marked_as_a_test_once() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok().with_body("thanks")).unwrap();
    let test = with_hook(
        &server.url("/"),
        "[\"license_activated\", \"customer.*\"]",
        "",
    );
    let (code, text) = run(&test, ["webhooks", "test", "hook"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("test license.activated to http://127.0.0.1"),
        "{text}"
    );
    assert!(
        text.contains("HTTP 200: delivered") && text.contains("response: thanks"),
        "{text}"
    );
    let request = &server.requests()[0];
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(json["EventType"], "license_activated");
    assert_eq!(json["Test"], true);
    assert_eq!(json["LicenseInfo"]["ActivationKey"], "TEST-0000-0000-1001");
    assert_eq!(request.header("X-Keyhook-Event"), Some("license.activated"));
    let id = request.header("X-Keyhook-Delivery").unwrap();
    assert!(id.starts_with("evt_test_"), "{id}");
    let secret = keyhook::secret::Secret::new("s3cret");
    let signature = request.header("X-QLM-Signature").unwrap();
    assert!(keyhook::delivery::signature::verify_qlm(
        &request.body,
        &secret,
        signature
    ));
    let log = stdout(&test.keyhook(["log", "--webhook", "hook"]).output().unwrap());
    assert!(log.contains(id) && log.contains("delivered"), "{log}");
    // Another event of another kind.
    let (code, text) = run(
        &test,
        ["webhooks", "test", "hook", "--event", "customer_modified"],
    );
    assert_eq!(code, Some(0), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&server.requests()[1].body).unwrap();
    assert_eq!(json["EventType"], "customer_modified");
    assert_eq!(json["CustomerInfo"]["Company"], "Example Inc.");
}

#[test]
fn a_failing_webhooks_test_exits_1_shows_the_escaped_answer_and_is_not_retried() {
    let server = Server::start("127.0.0.1:0", |_| {
        Reply::status(500).with_body("\u{1b}[2Jboom")
    })
    .unwrap();
    let test = with_hook(&server.url("/"), "[\"license.*\"]", "");
    let (code, text) = run(
        &test,
        ["webhooks", "test", "hook", "--event", "license.expired"],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(
        text.contains("\\u{1b}[2Jboom") && !text.contains('\u{1b}'),
        "{text}"
    );
    let (code, _) = run(&test, ["--now", &later(7 * 86_400), "retry"]);
    assert_eq!(code, Some(0));
    assert_eq!(server.request_count(), 1, "a test is sent once");
    let (code, text) = run(
        &test,
        ["webhooks", "test", "hook", "--event", "licence.nope"],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("`licence.nope` is not an event"), "{text}");
}

#[test]
fn status_list_and_resend_cover_webhooks() {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::status(500),
            _ => Reply::ok(),
        }
    })
    .unwrap();
    let url = server.url("/").replace("127.0.0.1", "user:pw@127.0.0.1");
    let test = with_hook(&url, "[\"license.*\"]", "retry_schedule = [\"1h\"]");
    let listed = |test: &Test| -> serde_json::Value {
        let output = test
            .keyhook(["webhooks", "list", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()[0].clone()
    };
    assert_eq!(
        listed(&test)["failures"],
        serde_json::Value::Null,
        "no state yet"
    );
    insert_k1(&test);
    assert_eq!(run(&test, ["dispatch"]).0, Some(1));
    let (_, status) = run(&test, ["status"]);
    let line = status
        .lines()
        .find(|l| l.contains("│ hook"))
        .expect(&status);
    assert!(
        line.contains("never") && line.contains("active (production)"),
        "{line}"
    );
    assert!(
        line.contains("***@127.0.0.1") && !line.contains("pw"),
        "{line}"
    );
    // The state keeps the webhook's URL as it is shown: its password is not in the file.
    let kept: String = rusqlite::Connection::open(test.path("keyhook-state.db"))
        .unwrap()
        .query_row("SELECT url FROM webhook_sources", [], |row| row.get(0))
        .unwrap();
    assert!(
        kept.contains("user:***@127.0.0.1") && !kept.contains("pw"),
        "{kept}"
    );
    let counts: Vec<&str> = line.split(['│', '┆']).map(str::trim).collect();
    assert_eq!(
        counts.get(4..7).unwrap_or_default(),
        ["0", "1", "0"].as_slice(),
        "pending, failed, dead: {line}"
    );
    let hook = listed(&test);
    assert_eq!(
        (hook["failures"].as_i64(), hook["last_delivery"].as_i64()),
        (Some(1), None)
    );
    let (_, table) = run(&test, ["webhooks", "list"]);
    assert!(table.contains("never"), "{table}");
    // `resend` by a prefix of the event delivery's id: same id, now delivered.
    let id = server.requests()[0]
        .header("X-Keyhook-Delivery")
        .unwrap()
        .to_string();
    let (code, text) = run(&test, ["resend", &id[..16]]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("delivered {id}")), "{text}");
    assert_eq!(
        server.requests()[1].header("X-Keyhook-Delivery"),
        Some(id.as_str())
    );
    let hook = listed(&test);
    assert_eq!(hook["failures"].as_i64(), Some(0));
    assert!(hook["last_delivery"].as_i64().is_some(), "{hook}");
    let (_, status) = run(&test, ["status"]);
    assert!(status.contains("2026-11-23 10:00:00"), "{status}");
}

#[test]
fn an_expiry_fires_license_expired_once_and_a_renewal_re_arms_it() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_hook(&server.url("/"), "[\"license_expired\"]", "");
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute_batch(
            "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate)
             VALUES (1, 'K1', '2026-11-23T12:00:00'), (2, 'K2', '2020-01-01T00:00:00');",
        )
        .unwrap();
    let pass = |now: &str| run(&test, ["--now", now, "dispatch"]);
    assert_eq!(pass("2026-11-23T10:00:00").0, Some(0));
    assert_eq!(
        server.request_count(),
        0,
        "not expired yet, and old expiries stay quiet"
    );
    let (code, text) = pass("2026-11-23T13:00:00");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1, "{text}");
    let first = server.requests()[0].clone();
    let json: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(json["EventType"], "license_expired");
    assert_eq!(json["LicenseInfo"]["ActivationKey"], "K1");
    assert_eq!(first.header("X-Keyhook-Event"), Some("license.expired"));
    let id = first.header("X-Keyhook-Delivery").unwrap().to_string();
    assert!(id.starts_with("evt_exp_1_"), "{id}");
    assert_eq!(pass("2026-11-23T14:00:00").0, Some(0));
    assert_eq!(server.request_count(), 1, "once");
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute(
            "UPDATE LicenseKeys SET SubscriptionExpiryDate = '2026-11-24T12:00:00' WHERE ID = 1",
            [],
        )
        .unwrap();
    assert_eq!(pass("2026-11-25T00:00:00").0, Some(0));
    assert_eq!(pass("2026-11-25T01:00:00").0, Some(0));
    assert_eq!(server.request_count(), 2, "the renewal re-armed it, once");
    let second = server.requests()[1]
        .header("X-Keyhook-Delivery")
        .unwrap()
        .to_string();
    assert!(second.starts_with("evt_exp_1_") && second != id, "{second}");
}

/// An expiry stored with a space (`2026-11-23 12:00:00`, as SQLite's `datetime()` writes it)
/// fires at its time, not up to a day early (it sorted before every `2026-11-23T...`), with
/// its own time as the event's, not 1970's.
#[test]
fn an_expiry_stored_with_a_space_fires_at_its_time() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_hook(
        &server.url("/"),
        "[\"license.expired\"]",
        "format = \"standard\"",
    );
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute_batch(
            "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate)
             VALUES (1, 'K1', '2026-11-23 12:00:00');",
        )
        .unwrap();
    let pass = |now: &str| run(&test, ["--now", now, "dispatch"]);
    assert_eq!(pass("2026-11-23T10:00:00").0, Some(0));
    assert_eq!(pass("2026-11-23T11:00:00").0, Some(0));
    assert_eq!(server.request_count(), 0, "not expired yet");
    let (code, text) = pass("2026-11-23T12:30:00");
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 1, "{text}");
    let json: serde_json::Value = serde_json::from_slice(&server.requests()[0].body).unwrap();
    assert_eq!(json["timestamp"], "2026-11-23T12:00:00.000Z", "{json}");
}

#[test]
fn events_prune_removes_only_taken_rows_older_than_the_age_and_says_how_many() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let refused = Test::new();
    let (code, text) = run(&refused, ["events", "prune", "--older-than", "1d"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("events are not installed"), "{text}");
    let test = with_hook(&server.url("/"), "[\"license.created\"]", "");
    let writer = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    let insert = |id: i64| {
        writer
            .execute(
                "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
                rusqlite::params![id, format!("K{id}")],
            )
            .unwrap();
    };
    (1..=3).for_each(insert);
    assert_eq!(run(&test, ["dispatch"]).0, Some(0));
    insert(4);
    // Rows 1, 3 and 4 are old; 2 is new; 4 is not taken yet.
    writer
        .execute_batch(
            "UPDATE keyhook_outbox SET created_ms = 0;
             UPDATE keyhook_outbox SET created_ms = 4102444800000
             WHERE seq = (SELECT min(seq) + 1 FROM keyhook_outbox);",
        )
        .unwrap();
    let (code, text) = run(&test, ["events", "prune", "--older-than", "1d"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("removed 2 outbox row(s)"), "{text}");
    let left: Vec<i64> = writer
        .prepare("SELECT seq FROM keyhook_outbox ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Seqs start at the outbox's install time: rows 2 and 4 are the first's + 1 and + 3.
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[1] - left[0], 2, "{left:?}");
    let (_, text) = run(&test, ["events", "prune", "--older-than", "1d"]);
    assert!(text.contains("removed 0 outbox row(s)"), "{text}");
    let (code, text) = run(&test, ["events", "prune", "--older-than", "soon"]);
    assert_eq!(code, Some(2), "{text}");
    // Dispatch goes on from its cursor: the untaken row and a new one, nothing twice.
    insert(5);
    assert_eq!(run(&test, ["dispatch"]).0, Some(0));
    assert_eq!(server.request_count(), 5);
}

#[test]
fn events_made_after_a_reinstall_are_all_taken_and_two_license_databases_share_a_state() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = with_hook(&server.url("/"), "[\"license.created\"]", "");
    let insert = |db: &str, ids: std::ops::RangeInclusive<i64>| {
        let writer = rusqlite::Connection::open(test.path(db)).unwrap();
        for id in ids {
            writer
                .execute(
                    "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
                    rusqlite::params![id, format!("K{id}")],
                )
                .unwrap();
        }
    };
    insert("licenses.db", 1..=3);
    assert_eq!(run(&test, ["dispatch"]).0, Some(0));
    assert_eq!(server.request_count(), 3);
    // The outbox made again numbers on from above the old one: the cursor skips nothing.
    assert_eq!(run(&test, ["events", "uninstall", "--force"]).0, Some(0));
    assert_eq!(run(&test, ["events", "install"]).0, Some(0));
    insert("licenses.db", 4..=7);
    let (code, text) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), 7, "{text}");
    let (_, status) = run(&test, ["events", "status"]);
    assert!(status.contains("0 not yet taken"), "{status}");
    // A second license database beside it, its deliveries in the same state file.
    let other = ["--db", "other.db", "--state", "keyhook-state.db"];
    test.keyhook(["--db", "other.db", "db", "init"])
        .assert()
        .success();
    let (code, text) = run(&test, [other[0], other[1], "events", "install"]);
    assert_eq!(code, Some(0), "{text}");
    insert("other.db", 1..=2);
    insert("licenses.db", 8..=8);
    for args in [&other[..], &[]] {
        let output = test.keyhook(args).arg("dispatch").output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
    assert_eq!(server.request_count(), 10);
    let ids: std::collections::BTreeSet<String> = server
        .requests()
        .iter()
        .map(|r| r.header("X-Keyhook-Delivery").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 10, "every delivery its own id: {ids:?}");
}

#[test]
fn webhooks_list_shows_a_url_a_410_disabled_until_it_is_enabled() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(410)).unwrap();
    let test = with_hook(&server.url("/"), "[\"license.*\"]", "");
    insert_k1(&test);
    assert_eq!(run(&test, ["dispatch"]).0, Some(1));
    let (_, table) = run(&test, ["webhooks", "list"]);
    assert!(
        table.contains("DISABLED (410 Gone)"),
        "as status says: {table}"
    );
    let listed = test
        .keyhook(["webhooks", "list", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(json[0]["urls_disabled_by_410"], 1, "{json}");
    assert_eq!(json[0]["status"], "active", "the file's word: {json}");
    test.keyhook(["enable", "hook"]).assert().success();
    let (_, table) = run(&test, ["webhooks", "list"]);
    assert!(!table.contains("DISABLED"), "{table}");
}

/// A webhook called like a task (its `name`, not its file) after both answered 410: `enable`
/// re-enables both, by either name and the webhook by its file name or its name in another
/// case; the advice is a command that can be pasted; `log --task` shows the task's deliveries,
/// `log --event` takes an event by any of its names and refuses one that is none.
#[test]
fn enable_and_log_find_a_webhook_called_like_a_task() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(410)).unwrap();
    let test = Test::new()
        .search("all", "ID > 0")
        .task("renewals", "all", &server.url("/task"), "")
        .write(
            "tasks/renewals.toml",
            &format!(
                "name = \"CRM Sync\"\nsearch = \"all\"\nschedule = \"every 1 day\"\n\n\
                 [webhook]\nurl = \"{}\"\nsecret = \"s\"\n",
                server.url("/task")
            ),
        )
        .write(
            "webhooks/crm-sync.toml",
            &format!(
                "name = \"CRM Sync\"\nurl = \"{}\"\nevents = [\"license.*\"]\nsecret = \"s3cret\"\n",
                server.url("/event")
            ),
        );
    test.keyhook(["events", "install"]).assert().success();
    insert_k1(&test);
    assert_eq!(run(&test, ["dispatch"]).0, Some(1));
    let (code, said) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("`keyhook enable 'CRM Sync'`"), "{said}");
    assert_eq!(run(&test, ["run-task", "renewals"]).0, Some(1));
    let (code, log) = run(&test, ["log", "--task", "CRM Sync", "--json"]);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        !log.is_empty() && !log.contains("event_type"),
        "the task's deliveries, not the webhook's: {log}"
    );
    for (name, code) in [
        ("license.created", Some(0)),
        ("license_created", Some(0)),
        ("licence.created", Some(2)),
    ] {
        let (got, text) = run(&test, ["log", "--event", name]);
        assert_eq!(got, code, "{name}: {text}");
        if code == Some(0) {
            assert!(text.contains("license.created"), "{name}: {text}");
        } else {
            assert!(text.contains("did you mean `license.created`"), "{text}");
        }
    }
    let (code, said) = run(&test, ["enable", "crm sync"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("CRM Sync: webhook re-enabled (1 URL(s))")
            && said.contains("CRM Sync: webhook re-enabled; waiting deliveries go with"),
        "both: {said}"
    );
    let (code, said) = run(&test, ["enable", "crm-sync"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("webhook was not disabled"), "{said}");
    let (code, said) = run(&test, ["enable", "nothing"]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("no task or webhook is called `nothing`")
            && said.contains("webhooks: CRM Sync"),
        "{said}"
    );
}

/// A webhook renamed while its deliveries wait: nothing sends them any more, so `status` and
/// `run-due` say so, and `prune --removed-webhooks` gives them up (dead, kept in the log).
#[test]
fn a_renamed_webhooks_waiting_deliveries_are_said_and_can_be_given_up() {
    let server = Server::start("127.0.0.1:0", |_| Reply::status(503)).unwrap();
    let test = with_hook(
        &server.url("/"),
        "[\"license.*\"]",
        "retry_schedule = [\"1s\"]",
    );
    insert_k1(&test);
    assert_eq!(run(&test, ["dispatch"]).0, Some(1));
    let text = std::fs::read_to_string(test.path("webhooks/hook.toml")).unwrap();
    let test = test.write(
        "webhooks/hook.toml",
        &text.replace("name = \"hook\"", "name = \"Hook CRM\""),
    );
    let says = "hook: 1 deliveries wait, but no webhook file defines this URL of webhook `hook`";
    let (_, status) = run(&test, ["status"]);
    assert!(status.contains(says), "{status}");
    // While a webhook file has problems it may be the one: said so, and nothing is given up.
    let good = std::fs::read_to_string(test.path("webhooks/hook.toml")).unwrap();
    let test = test.write(
        "webhooks/hook.toml",
        &format!("{good}timeout = \"forever\"\n"),
    );
    let (_, status) = run(&test, ["status"]);
    assert!(
        status.contains("a webhook definition has problems") && !status.contains(says),
        "{status}"
    );
    assert_eq!(run(&test, ["prune", "--removed-webhooks"]).0, Some(2));
    let test = test.write("webhooks/hook.toml", &good);
    let due = test
        .keyhook(["run-due"])
        .env("KEYHOOK_NOW", later(60))
        .output()
        .unwrap();
    assert_eq!(due.status.code(), Some(1), "{}", stdout(&due));
    assert!(stdout(&due).contains(says), "{}", stdout(&due));
    assert_eq!(
        server.request_count(),
        1,
        "not sent to the renamed webhook's URL"
    );
    let (code, said) = run(&test, ["prune", "--removed-webhooks"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("hook: no webhook file defines it: gave up 1 waiting deliveries"),
        "{said}"
    );
    let (_, log) = run(&test, ["log", "--webhook", "hook", "--status", "dead"]);
    assert!(log.contains("dead"), "{log}");
    let due = test
        .keyhook(["run-due"])
        .env("KEYHOOK_NOW", later(120))
        .output()
        .unwrap();
    assert_eq!(due.status.code(), Some(0), "{}", stdout(&due));
    let (_, said) = run(&test, ["prune", "--removed-webhooks"]);
    assert!(
        said.contains("no removed webhook has waiting deliveries"),
        "{said}"
    );
}

/// A webhook's first URL taken from its list moves the second into its place: the deliveries
/// that wait for the first are held, not sent to the second (which has its own, under other
/// ids), until they are given up; then the place follows its new URL.
#[test]
fn deliveries_for_a_url_taken_from_the_list_never_go_to_the_one_that_moves_up() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let file = |urls: &str| {
        format!(
            "name = \"CRM\"\nurls = [{urls}]\nevents = [\"license.*\"]\nsecret = \"s3cret\"\n\
             retry_schedule = [\"1s\"]\n"
        )
    };
    let b = format!("\"{}\"", server.url("/b"));
    let test = Test::new().write(
        "webhooks/crm.toml",
        &file(&format!("\"http://127.0.0.1:9/a\", {b}")),
    );
    test.keyhook(["events", "install"]).assert().success();
    insert_k1(&test);
    assert_eq!(run(&test, ["dispatch"]).0, Some(1), "/a is down");
    assert_eq!(server.request_count(), 1, "/b has its own");
    let test = test.write("webhooks/crm.toml", &file(&b));
    let dispatch = |test: &Test, at: i64| {
        let output = test
            .keyhook(["dispatch"])
            .env("KEYHOOK_NOW", later(at))
            .output()
            .unwrap();
        (output.status.code(), stdout(&output))
    };
    let (code, said) = dispatch(&test, 60);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("CRM: deliveries wait for http://127.0.0.1:9/a")
            && said.contains("its URLs moved in the list"),
        "{said}"
    );
    assert_eq!(server.request_count(), 1, "not sent again to /b");
    let (_, status) = run(&test, ["status"]);
    assert!(status.contains("its URLs moved in the list"), "{status}");
    let (code, said) = run(&test, ["prune", "--removed-webhooks"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("CRM: its URLs moved in the list, away from http://127.0.0.1:9/a: gave up 1"),
        "{said}"
    );
    assert_eq!(dispatch(&test, 120).0, Some(0));
    assert_eq!(server.request_count(), 1, "nothing sent twice");
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute("UPDATE LicenseKeys SET Email = 'k@x' WHERE ID = 1", [])
        .unwrap();
    assert_eq!(dispatch(&test, 180).0, Some(0));
    assert_eq!(server.request_count(), 2, "the place follows its new URL");
}

/// A webhook whose file `check` refuses (here: a name another file has too, so neither is used)
/// is listed as refused, not as active: nothing is sent for it.
#[test]
fn webhooks_list_shows_a_refused_file_as_refused() {
    let test = with_hook("http://127.0.0.1:9/", "[\"license.*\"]", "").write(
        "webhooks/copy.toml",
        "name = \"hook\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"license.*\"]\nsecret = \"s3cret\"\n",
    );
    let (code, table) = run(&test, ["webhooks", "list"]);
    assert_eq!(code, Some(0), "{table}");
    let rows: Vec<&str> = table
        .lines()
        .filter(|line| line.trim_start().starts_with("hook "))
        .collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows.iter()
            .all(|row| row.contains("REFUSED") && !row.contains("active")),
        "{table}"
    );
    let output = test
        .keyhook(["webhooks", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let statuses: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|hook| hook["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["refused", "refused"]);
    // `dispatch` says every webhook problem, not the first file's alone.
    let test = test.write(
        "webhooks/typo.toml",
        "name = \"typo\"\nurl = \"http://127.0.0.1:9/\"\nevents = [\"licence_released\"]\nsecret = \"s\"\n",
    );
    let (code, text) = run(&test, ["dispatch"]);
    assert_eq!(code, Some(2), "{text}");
    for file in ["copy.toml", "hook.toml", "typo.toml"] {
        assert!(
            text.contains(&format!("webhooks/{file}: field")),
            "{file}: {text}"
        );
    }
    assert!(text.contains("nothing is dispatched until"), "{text}");
}
