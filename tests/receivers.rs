//! The receivers users copy (`examples/receivers/`) and `keyhook listen`, each run as a real
//! process and fed by a real `keyhook run-task`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Test, stdout};

/// A receiver process, killed when dropped.
struct Receiver {
    child: Child,
    lines: BufReader<ChildStdout>,
    url: String,
}

impl Receiver {
    /// Starts `program args`, reads its first line `listening on http://127.0.0.1:PORT...`.
    fn start(mut command: Command) -> Receiver {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the receiver");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        lines.read_line(&mut first).expect("the listening line");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim_end_matches('/')
            .to_string();
        Receiver { child, lines, url }
    }

    fn read_lines(&mut self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = Vec::new();
        while lines.len() < count && Instant::now() < deadline {
            let mut line = String::new();
            if self.lines.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if !line.trim().is_empty() {
                lines.push(line.trim().to_string());
            }
        }
        lines
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program` runs here. Under CI a missing interpreter fails the test instead.
fn available(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("{program} is needed by this test; .ci/run installs it");
    }
    if !found {
        eprintln!("skipped: {program} is not installed");
    }
    found
}

/// Three matching licenses and a task posting to `url` signed with `secret`.
fn renewals(url: &str, secret: &str) -> Test {
    let test = Test::new()
        .search(
            "renewals",
            "SubscriptionExpiryDate > [today_start] And SubscriptionExpiryDate < [today_start+30]",
        )
        .write(
            "tasks/renewals.toml",
            &format!(
                "name = \"Upcoming Renewals\"\nsearch = \"renewals\"\nschedule = \"every 1 day\"\n\
                 [webhook]\nurl = \"{url}/hooks/qlm\"\nsecret_env = \"RENEWALS_SECRET\"\n"
            ),
        )
        .env("RENEWALS_SECRET", secret);
    test.simple_license(1, "2026-11-25T10:00:00")
        .simple_license(2, "2026-12-01T10:00:00")
        .simple_license(3, "2026-12-20T10:00:00")
        .simple_license(4, "2027-05-01T10:00:00");
    test
}

fn example(program: &str, file: &str, secret: &str) -> Receiver {
    let mut command = Command::new(program);
    command
        .arg(support::repo().join("examples/receivers").join(file))
        .arg("0")
        .env("KEYHOOK_SECRET", secret);
    Receiver::start(command)
}

/// The renewals test with a Standard Webhooks (or both-scheme) signature.
fn renewals_signed(url: &str, secret: &str, signature: &str) -> Test {
    renewals(url, secret).write(
        "tasks/renewals.toml",
        &format!(
            "name = \"Upcoming Renewals\"\nsearch = \"renewals\"\nschedule = \"every 1 day\"\n\
             [webhook]\nurl = \"{url}/hooks/qlm\"\nsecret_env = \"RENEWALS_SECRET\"\nsignature = {signature}\n"
        ),
    )
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn check_example_standard(program: &str, file: &str) {
    for signature in ["\"standard\"", "[\"qlm\", \"standard\"]"] {
        let mut receiver = example(program, file, WHSEC);
        let test = renewals_signed(&receiver.url, WHSEC, signature);
        let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
        assert!(output.status.success(), "{signature}: {}", stdout(&output));
        let lines = receiver.read_lines(3);
        assert!(
            lines.len() == 3 && lines.iter().all(|l| l.starts_with("valid msg_")),
            "{signature}: {lines:?}"
        );
        let test = renewals_signed(
            &receiver.url,
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            signature,
        );
        assert_eq!(
            test.keyhook(["run-task", "renewals"])
                .output()
                .unwrap()
                .status
                .code(),
            Some(1)
        );
        assert_eq!(
            receiver.read_lines(3),
            vec!["invalid bad-signature"; 3],
            "{signature}"
        );
    }
}

#[test]
fn python_example_receiver_verifies_standard_webhooks() {
    if available("python3") {
        check_example_standard("python3", "qlm_receiver.py");
    }
}

#[test]
fn node_example_receiver_verifies_standard_webhooks() {
    if available("node") {
        check_example_standard("node", "qlm_receiver.js");
    }
}

/// Whether the `standardwebhooks` library from PyPI is installed; under CI it must be.
fn has_standardwebhooks() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs standardwebhooks (pip)"
        );
        eprintln!("skipped: pip install standardwebhooks to run this test");
    }
    found
}

/// keyhook's real requests, checked by the `standardwebhooks` library from PyPI: an
/// implementation check by code nobody here wrote.
#[test]
fn the_standardwebhooks_library_accepts_real_requests() {
    if !has_standardwebhooks() {
        return;
    }
    for (signature, secrets) in [
        ("\"standard\"", WHSEC.to_string()),
        ("[\"qlm\", \"standard\"]", WHSEC.to_string()),
    ] {
        let mut command = Command::new("python3");
        command
            .arg(support::repo().join("examples/receivers/check_standardwebhooks.py"))
            .args(["--secret-env", "CHECK_SECRET", "--listen", "0"])
            .env("CHECK_SECRET", WHSEC);
        let mut receiver = Receiver::start(command);
        let test = renewals_signed(&receiver.url, &secrets, signature);
        let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
        assert!(output.status.success(), "{}", stdout(&output));
        let lines = receiver.read_lines(3);
        assert!(
            lines.len() == 3 && lines.iter().all(|l| l.starts_with("valid msg_")),
            "{lines:?}"
        );
    }
}

fn check_example(program: &str, file: &str) {
    if !available(program) {
        return;
    }
    let mut receiver = example(program, file, "shared-secret");
    let test = renewals(&receiver.url, "shared-secret");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    let mut lines = receiver.read_lines(3);
    lines.sort_by_key(|line| line.split_whitespace().nth(2).map(str::to_string));
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, key) in lines.iter().zip(["KEY-1", "KEY-2", "KEY-3"]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "valid", "{line}");
        assert!(words[1].starts_with("msg_"), "{line}");
        assert_eq!(words[2], key, "{line}");
    }

    // A receiver holding another secret rejects every request, and keyhook reports it.
    let mut wrong = example(program, file, "another-secret");
    let test = renewals(&wrong.url, "shared-secret");
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("HTTP 401"), "{}", stdout(&output));
    assert_eq!(wrong.read_lines(3), vec!["invalid bad-signature"; 3]);
}

#[test]
fn python_example_receiver_verifies_real_requests() {
    check_example("python3", "qlm_receiver.py");
}

#[test]
fn node_example_receiver_verifies_real_requests() {
    check_example("node", "qlm_receiver.js");
}

#[test]
fn keyhook_listen_checks_signatures() {
    let binary = assert_cmd::cargo::cargo_bin("keyhook");
    let mut command = Command::new(binary);
    command
        .args([
            "listen",
            "--port",
            "0",
            "--secret-env",
            "LISTEN_SECRET",
            "--compact",
        ])
        .env("LISTEN_SECRET", "shared-secret");
    let mut receiver = Receiver::start(command);
    let test = renewals(&receiver.url, "shared-secret");
    test.keyhook(["run-task", "renewals"]).assert().success();
    let lines = receiver.read_lines(3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line.starts_with("POST /hooks/qlm")
                && line.ends_with("✓ signature valid (qlm)")),
        "{lines:?}"
    );

    let test = renewals(&receiver.url, "wrong-secret");
    test.keyhook(["run-task", "renewals"]).assert().success();
    let lines = receiver.read_lines(3);
    assert!(
        lines
            .iter()
            .all(|line| line.contains("✗ signature INVALID (qlm): the signature does not match")),
        "{lines:?}"
    );
    assert!(!lines.concat().contains("shared-secret"));
}

#[test]
fn keyhook_listen_speaks_https_with_tls_cert_and_tls_key() {
    let ca = support::pki::Ca::new("listen test CA");
    let identity = ca.server(&["localhost", "127.0.0.1"]);
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    std::fs::write(&cert, &identity.cert).unwrap();
    std::fs::write(&key, &identity.key).unwrap();
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("keyhook"));
    command
        .args([
            "listen",
            "--port",
            "0",
            "--secret-env",
            "LISTEN_SECRET",
            "--compact",
        ])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("LISTEN_SECRET", "shared-secret");
    let mut receiver = Receiver::start(command);
    assert!(
        receiver.url.starts_with("https://127.0.0.1:"),
        "{}",
        receiver.url
    );
    let test = renewals(&receiver.url, "shared-secret")
        .write("ca.pem", &ca.pem)
        .write("keyhook.toml", "ca_file = \"ca.pem\"\n");
    test.keyhook(["run-task", "renewals"]).assert().success();
    let lines = receiver.read_lines(3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line.ends_with("✓ signature valid (qlm)")),
        "{lines:?}"
    );
}

#[test]
fn demo_runs_end_to_end() {
    let test = Test::new();
    let output = test.keyhook(["demo"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        support::stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("over 1 connection(s)"), "{text}");
    let verified = text
        .lines()
        .find(|line| line.contains("signatures verified"))
        .unwrap();
    let words: Vec<&str> = verified.split_whitespace().collect();
    // "✓ 45 of 45 signatures verified; 45 licenses matched."
    assert_eq!(words[0], "✓", "{verified}");
    assert_eq!(words[1], words[3], "{verified}");
    assert!(words[1].parse::<u32>().unwrap() > 0, "{verified}");
    // The event path: each change arrives as its event, signed, in commit order.
    let events: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("DEMO-EVENT-0001"))
        .collect();
    assert_eq!(events.len(), 3, "{text}");
    for (line, event) in events.iter().zip([
        "license.created",
        "license.activated",
        "license.deactivated",
    ]) {
        assert!(
            line.contains(event) && line.contains("evt_") && line.contains('✓'),
            "{line}"
        );
    }
    assert!(
        text.contains("✓ 3 of 3 event signatures verified"),
        "{text}"
    );
}

#[test]
fn rust_example_receiver_verifies_both_schemes() {
    // `cargo test` builds the examples next to the test binaries.
    let binary = assert_cmd::cargo::cargo_bin("keyhook");
    let example = binary.parent().unwrap().join("examples/receiver");
    assert!(
        example.exists(),
        "{} is built by cargo test",
        example.display()
    );
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut command = Command::new(&example);
    command.arg("0").env("KEYHOOK_SECRET", WHSEC);
    let mut receiver = Receiver::start(command);
    let test = renewals(&receiver.url, WHSEC).write(
        "tasks/renewals.toml",
        &format!(
            "name = \"Upcoming Renewals\"\nsearch = \"renewals\"\nschedule = \"every 1 day\"\n\
             [webhook]\nurl = \"{}/hooks/qlm\"\nsecret_env = \"RENEWALS_SECRET\"\n\
             signature = [\"qlm\", \"standard\"]\n",
            receiver.url
        ),
    );
    test.keyhook(["run-task", "renewals"]).assert().success();
    let lines = receiver.read_lines(3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines.iter().all(|line| line.starts_with("valid msg_")),
        "{lines:?}"
    );
    let wrong = renewals(&receiver.url, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    let output = wrong.keyhook(["run-task", "renewals"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let lines = receiver.read_lines(3);
    assert!(
        lines.iter().all(|line| line.starts_with("invalid")),
        "{lines:?}"
    );
}

/// Event webhooks too: dispatched events, in Standard Webhooks' format and signature, are
/// accepted by the `standardwebhooks` library, under their stable `evt_` ids.
#[test]
fn the_standardwebhooks_library_accepts_dispatched_events() {
    if !has_standardwebhooks() {
        return;
    }
    let mut command = Command::new("python3");
    command
        .arg(support::repo().join("examples/receivers/check_standardwebhooks.py"))
        .args(["--secret-env", "CHECK_SECRET", "--listen", "0"])
        .env("CHECK_SECRET", WHSEC);
    let mut receiver = Receiver::start(command);
    let test = Test::new().write(
        "webhooks/hook.toml",
        &format!(
            "name = \"hook\"\nurl = \"{}/hooks\"\nevents = [\"license.*\"]\n\
             secret = \"{WHSEC}\"\nsignature = \"standard\"\nformat = \"standard\"\n",
            receiver.url
        ),
    );
    test.keyhook(["events", "install"]).assert().success();
    let conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.execute_batch(
        "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1');
         UPDATE LicenseKeys SET ComputerID = 'PC-1' WHERE ID = 1;",
    )
    .unwrap();
    let output = test.keyhook(["dispatch"]).output().unwrap();
    assert!(output.status.success(), "{}", stdout(&output));
    // Created, then activated and updated: three events, each verified by the library.
    let lines = receiver.read_lines(3);
    assert!(
        lines.len() == 3 && lines.iter().all(|l| l.starts_with("valid evt_")),
        "{lines:?}"
    );
}
