//! The crontab line and the systemd units in `examples/`, each run for real.

use std::path::Path;
use std::process::Command;

use crate::support::{Test, repo, stderr, stdout, text};
use keyhook::receiver::{Reply, Server};

/// A configuration folder whose one task is due at any time (`* * * * *`), first seen long ago.
fn due_task(url: &str, secret_line: &str) -> Test {
    let test = Test::new()
        .search("all", "1 = 1")
        .write(
            "tasks/all.toml",
            &format!("name = \"all\"\nsearch = \"all\"\nschedule = \"* * * * *\"\n[webhook]\nurl = \"{url}\"\n{secret_line}\n"),
        );
    test.license(&[("ActivationKey", text("K1"))]);
    test
}

/// The crontab's `NAME=value` lines and its one job's command.
fn crontab() -> (Vec<(String, String)>, String) {
    let text = std::fs::read_to_string(repo().join("examples/cron/keyhook.crontab")).unwrap();
    let mut env = Vec::new();
    let mut command = None;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some((name, value)) = line.split_once('=').filter(|(name, _)| !name.contains(' ')) {
            env.push((name.to_string(), value.to_string()));
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&fields[..5], ["*", "*", "*", "*", "*"], "every minute");
        command = Some(fields[5..].join(" "));
    }
    (env, command.expect("a job line"))
}

#[test]
fn the_crontab_command_runs_what_is_due() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = due_task(&server.url("/"), "secret = \"s\"");
    let (env, command) = crontab();
    assert_eq!(command, "keyhook run-due");
    let binary_dir = assert_cmd::cargo::cargo_bin("keyhook")
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = test.dir.path().to_str().unwrap();
    let mut shell = Command::new("/bin/sh");
    shell.arg("-c").arg(&command).env_clear().current_dir("/");
    for (name, value) in env {
        // The crontab's folders, moved into the test's.
        let value = value
            .replace("/etc/keyhook", dir)
            .replace("/var/lib/keyhook", dir);
        let value = if name == "PATH" {
            format!("{}:{value}", binary_dir.display())
        } else {
            value
        };
        shell.env(name, value);
    }
    // The first call sees the task; a minute later its slot has come.
    shell.env("KEYHOOK_NOW", "2026-11-23T10:00:30Z");
    let first = shell.output().unwrap();
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert_eq!(stdout(&first), "", "nothing due yet: cron mails nothing");
    shell.env("KEYHOOK_NOW", "2026-11-23T10:01:00Z");
    let second = shell.output().unwrap();
    assert!(
        second.status.success(),
        "{}{}",
        stdout(&second),
        stderr(&second)
    );
    assert_eq!(server.request_count(), 1, "{}", stdout(&second));
}

fn systemd_units(test: &Test) -> (std::path::PathBuf, String) {
    let units = test.path("units");
    std::fs::create_dir_all(&units).unwrap();
    let binary = assert_cmd::cargo::cargo_bin("keyhook");
    let service = std::fs::read_to_string(repo().join("examples/systemd/keyhook.service"))
        .unwrap()
        .replace("/usr/local/bin/keyhook", binary.to_str().unwrap());
    std::fs::write(units.join("keyhook.service"), &service).unwrap();
    std::fs::copy(
        repo().join("examples/systemd/keyhook.timer"),
        units.join("keyhook.timer"),
    )
    .unwrap();
    (units, service)
}

#[test]
fn the_systemd_units_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        // Under CI a missing tool fails the test: .ci/run installs it.
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is needed by this test; .ci/run installs it"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    let test = Test::new();
    let (units, _) = systemd_units(&test);
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("keyhook.timer"))
        .arg(units.join("keyhook.service"))
        .output()
        .unwrap();
    let complaints = stderr(&output);
    // Outside a booted systemd, verify may warn about the host; it must not about our units.
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|line| line.contains("keyhook."))
        .collect();
    assert!(ours.is_empty(), "{complaints}");
    let timer = std::fs::read_to_string(units.join("keyhook.timer")).unwrap();
    assert!(timer.contains("Persistent=true"));
}

#[test]
fn the_systemd_service_command_reads_its_credential() {
    let server = Server::start("127.0.0.1:0", |_| Reply::ok()).unwrap();
    let test = due_task(&server.url("/"), "secret_credential = \"renewals-secret\"");
    let (_, service) = systemd_units(&test);
    let credentials = test.path("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(credentials.join("renewals-secret"), "from-systemd\n").unwrap();
    // Run ExecStart= with the unit's Environment= lines, as systemd would.
    let exec = service
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .unwrap();
    let mut parts = exec.split_whitespace();
    let mut command = Command::new(parts.next().unwrap());
    command
        .args(parts)
        .env_clear()
        .env("CREDENTIALS_DIRECTORY", &credentials);
    let dir = test.dir.path().to_str().unwrap();
    for line in service
        .lines()
        .filter_map(|line| line.strip_prefix("Environment="))
    {
        let (name, value) = line.split_once('=').unwrap();
        command.env(
            name,
            value
                .replace("/etc/keyhook", dir)
                .replace("/var/lib/keyhook", dir),
        );
    }
    assert!(Path::new(&credentials).exists());
    command
        .env("KEYHOOK_NOW", "2026-11-23T10:00:30Z")
        .output()
        .unwrap();
    let output = command
        .env("KEYHOOK_NOW", "2026-11-23T10:01:00Z")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let expected = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(&requests[0].body);
        hasher.update(b"from-systemd");
        hex::encode(hasher.finalize())
    };
    assert_eq!(
        requests[0].header("X-QLM-Signature"),
        Some(expected.as_str())
    );
}
