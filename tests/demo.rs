//! `keyhook demo` and `keyhook db demo` stopped by a signal: nothing left behind, and the exit
//! says the run was interrupted.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Test, stderr};

/// Sends `signal` to the child process.
fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `ready` holds, for at most a minute (a debug build on a busy machine).
fn wait_for(mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The size of the partial database in the one demo folder under `tmp`, if there is one yet.
fn partial_size(tmp: &std::path::Path, name: &str) -> u64 {
    walk(tmp)
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|file| file == name))
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

fn demo_in(test: &Test, licenses: &str) -> (Child, std::path::PathBuf) {
    let tmp = test.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let child = test
        .process(["demo", "--licenses", licenses])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, tmp)
}

#[test]
fn a_demo_interrupted_while_writing_its_database_leaves_nothing() {
    for (name, code) in [("INT", 130), ("TERM", 143)] {
        let test = Test::new();
        let (child, tmp) = demo_in(&test, "5000000");
        wait_for(|| partial_size(&tmp, ".licenses.db.tmp") > 1 << 20);
        signal(&child, name);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("interrupted: the demo stopped, and its temporary folder"),
            "{}",
            stderr(&output)
        );
        assert_eq!(walk(&tmp), Vec::<std::path::PathBuf>::new(), "SIG{name}");
    }
}

#[test]
fn a_demo_interrupted_while_sending_leaves_nothing() {
    let test = Test::new();
    let (mut child, tmp) = demo_in(&test, "400000");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines.find(|line| line.as_ref().is_ok_and(|l| l.starts_with("3. Ran")));
    assert!(started.is_some(), "the demo never started sending");
    signal(&child, "TERM");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", stderr(&output));
    assert!(stderr(&output).contains("interrupted: the demo stopped"));
    assert!(
        !rest.iter().any(|line| line.contains("signatures verified")),
        "{rest:?}"
    );
    assert_eq!(walk(&tmp), Vec::<std::path::PathBuf>::new());
}

#[test]
fn db_demo_interrupted_keeps_the_old_database_and_no_partial_file() {
    let test = Test::new();
    test.simple_license(1, "2026-12-01T00:00:00");
    let before = std::fs::read(test.path("licenses.db")).unwrap();
    let child = test
        .process(["db", "demo", "--force", "--licenses", "5000000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(|| partial_size(test.dir.path(), ".licenses.db.tmp") > 1 << 20);
    signal(&child, "INT");
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("interrupted: licenses.db was left as it was"),
        "{}",
        stderr(&output)
    );
    assert!(!test.path(".licenses.db.tmp").exists());
    assert_eq!(std::fs::read(test.path("licenses.db")).unwrap(), before);
}
