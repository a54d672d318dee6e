//! Events with both the license database and keyhook's state on PostgreSQL (each in a schema
//! of its own): every change delivered once, signed, in commit order per license; `status`
//! and `log` read them from the server state; `watch` woken by NOTIFY on that state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyhook::delivery::standard::{self, Key};
use keyhook::receiver::{Reply, Request, Server};

use crate::postgres::Schema;
use crate::support::watching::Watching;
use crate::support::{Test, stderr, stdout};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Changes to two licenses, interleaved, each its own commit.
const CHANGES: [&str; 7] = [
    "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1')",
    "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2')",
    "UPDATE LicenseKeys SET ComputerID = 'PC-1', ActivationCount = 1 WHERE ID = 1",
    "UPDATE LicenseKeys SET Email = 'two@example.com' WHERE ID = 2",
    "UPDATE LicenseKeys SET ComputerID = '', ActivationCount = 0 WHERE ID = 1",
    "DELETE FROM LicenseKeys WHERE ID = 2",
    "UPDATE LicenseKeys SET Email = 'one@example.com' WHERE ID = 1",
];

/// What each license went through, in commit order: an activation or a deactivation is
/// also an update.
const EXPECTED: [(&str, &[&str]); 2] = [
    (
        "K1",
        &[
            "license.created",
            "license.activated",
            "license.updated",
            "license.deactivated",
            "license.updated",
            "license.updated",
        ],
    ),
    (
        "K2",
        &["license.created", "license.updated", "license.deleted"],
    ),
];

/// Every event of [`EXPECTED`].
fn event_count() -> usize {
    EXPECTED.iter().map(|(_, events)| events.len()).sum()
}

fn state_url(schema: &Schema) -> String {
    let joiner = if schema.base.contains('?') { '&' } else { '?' };
    format!("{}{joiner}schema={}", schema.base, schema.name)
}

fn run(test: &Test, args: &[&str]) -> (Option<i32>, String) {
    let output = test.keyhook(args).output().unwrap();
    let text = stdout(&output) + &stderr(&output);
    (output.status.code(), text)
}

fn signed(request: &Request) -> bool {
    let key = Key::from_secret(WHSEC).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    standard::verify(
        &[key],
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.header("webhook-signature"),
        &request.body,
        now.as_secs() as i64,
        300,
    )
    .is_ok()
}

/// Event types per license key, in arrival order; panics on a request twice.
fn per_license(requests: &[Request]) -> BTreeMap<String, Vec<String>> {
    let mut ids = BTreeSet::new();
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for request in requests {
        let id = request.header("webhook-id").unwrap().to_string();
        assert!(ids.insert(id.clone()), "{id} arrived twice");
        let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let key = json["data"]["ActivationKey"].as_str().unwrap().to_string();
        let event = json["type"].as_str().unwrap().to_string();
        seen.entry(key).or_default().push(event);
    }
    seen
}

#[test]
fn events_with_the_license_database_and_the_state_both_on_postgresql() {
    let Some(licenses) = Schema::new() else {
        return;
    };
    let Some(state) = Schema::new() else { return };
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = Test::new()
        .write(
            "webhooks/std.toml",
            &format!(
                "name = \"std\"\nurl = \"{}\"\nevents = [\"license.*\"]\nsecret = \"{WHSEC}\"\n\
                 format = \"standard\"\nsignature = \"standard\"\nconcurrency = 4\n",
                server.url("/std")
            ),
        )
        .env("KEYHOOK_DB", &licenses.url())
        .env("KEYHOOK_STATE", &state_url(&state));
    test.keyhook(["db", "init"]).assert().success();
    let (code, text) = run(&test, &["events", "install"]);
    assert_eq!(code, Some(0), "{text}");
    for change in CHANGES {
        licenses.run(change);
    }
    let (code, text) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    let requests = server.requests();
    assert_eq!(requests.len(), event_count(), "{text}");
    assert!(requests.iter().all(signed), "every request signed");
    let seen = per_license(&requests);
    for (key, events) in EXPECTED {
        assert_eq!(seen[key], events, "{key} in commit order");
    }
    let (code, text) = run(&test, &["dispatch"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(server.request_count(), event_count(), "taken once");

    let (code, status) = run(&test, &["status"]);
    assert_eq!(code, Some(0), "{status}");
    let row = status
        .lines()
        .find(|l| l.contains("│ std "))
        .expect(&status);
    let cells: Vec<&str> = row.split(['│', '┆']).map(str::trim).collect();
    // │ std ┆ URL ┆ Last delivered ┆ Pending ┆ Failed ┆ Dead ┆ State │
    assert_eq!(
        cells[3..7],
        ["2026-11-23 10:00:00 UTC", "0", "0", "0"],
        "{status}"
    );
    assert!(cells[7].starts_with("active"), "{status}");
    let (code, log) = run(&test, &["log", "--webhook", "std"]);
    assert_eq!(code, Some(0), "{log}");
    for request in &requests {
        let id = request.header("webhook-id").unwrap();
        let event = request.header("X-Keyhook-Event").unwrap_or("?");
        let row = log.lines().find(|l| l.contains(id)).expect(&log);
        assert!(row.contains(&format!("std {event}")), "{row}");
        assert!(row.contains("delivered"), "{row}");
    }
    // No state file beside the folder: the state is the server's.
    assert!(!test.path("keyhook-state.db").exists());

    watch_is_woken_by_notify(&test, &licenses, &server);
    an_expiry_is_sent_once(&test, &licenses, &server);
}

/// `license.expired`: the scan's window and the expiries seen are kept in the server state.
fn an_expiry_is_sent_once(test: &Test, licenses: &Schema, server: &Server) {
    licenses.run(
        "INSERT INTO LicenseKeys (ID, ActivationKey, SubscriptionExpiryDate) \
         VALUES (4, 'K4', '2026-11-23T12:00:00')",
    );
    let before = server.request_count();
    for now in ["2026-11-23T13:00:00", "2026-11-23T14:00:00"] {
        let (code, text) = run(test, &["--now", now, "dispatch"]);
        assert_eq!(code, Some(0), "{text}");
    }
    assert_eq!(
        server.request_count(),
        before + 2,
        "created, then expired once"
    );
    let mut k4 = per_license(&server.requests())["K4"].clone();
    k4.sort();
    assert_eq!(k4, ["license.created", "license.expired"]);
}

fn watch_is_woken_by_notify(test: &Test, licenses: &Schema, server: &Server) {
    // The timer is 300 s: only a notification wakes it this soon.
    let watching = Watching::start_with(test, &["watch", "--poll", "300s"]);
    licenses.run("INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (3, 'K3')");
    let delivered = server.wait_for(event_count() + 1, Duration::from_secs(30));
    assert!(delivered, "watch delivered the commit");
    // A reload is looked for though no commit or timer wakes a pass.
    watching.signal("-HUP");
    watching.wait_for_line(&["watch: SIGHUP; reloaded: 1 webhook(s)"]);
    assert_eq!(watching.stop(), Some(0));
    let seen = per_license(&server.requests());
    assert_eq!(seen["K3"], ["license.created"]);
    assert_eq!(server.request_count(), event_count() + 1);
}
