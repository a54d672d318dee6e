//! `watch` follows its definitions while it runs: a webhook added, edited or broken, and
//! SIGHUP, each seen without a restart; a broken edit keeps the webhooks that worked.

use std::time::Duration;

use crate::support::Test;
use crate::support::watching::{PATIENCE, Watching};
use keyhook::receiver::{Reply, Server};

fn webhook(name: &str, url: &str) -> String {
    format!(
        "name = \"{name}\"\nurl = \"{url}\"\nevents = [\"license.*\"]\nsecret = \"s3cret-{name}\"\n\
         format = \"standard\"\n"
    )
}

fn setup(url: &str) -> Test {
    let test = Test::new().write("webhooks/hook.toml", &webhook("hook", url));
    test.keyhook(["events", "install"]).assert().success();
    test
}

fn insert(test: &Test, id: i64) {
    rusqlite::Connection::open(test.path("licenses.db"))
        .unwrap()
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (?1, ?2)",
            rusqlite::params![id, format!("K{id}")],
        )
        .unwrap();
}

fn write(test: &Test, relative: &str, text: &str) {
    std::fs::write(test.path(relative), text).unwrap();
}

#[test]
fn a_webhook_added_while_watch_runs_receives_the_next_event() {
    let first = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let added = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = setup(&first.url("/"));
    let watching = Watching::start(&test);
    write(&test, "webhooks/crm.toml", &webhook("crm", &added.url("/")));
    // An event committed while the file is written may be taken by a pass that reloaded
    // just before: the one after the reload line is the first sure to reach the new webhook.
    watching.wait_for_line(&[
        "watch: definitions changed; reloaded: 2 webhook(s)",
        "added `crm`",
    ]);
    insert(&test, 1);
    assert!(
        added.wait_for(1, PATIENCE),
        "the added webhook got the event"
    );
    assert!(first.wait_for(1, PATIENCE), "the first one still gets it");
    std::fs::remove_file(test.path("webhooks/crm.toml")).unwrap();
    watching.wait_for_line(&["reloaded: 1 webhook(s)", "removed `crm`"]);
    insert(&test, 2);
    assert!(first.wait_for(2, PATIENCE));
    assert_eq!(
        added.request_count(),
        1,
        "a removed webhook gets nothing more"
    );
    assert_eq!(watching.stop(), Some(0));
}

#[test]
fn a_broken_edit_keeps_the_old_webhook_and_a_fixed_one_is_taken() {
    let old = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let new = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = setup(&old.url("/"));
    let watching = Watching::start(&test);
    // The broken line is the secret's: the error names the file and line, not the value.
    let broken = webhook("hook", &new.url("/")).replace("s3cret-hook\"", "s3cret-hook");
    write(&test, "webhooks/hook.toml", &broken);
    watching.wait_for_line(&["not reloaded", "1 webhook(s) loaded before"]);
    watching.wait_for_line(&["error: webhooks/hook.toml: invalid TOML at line 4"]);
    let stderr = watching.wait_for_line(&["4 | secret = "]);
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // No event is taken while the file is broken: taken now, it would pass the webhook's new
    // definition by. The old one's retries would still go out.
    insert(&test, 1);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        old.request_count(),
        0,
        "held, not sent with the old definition"
    );
    // A missing secret file fails the same way.
    let missing = webhook("hook", &new.url("/")).replace("secret = ", "secret_file = ");
    write(&test, "webhooks/hook.toml", &missing);
    watching.wait_for_line(&["error: webhooks/hook.toml: could not read secret_file"]);
    std::fs::write(test.path("webhooks/s3cret-hook"), "rotated-secret\n").unwrap();
    watching.wait_for_line(&["definitions changed; reloaded: 1 webhook(s) (changed `hook`)"]);
    insert(&test, 2);
    assert!(
        new.wait_for(2, PATIENCE),
        "the fixed definition delivers both, the held event first"
    );
    assert_eq!(old.request_count(), 0);
    let stderr = watching.stderr();
    assert!(!stderr.contains("rotated-secret"), "{stderr}");
    assert_eq!(watching.stop(), Some(0));
}

#[test]
fn sighup_reloads_and_watch_goes_on() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = setup(&server.url("/"));
    let watching = Watching::start(&test);
    watching.signal("-HUP");
    watching
        .wait_for_line(&["watch: SIGHUP; reloaded: 1 webhook(s) (none added, removed or changed)"]);
    // Disabled by hand, then SIGHUP: the webhook is out, and watch says no event goes anywhere.
    let disabled = webhook("hook", &server.url("/")) + "enabled = false\n";
    write(&test, "webhooks/hook.toml", &disabled);
    watching.signal("-HUP");
    watching.wait_for_line(&[
        "reloaded: 0 webhook(s) (removed `hook`)",
        "no active webhook: new events wait",
    ]);
    // An event while none is active waits for one, as `dispatch` leaves it.
    insert(&test, 1);
    std::thread::sleep(Duration::from_millis(1500));
    write(
        &test,
        "webhooks/hook.toml",
        &webhook("hook", &server.url("/")),
    );
    watching.wait_for_line(&["reloaded: 1 webhook(s) (added `hook`)"]);
    insert(&test, 2);
    assert!(
        server.wait_for(2, PATIENCE),
        "watch still delivers after SIGHUP, the held event too"
    );
    assert_eq!(watching.stop(), Some(0));
}
