//! A small builder for integration tests: a temporary configuration folder with a real SQLite
//! license database, and the real `keyhook` binary run against it.

#![allow(dead_code)]

pub mod gate;
pub mod pki;
pub mod ports;
pub mod unprivileged;
pub mod watching;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use rusqlite::types::Value;

/// The clock every test pins unless it says otherwise.
pub const NOW: &str = "2026-11-23T10:00:00";

pub struct Test {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Test {
    /// An empty configuration folder with an empty license database.
    pub fn new() -> Test {
        let test = Test {
            dir: tempfile::tempdir().expect("temporary folder"),
            env: Vec::new(),
        };
        test.keyhook(["db", "init"]).assert().success();
        test
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file under the configuration folder, creating folders on the way.
    pub fn write(self, relative: &str, text: &str) -> Test {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
        std::fs::write(path, text).expect("write");
        self
    }

    /// Sets an environment variable for every command run.
    pub fn env(mut self, name: &str, value: &str) -> Test {
        self.env.push((name.into(), value.into()));
        self
    }

    /// A search file `searches/<stem>.toml`.
    pub fn search(self, stem: &str, sql: &str) -> Test {
        let text = format!("name = \"{stem}\"\nsql = {}\n", toml_string(sql));
        self.write(&format!("searches/{stem}.toml"), &text)
    }

    /// A task file `tasks/<stem>.toml` posting to `url` with secret `secret`.
    pub fn task(self, stem: &str, search: &str, url: &str, extra_webhook: &str) -> Test {
        let text = format!(
            "name = \"{stem}\"\nsearch = \"{search}\"\nschedule = \"every 1 day\"\n\n\
             [webhook]\nurl = \"{url}\"\nsecret = \"test-secret\"\nuser_data = \"ud\"\n{extra_webhook}\n"
        );
        self.write(&format!("tasks/{stem}.toml"), &text)
    }

    /// Inserts one license; columns not given keep their defaults.
    pub fn license(&self, columns: &[(&str, Value)]) -> &Test {
        let conn = rusqlite::Connection::open(self.path("licenses.db")).expect("open db");
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO LicenseKeys ({}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        let values: Vec<&Value> = columns.iter().map(|(_, value)| value).collect();
        conn.execute(&sql, rusqlite::params_from_iter(values))
            .expect("insert license");
        self
    }

    /// A minimal license with an id, a key and a subscription expiry.
    pub fn simple_license(&self, id: i64, subscription_expiry: &str) -> &Test {
        self.license(&[
            ("ID", Value::Integer(id)),
            ("ActivationKey", text(&format!("KEY-{id}"))),
            ("Email", text(&format!("user{id}@example.com"))),
            ("SubscriptionExpiryDate", text(subscription_expiry)),
        ])
    }

    /// `keyhook <args>` as a plain process, to spawn and signal; [`Test::keyhook`] wraps it.
    pub fn process<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("keyhook"));
        command.current_dir(self.dir.path());
        for (name, _) in std::env::vars() {
            if name.starts_with("KEYHOOK_") {
                command.env_remove(name);
            }
        }
        command
            .env("KEYHOOK_NOW", NOW)
            .env("KEYHOOK_TIMEZONE", "UTC");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command.args(args);
        command
    }

    /// insta settings for output that users and scripts read: what changes from run to run
    /// (delivery ids, elapsed times, ports, this test's folder) is replaced by a name, so the
    /// snapshot pins everything else. Bind it: `let _redacted = test.redacted().bind_to_scope();`
    pub fn redacted(&self) -> insta::Settings {
        let mut settings = insta::Settings::clone_current();
        let folder = self.dir.path().to_string_lossy();
        settings.add_filter(&regex_escape(&folder), "[folder]");
        settings.add_filter(r"msg_[0-9a-f]{28}", "msg_[id]");
        settings.add_filter(r"127\.0\.0\.1:[0-9]+", "127.0.0.1:[port]");
        settings.add_filter(r#""elapsed": ?[0-9.e-]+"#, r#""elapsed": "[elapsed]""#);
        settings.add_filter(r#""duration_ms": ?[0-9]+"#, r#""duration_ms": "[ms]""#);
        settings
    }

    /// `keyhook <args>` in the folder, with the clock pinned to [`NOW`] in UTC.
    pub fn keyhook<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Command::from_std(self.process(args))
    }
}

pub fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

/// A TOML basic string.
pub fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// The standard output of a finished command, as text.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A dispatch refused because the events' deliveries are in the state already (the license
/// database under another path or URL): exit 3, saying why.
pub fn assert_events_recorded_again(output: &std::process::Output) {
    let said = stderr(output);
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(
        said.contains("already holds these events' deliveries")
            && said.contains("under another path or URL"),
        "{said}"
    );
}

/// The repository's own folder (for the example definitions).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// [`NOW`] plus `seconds`, for `--now`.
pub fn later(seconds: i64) -> String {
    let now = chrono::NaiveDateTime::parse_from_str(NOW, "%Y-%m-%dT%H:%M:%S").expect("NOW parses");
    (now + chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// `text` as a regular expression that matches only itself.
fn regex_escape(text: &str) -> String {
    let mut escaped = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Writes into the state database `state` what a run of `task` killed while it was being
/// recorded leaves (run 99, still marked, for `slot`, started at `at`): one pending delivery,
/// `msg_marked` (seq 99), of license 1 with `key`, and its body.
pub fn marked_run(state: &Path, task: &str, slot: Option<i64>, at: i64, key: &str) {
    rusqlite::Connection::open(state)
        .expect("open the state")
        .execute_batch(&format!(
            "INSERT INTO runs (id, task, name, slot, started_at, recording)
                 VALUES (99, '{task}', '{task}', {slot}, {at}, 1);
             INSERT INTO deliveries (seq, id, run_id, task, license_id, activation_key,
                                     created_at, next_attempt_at, updated_at)
                 VALUES (99, 'msg_marked', 99, '{task}', 1, '{key}', {at}, {at}, {at});
             INSERT INTO delivery_bodies (seq, body) VALUES (99, x'7b7d');",
            slot = slot.map_or("NULL".to_string(), |slot| slot.to_string()),
        ))
        .expect("a marked run");
}
