//! Signature schemes, secret sources and rotation, `sign`, `verify`, `secret new`, and the
//! promise that no secret appears anywhere a run leaves a trace.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{Test, stderr, stdout, text};
use keyhook::delivery::standard::{self, Key};
use keyhook::receiver::{Reply, Request, Server};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn one_license(url: &str, webhook: &str) -> Test {
    let test = Test::new().search("one", "1 = 1").write(
        "tasks/one.toml",
        &format!("name = \"one\"\nsearch = \"one\"\nschedule = \"every 1 day\"\n[webhook]\nurl = \"{url}\"\n{webhook}\n"),
    );
    test.license(&[("ActivationKey", text("K1")), ("FullName", text("Zoë"))]);
    test
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn standard_ok(request: &Request, secrets: &[&str]) -> bool {
    let keys: Vec<Key> = secrets
        .iter()
        .map(|s| Key::from_secret(s).unwrap())
        .collect();
    standard::verify(
        &keys,
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.header("webhook-signature"),
        &request.body,
        unix_now(),
        300,
    )
    .is_ok()
}

#[test]
fn standard_scheme_headers_use_the_delivery_id_and_the_real_time() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = one_license(
        &server.url("/"),
        &format!("secret = \"{WHSEC}\"\nsignature = \"standard\""),
    );
    // A pinned clock years away must not leak into webhook-timestamp.
    test.keyhook(["run-task", "one", "--now", "2020-01-01T00:00:00"])
        .assert()
        .success();
    let request = &server.requests()[0];
    assert_eq!(
        request.header("webhook-id"),
        request.header("X-Keyhook-Delivery")
    );
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .unwrap()
        .parse()
        .unwrap();
    assert!((timestamp - unix_now()).abs() < 120, "{timestamp}");
    assert!(request.header("X-QLM-Signature").is_none(), "standard only");
    assert!(standard_ok(request, &[WHSEC]));
    assert!(!standard_ok(request, &[OLD_WHSEC]));
}

#[test]
fn a_request_signed_while_a_slow_answer_was_awaited_is_signed_again_when_it_leaves() {
    // The second delivery is signed while the first one's answer is awaited; that answer takes
    // 2.5 s, so by the time the second leaves its timestamp would be stale: it is signed anew.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let server = Server::start("127.0.0.1:0", move |_| {
        match answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply::ok().with_delay(std::time::Duration::from_millis(2500)),
            _ => Reply::ok(),
        }
    })
    .unwrap();
    let test = one_license(
        &server.url("/"),
        &format!("secret = \"{WHSEC}\"\nsignature = \"standard\""),
    );
    test.license(&[("ActivationKey", text("K2"))]);
    test.keyhook(["run-task", "one"]).assert().success();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let second = &requests[1];
    let timestamp: i64 = second.header("webhook-timestamp").unwrap().parse().unwrap();
    let arrived = second
        .received_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        arrived - timestamp <= 1,
        "signed at {timestamp}, arrived at {arrived}"
    );
    assert!(standard_ok(second, &[WHSEC]));
}

#[test]
fn both_schemes_send_both_header_sets() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = one_license(
        &server.url("/"),
        &format!("secret = \"{WHSEC}\"\nsignature = [\"qlm\", \"standard\"]"),
    );
    test.keyhook(["run-task", "one"]).assert().success();
    let request = &server.requests()[0];
    assert!(standard_ok(request, &[WHSEC]));
    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            [request.body.as_slice(), WHSEC.as_bytes()].concat(),
        ))
    };
    assert_eq!(request.header("X-QLM-Signature"), Some(expected.as_str()));
}

#[test]
fn rotation_adds_one_signature_per_secret() {
    for webhook in [
        format!(
            "secret = \"{WHSEC}\"\nprevious_secrets = [\"{OLD_WHSEC}\"]\nsignature = \"standard\""
        ),
        "secret_file = \"secrets.txt\"\nsignature = \"standard\"".to_string(),
    ] {
        let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
        let test = one_license(&server.url("/"), &webhook)
            .write("tasks/secrets.txt", &format!("{WHSEC}\n{OLD_WHSEC}\n"));
        test.keyhook(["run-task", "one"]).assert().success();
        let request = &server.requests()[0];
        let signatures = request.header("webhook-signature").unwrap();
        assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
        assert!(standard_ok(request, &[WHSEC]), "the new key alone verifies");
        assert!(
            standard_ok(request, &[OLD_WHSEC]),
            "the old key alone verifies"
        );
    }
}

#[test]
fn every_secret_source_signs() {
    let sha = |body: &[u8], secret: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest([body, secret.as_bytes()].concat()))
    };
    let cases = [
        ("secret = \"lit-secret\"", "lit-secret"),
        ("secret_env = \"ONE_SECRET\"", "env-secret"),
        ("secret_file = \"one.secret\"", "file-secret"),
        ("secret_credential = \"one\"", "credential-secret"),
    ];
    for (line, secret) in cases {
        let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
        let test = one_license(&server.url("/"), line)
            .env("ONE_SECRET", "env-secret")
            .write("tasks/one.secret", "file-secret\n")
            .write("credentials/one", "credential-secret\n");
        let credentials = test.path("credentials");
        let output = test
            .keyhook(["run-task", "one"])
            .env("CREDENTIALS_DIRECTORY", &credentials)
            .output()
            .unwrap();
        assert!(output.status.success(), "{line}: {}", stderr(&output));
        let request = &server.requests()[0];
        assert_eq!(
            request.header("X-QLM-Signature"),
            Some(sha(&request.body, secret).as_str()),
            "{line}"
        );
    }
}

#[test]
fn a_missing_or_empty_secret_is_a_configuration_error_naming_the_task() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    for (line, expected) in [
        (
            "secret_env = \"UNSET_SECRET_FOR_TEST\"",
            "environment variable UNSET_SECRET_FOR_TEST (secret_env) is not set",
        ),
        ("secret_file = \"empty.secret\"", "is empty"),
        (
            "secret_credential = \"nope\"",
            "$CREDENTIALS_DIRECTORY is not set",
        ),
        (
            "secret = \"not-a-whsec\"\nsignature = \"standard\"",
            "not a Standard Webhooks key",
        ),
    ] {
        let test = one_license(&server.url("/"), line).write("tasks/empty.secret", "\n");
        let output = test.keyhook(["run-task", "one"]).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{line}");
        assert!(
            stderr(&output).contains("task `one` (tasks/one.toml)"),
            "{}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{line}: {}",
            stderr(&output)
        );
    }
    assert_eq!(server.request_count(), 0, "never an unsigned request");
}

#[test]
fn sign_reproduces_the_spec_vectors() {
    let test = Test::new()
        .write("a.json", "{\"test\": 2432232314}")
        .write(
            "b.json",
            "{\"email\":\"test@example.com\",\"username\":\"test_user\"}",
        )
        .env("A", WHSEC)
        .env("B", OLD_WHSEC);
    let cases = [
        (
            "A",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "a.json",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n",
        ),
        (
            "B",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            "b.json",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=\n",
        ),
    ];
    for (env, id, timestamp, body, expected) in cases {
        let output = test
            .keyhook([
                "sign",
                "--scheme",
                "standard",
                "--secret-env",
                env,
                "--id",
                id,
                "--timestamp",
                timestamp,
                "--body",
                body,
            ])
            .output()
            .unwrap();
        assert_eq!(stdout(&output), expected, "{}", stderr(&output));
    }
    let qlm = test
        .write(
            "fixture.json",
            std::str::from_utf8(include_bytes!("fixtures/qlm-example-body.json")).unwrap(),
        )
        .env("Q", "my-secret-key");
    let output = qlm
        .keyhook([
            "sign",
            "--scheme",
            "qlm",
            "--secret-env",
            "Q",
            "--body",
            "fixture.json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&output),
        "8514cbf9c4396c2a5e665e5e11d051700f14f8757b360de8f0e2ff933955d83d\n"
    );
}

#[test]
fn secret_new_prints_a_fresh_32_byte_whsec_secret() {
    let test = Test::new();
    let first = stdout(&test.keyhook(["secret", "new"]).output().unwrap());
    let second = stdout(&test.keyhook(["secret", "new"]).output().unwrap());
    assert_ne!(first, second);
    let secret = first.trim();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );
    Key::from_secret(secret).unwrap();
}

/// Headers and body of a real request, written as files for `verify`.
fn captured(test: &Test, request: &Request, body: &[u8]) {
    let headers: String = request
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\n"))
        .collect();
    std::fs::write(test.path("headers.txt"), headers).unwrap();
    std::fs::write(test.path("body.json"), body).unwrap();
}

fn verify(test: &Test, env: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec![
        "verify",
        "--secret-env",
        env,
        "--headers",
        "headers.txt",
        "--body",
        "body.json",
    ];
    args.extend_from_slice(extra);
    let output = test.keyhook(args).output().unwrap();
    (output.status.code(), stdout(&output))
}

#[test]
fn verify_says_why() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = one_license(
        &server.url("/"),
        &format!("secret = \"{WHSEC}\"\nsignature = [\"qlm\", \"standard\"]"),
    )
    .env("RIGHT", WHSEC)
    .env("WRONG", OLD_WHSEC);
    test.keyhook(["run-task", "one"]).assert().success();
    let request = server.requests()[0].clone();
    let now = ["--now", &chrono::Utc::now().to_rfc3339()].map(str::to_string);
    let now: Vec<&str> = now.iter().map(String::as_str).collect();
    let json: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    let pretty = serde_json::to_vec_pretty(&json).unwrap();

    captured(&test, &request, &request.body);
    for scheme in ["qlm", "standard"] {
        let (code, text) = verify(
            &test,
            "RIGHT",
            &[&["--scheme", scheme], now.as_slice()].concat(),
        );
        assert_eq!(
            (code, text.as_str()),
            (Some(0), format!("valid ({scheme} signature)\n").as_str())
        );
        let (code, text) = verify(
            &test,
            "WRONG",
            &[&["--scheme", scheme], now.as_slice()].concat(),
        );
        assert_eq!(code, Some(1));
        assert!(text.contains("wrong secret"), "{text}");
    }
    captured(&test, &request, &pretty);
    for scheme in ["qlm", "standard"] {
        let (code, text) = verify(
            &test,
            "RIGHT",
            &[&["--scheme", scheme], now.as_slice()].concat(),
        );
        assert_eq!(code, Some(1));
        assert!(
            text.contains("re-serialized (whitespace changed)"),
            "{scheme}: {text}"
        );
    }
    // An hour later the standard timestamp is stale.
    captured(&test, &request, &request.body);
    let late = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (code, text) = verify(&test, "RIGHT", &["--scheme", "standard", "--now", &late]);
    assert_eq!(code, Some(1));
    assert!(text.contains("outside the 300 s tolerance"), "{text}");
    // A header missing.
    std::fs::write(test.path("headers.txt"), "Content-Type: application/json\n").unwrap();
    let (code, text) = verify(&test, "RIGHT", &["--scheme", "qlm"]);
    assert_eq!(code, Some(1));
    assert!(text.contains("no X-QLM-Signature header"), "{text}");
    // A raw request on standard input; the scheme is read off the headers.
    let raw: Vec<u8> = [
        b"POST /hook HTTP/1.1\r\n".to_vec(),
        request
            .headers
            .iter()
            .flat_map(|(n, v)| format!("{n}: {v}\r\n").into_bytes())
            .collect(),
        b"\r\n".to_vec(),
        request.body.clone(),
    ]
    .concat();
    let output = test
        .keyhook([&["verify", "--secret-env", "RIGHT"], now.as_slice()].concat())
        .write_stdin(raw)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&output),
        "valid (standard signature)\n",
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_warns_about_readable_literal_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let test = one_license("http://127.0.0.1:9/", "secret = \"in-the-file\"");
    let path = test.path("tasks/one.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = test.keyhook(["check"]).output().unwrap();
    assert!(stdout(&output).contains(
        "warning: tasks/one.toml: holds a literal `secret` and other users can read the file"
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = test.keyhook(["check"]).output().unwrap();
    assert!(!stdout(&output).contains("warning"), "{}", stdout(&output));
}

/// Everything a run produces, grepped for the secret.
/// What the commands print when things go wrong: a malformed task file whose broken line
/// holds the secret, a license row that cannot be read, a state file that cannot be used.
fn error_paths(test: &Test, secret: &str) -> String {
    let broken = format!(
        "name = \"broken\"\nsearch = \"one\"\nschedule = \"every 1 day\"\n[webhook]\n\
         url = \"http://127.0.0.1:9/\"\nsecret = \"{secret}\" trailing\n"
    );
    std::fs::write(test.path("tasks/broken.toml"), broken).unwrap();
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.execute(
        "INSERT INTO LicenseKeys (ActivationKey, Duration) VALUES ('K2', 'thirty')",
        [],
    )
    .unwrap();
    std::fs::create_dir(test.path("state-is-a-folder")).unwrap();
    let mut printed = String::new();
    for args in [
        &["check"][..],
        &["run-due"],
        &["run-task", "broken"],
        &["run-task", "one", "--force"],
        &["run-task", "one", "--force", "--json"],
        &["log", "--status", "bad"],
        &["dry-run", "one", "--payloads"],
        &["--state", "state-is-a-folder", "run-task", "one", "--force"],
        &["--state", "state-is-a-folder", "status"],
    ] {
        let output = test.keyhook(args).output().unwrap();
        printed.push_str(&stdout(&output));
        printed.push_str(&stderr(&output));
    }
    std::fs::remove_file(test.path("tasks/broken.toml")).unwrap();
    printed
}

#[test]
fn no_secret_leaks_anywhere() {
    const CANARY: &str = "whsec_Q0FOQVJZLWNhbmFyeS1jYW5hcnktY2FuYXJ5IQ==";
    let failing = Server::start("127.0.0.1:0", |request| {
        if request.body_text().contains("K1") {
            Reply::status(500).with_body("nope")
        } else {
            Reply::ok()
        }
    })
    .unwrap();
    let test = one_license(
        &failing.url("/"),
        "secret_env = \"CANARY\"\nsignature = [\"qlm\", \"standard\"]",
    )
    .env("CANARY", CANARY);
    let mut everything = String::new();
    for args in [
        vec!["dry-run", "one", "--payloads"],
        vec!["dry-run", "one", "--json"],
        vec!["dry-run", "one"],
        vec!["run-task", "one"],
        vec!["run-task", "one", "--force", "--json"],
        vec!["retry", "--now", "2026-11-24T10:00:00"],
        vec!["log", "--json", "--attempts"],
        vec!["log", "--attempts"],
        vec!["status"],
        vec!["list"],
        vec!["check"],
        vec!["next"],
        vec!["--help"],
        vec!["run-task", "--help"],
        vec![
            "verify",
            "--secret-env",
            "CANARY",
            "--headers",
            "nope",
            "--body",
            "nope",
        ],
    ] {
        let output = test.keyhook(&args).output().unwrap();
        everything.push_str(&stdout(&output));
        everything.push_str(&stderr(&output));
    }
    let run = test
        .keyhook(["run-task", "one", "--force"])
        .env("CANARY", "")
        .output()
        .unwrap();
    everything.push_str(&stderr(&run));
    everything.push_str(&error_paths(&test, CANARY));
    assert!(
        everything.contains("Zoë") && everything.contains("X-QLM-Signature"),
        "the commands did run"
    );
    for error in [
        "invalid TOML at line",
        "bad row",
        "could not open state database",
    ] {
        assert!(
            everything.contains(error),
            "the error path `{error}` did run"
        );
    }
    assert!(!everything.contains(CANARY), "a secret leaked into output");
    assert!(
        !everything.contains("Q0FOQVJZ"),
        "a secret's key part leaked into output"
    );
    for file in ["keyhook-state.db", "keyhook-state.db-wal"] {
        if let Ok(bytes) = std::fs::read(test.path(file)) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("Q0FOQVJZ"),
                "{file} holds the secret"
            );
        }
    }
}
