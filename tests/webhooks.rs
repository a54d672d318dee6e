//! The webhook registry: `webhooks/*.toml` and QLM's `[events]` shape, `webhooks list`,
//! `--environment`, `check` on webhooks, and `secret rotate` with its overlap.

use crate::support::{Test, later, stderr, stdout};

const OLD_WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nurl = \"{url}\"\nevents = [\"license.activated\", \"license_released\"]\n\
         secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n{extra}\n"
    )
}

fn registry() -> Test {
    Test::new()
        .write(
            "webhooks/crm.toml",
            &webhook("CRM", "https://bot:hunter2@crm.example.com/hook", ""),
        )
        .write(
            "webhooks/staging-crm.toml",
            &webhook(
                "Staging CRM",
                "https://staging.example.com/a;https://staging.example.com/b",
                "environment = \"staging\"\nenabled = false",
            ),
        )
        .write(
            "keyhook.toml",
            "[events]\nwebHookSecretKey = \"qlm-secret\"\nwebHookMaxRetries = 3\n\
             license_created = \"https://qlm.example.com/x;https://qlm.example.com/y\"\n",
        )
}

#[test]
fn list_filters_and_masks() {
    let test = registry();
    let output = test.keyhook(["webhooks", "list"]).output().unwrap();
    let text = stdout(&output);
    assert!(output.status.success(), "{text}{}", stderr(&output));
    for expected in [
        "https://bot:***@crm.example.com/hook",
        "https://staging.example.com/a (+1 more)",
        "qlm:license_created:1",
        "qlm:license_created:2",
        "inactive",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    let names = |args: &[&str]| -> Vec<String> {
        let output = test
            .keyhook([&["webhooks", "list", "--json"], args].concat())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let list = list.as_array().unwrap().clone();
        list.iter()
            .map(|w| w["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&[]).len(), 4);
    assert_eq!(names(&["--environment", "staging"]), ["Staging CRM"]);
    assert_eq!(names(&["--status", "inactive"]), ["Staging CRM"]);
    assert_eq!(
        names(&["--search", "QLM.EXAMPLE"]),
        ["qlm:license_created:1", "qlm:license_created:2"]
    );
    assert_eq!(names(&["--search", "crm", "--status", "active"]), ["CRM"]);
    let by_env = test
        .keyhook(["webhooks", "list", "--json"])
        .env("KEYHOOK_ENVIRONMENT", "production")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&by_env.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    let crm = &json[0];
    assert_eq!(
        crm["events"],
        serde_json::json!(["license.activated", "license.deactivated"])
    );
    assert_eq!(crm["last_delivery"], serde_json::Value::Null);
    assert_eq!(crm["failures"], serde_json::Value::Null);
}

#[test]
fn environments_are_validated() {
    let test = registry();
    let output = test
        .keyhook(["webhooks", "list", "--environment", "qa"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("`qa` is not an environment"),
        "{}",
        stderr(&output)
    );
    let output = test
        .keyhook(["webhooks", "list"])
        .env("KEYHOOK_ENVIRONMENT", "prod")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn a_bad_file_is_named_and_holds_back_no_other() {
    let test = registry()
        .write(
            "webhooks/typo.toml",
            &webhook("Typo", "https://a.example/x", "")
                .replace("license_released", "licence_released"),
        )
        .write(
            "webhooks/broken.toml",
            "name = \"B\"\nsecret = \"hunter2\nurl = 1\n",
        );
    let list = test.keyhook(["webhooks", "list"]).output().unwrap();
    let text = stdout(&list);
    assert!(list.status.success() && text.contains("CRM"), "{text}");
    assert!(
        text.contains("2 definition file(s) have problems"),
        "{text}"
    );
    let check = test.keyhook(["check"]).output().unwrap();
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(2), "{text}");
    assert!(
        text.contains("webhooks/typo.toml: field `events`: `licence_released` is not an event; did you mean `license_released`?"),
        "{text}"
    );
    assert!(
        text.contains("webhooks/broken.toml: invalid TOML at line 2"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_folder_with_only_webhooks_is_a_configuration_folder() {
    let literal = "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"";
    let test = Test::new()
        .write(
            "webhooks/crm.toml",
            &webhook("CRM", "https://crm.example.com/hook", "")
                .replace(literal, "secret_env = \"CRM_SECRET\""),
        )
        .env("CRM_SECRET", "s3cret");
    std::fs::remove_dir_all(test.path("tasks")).ok();
    std::fs::remove_dir_all(test.path("searches")).ok();
    // (Events installed: without them, check says dispatch would stop.)
    test.keyhook(["events", "install"]).assert().success();
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(
        stdout(&output),
        "ok: 0 searches, 0 tasks and 1 webhooks are valid\n"
    );
    assert!(output.status.success());
}

#[test]
fn check_resolves_what_a_send_would() {
    let test = Test::new()
        .write(
            "webhooks/env.toml",
            &webhook("Env", "https://a.example/x", "").replace(
                "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
                "secret_env = \"KEYHOOK_TEST_UNSET_SECRET\"",
            ),
        )
        .write(
            "webhooks/ca.toml",
            &webhook("Ca", "https://b.example/x", "ca_file = \"nope.pem\""),
        )
        .write(
            "webhooks/std.toml",
            &webhook("Std", "http://10.1.2.3/x", "signature = \"standard\"")
                .replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "not-a-key"),
        )
        .write(
            "webhooks/cleartext.toml",
            &webhook("Clear", "http://crm.example.com/x", ""),
        )
        .write(
            "keyhook.toml",
            "[events]\nlicense_created = \"https://q.example/x;https://q.example/y\"\n",
        );
    let output = test.keyhook(["check"]).output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    for expected in [
        "error: webhooks/env.toml: environment variable KEYHOOK_TEST_UNSET_SECRET (secret_env) is not set",
        "error: webhooks/ca.toml: could not read ca_file",
        "error: webhooks/std.toml: the secret is not a Standard Webhooks key",
        "error: keyhook.toml: [events]: no secret: set `webHookSecretKey`",
        "warning: webhooks/cleartext.toml: url sends payloads and their signatures unencrypted to crm.example.com",
        "warning: webhooks/std.toml: url sends payloads and their signatures unencrypted to 10.1.2.3",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }
    assert_eq!(text.matches("keyhook.toml: [events]").count(), 1, "{text}");
}

/// `sign --webhook` at `now`: the `webhook-signature` header the webhook would send.
fn signature(test: &Test, now: &str) -> String {
    let unix = chrono::NaiveDateTime::parse_from_str(now, "%Y-%m-%dT%H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp()
        .to_string();
    let args = [
        "sign",
        "--webhook",
        "crm",
        "--id",
        "msg_1",
        "--timestamp",
        &unix,
        "--body",
        "body.json",
        "--now",
        now,
    ];
    let output = test.keyhook(args).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let header = stdout(&output).trim().to_string();
    let headers =
        format!("webhook-id: msg_1\nwebhook-timestamp: {unix}\nwebhook-signature: {header}\n");
    std::fs::write(test.path("headers.txt"), headers).unwrap();
    header
}

fn verifies(test: &Test, secret: &str, now: &str) -> bool {
    let args = [
        "verify",
        "--secret-env",
        "TRY",
        "--headers",
        "headers.txt",
        "--body",
        "body.json",
        "--now",
        now,
    ];
    let output = test.keyhook(args).env("TRY", secret).output().unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        stderr(&output)
    );
    output.status.success()
}

#[test]
fn rotation_signs_with_both_secrets_for_a_day_then_only_the_new_one() {
    use std::os::unix::fs::PermissionsExt;
    let test = Test::new()
        .write(
            "webhooks/crm.toml",
            &webhook(
                "CRM",
                "https://crm.example.com/hook",
                "signature = \"standard\"",
            )
            .replace(
                "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
                "secret_file = \"crm.secret\"",
            ),
        )
        .write("webhooks/crm.secret", &format!("{OLD_WHSEC}\n"))
        .write("body.json", "{\"EventType\":\"license_activated\"}");
    let output = test.keyhook(["secret", "rotate", "crm"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("also signs until 2026-11-24 10:00"),
        "{}",
        stdout(&output)
    );
    let new = std::fs::read_to_string(test.path("webhooks/crm.secret")).unwrap();
    let new = new.trim();
    assert!(new.starts_with("whsec_") && new != OLD_WHSEC, "{new}");
    let sidecar = std::fs::read_to_string(test.path("webhooks/crm.secret.previous")).unwrap();
    assert_eq!(sidecar, format!("2026-11-24T10:00:00Z {OLD_WHSEC}\n"));
    for file in ["webhooks/crm.secret", "webhooks/crm.secret.previous"] {
        let mode = std::fs::metadata(test.path(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let during = later(23 * 3600);
    assert_eq!(signature(&test, &during).matches("v1,").count(), 2);
    assert!(verifies(&test, OLD_WHSEC, &during) && verifies(&test, new, &during));
    let after = later(24 * 3600);
    assert_eq!(signature(&test, &after).matches("v1,").count(), 1);
    assert!(
        !verifies(&test, OLD_WHSEC, &after),
        "the old secret no longer signs"
    );
    assert!(verifies(&test, new, &after));
    assert!(!stdout(&output).contains(new) && !stdout(&output).contains(OLD_WHSEC));
}

#[test]
fn rotate_refuses_secrets_keyhook_does_not_hold() {
    let test = registry();
    let output = test.keyhook(["secret", "rotate", "CRM"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("`secret rotate` needs `secret_file`"),
        "{text}"
    );
    assert!(!text.contains("whsec_"), "{text}");
    let output = test
        .keyhook(["secret", "rotate", "nobody"])
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("no webhook is called `nobody`"),
        "{}",
        stderr(&output)
    );
}

/// A task and an event webhook of one name (a state from before `check` refused the pair):
/// the task's retries go to the task's receiver, never to the webhook's URL, whatever the
/// state's list of webhook sources says; with deliveries of both kinds waiting, neither goes.
#[test]
fn a_tasks_retries_never_go_to_a_webhook_of_its_name() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = Arc::new(AtomicBool::new(false));
    let answers = Arc::clone(&up);
    let task_receiver = keyhook::receiver::Server::start("127.0.0.1:0", move |_| {
        match answers.load(Ordering::SeqCst) {
            true => keyhook::receiver::Reply::ok(),
            false => keyhook::receiver::Reply::status(500),
        }
    })
    .unwrap();
    let webhook_receiver =
        keyhook::receiver::Server::start("127.0.0.1:0", |_| keyhook::receiver::Reply::ok())
            .unwrap();
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("crm", "all", &task_receiver.url("/task"), "");
    test.simple_license(1, "2027-01-01T00:00:00");
    let run = test.keyhook(["run-task", "crm"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    // What a dispatch of an event webhook named `crm` noted in the state.
    let state = rusqlite::Connection::open(test.path("keyhook-state.db")).unwrap();
    state
        .execute(
            "INSERT INTO webhook_sources (source, webhook, url, first_seen) VALUES ('crm', 'crm', ?1, 0)",
            [webhook_receiver.url("/webhook")],
        )
        .unwrap();
    up.store(true, Ordering::SeqCst);
    let retry = test
        .keyhook(["--now", &later(3600), "retry"])
        .output()
        .unwrap();
    assert_eq!(retry.status.code(), Some(0), "{retry:?}");
    assert_eq!(task_receiver.request_count(), 2, "{}", stdout(&retry));
    assert_eq!(webhook_receiver.request_count(), 0);
    // An event delivery waiting under the same name: neither kind is sent, and it says why.
    test.keyhook(["--now", &later(3600), "run-task", "crm", "--force"])
        .assert()
        .success();
    up.store(false, Ordering::SeqCst);
    let failed = test
        .keyhook(["--now", &later(7200), "run-task", "crm", "--force"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    state
        .execute(
            "UPDATE deliveries SET event_type = 'license.updated'
             WHERE seq = (SELECT max(seq) FROM deliveries)",
            [],
        )
        .unwrap();
    state
        .execute(
            "INSERT INTO deliveries (id, run_id, task, license_id, activation_key, status, created_at, next_attempt_at, updated_at)
             SELECT 'msg_task', run_id, task, license_id, activation_key, 'failed', created_at, 0, updated_at
             FROM deliveries WHERE seq = (SELECT max(seq) FROM deliveries)",
            [],
        )
        .unwrap();
    let before = (
        task_receiver.request_count(),
        webhook_receiver.request_count(),
    );
    let held = test
        .keyhook(["--now", &later(90000), "retry"])
        .output()
        .unwrap();
    assert_eq!(held.status.code(), Some(2), "{held:?}");
    assert!(
        stdout(&held).contains("`crm` is the name of a task and of an event webhook"),
        "{}",
        stdout(&held)
    );
    assert_eq!(
        (
            task_receiver.request_count(),
            webhook_receiver.request_count()
        ),
        before
    );
}

/// `check` refuses a webhook named as a task's file, and a `#` in a webhook's name (keyhook
/// names a webhook's second URL `name#2`).
#[test]
fn a_webhook_may_not_take_a_tasks_file_name_or_a_hash() {
    let test = Test::new()
        .search("all", "SubscriptionExpiryDate > [today_start]")
        .task("crm", "all", "http://127.0.0.1:9/task", "")
        .write(
            "webhooks/crm.toml",
            "name = \"crm\"\nurl = \"http://127.0.0.1:9/w\"\nevents = [\"license.created\"]\nsecret = \"s\"\n",
        )
        .write(
            "webhooks/other.toml",
            "name = \"other#2\"\nurl = \"http://127.0.0.1:9/o\"\nevents = [\"license.created\"]\nsecret = \"s\"\n",
        );
    let output = test.keyhook(["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains("crm.toml: field `name`: `crm` is also the file name of task")
            && text.contains("rename the webhook"),
        "{text}"
    );
    assert!(text.contains("`other#2` holds a `#`"), "{text}");
}
