//! A state database keyhook cannot use: every command names the path, the reason and what to
//! do, and no command calls a file it cannot look at "not there".

use crate::support::unprivileged::{chmod, unprivileged};
use crate::support::{Test, stderr, stdout};

const ADVICE: &str = "point --state (KEYHOOK_STATE) at a file this user can read and write";

/// A configuration with one task, a plain file `plain` and a folder `folder`.
fn setup() -> Test {
    let test =
        Test::new()
            .search("all", "1 = 1")
            .task("renewals", "all", "http://127.0.0.1:9/hook", "");
    std::fs::write(test.path("plain"), "not a folder").unwrap();
    std::fs::create_dir_all(test.path("folder")).unwrap();
    test
}

#[test]
fn paths_that_cannot_hold_the_state_file_are_errors_for_every_command() {
    let test = setup();
    let cases = [
        ("plain/state.db", "plain is a file, not a folder"),
        ("folder", "it is a folder, not a file"),
    ];
    let commands: [&[&str]; 6] = [
        &["status"],
        &["log"],
        &["list"],
        &["retry"],
        &["run-task", "renewals"],
        &["dry-run", "renewals"],
    ];
    for (state, reason) in cases {
        for command in commands {
            let output = test
                .keyhook(command.iter().chain(&["--state", state]))
                .output()
                .unwrap();
            let error = stderr(&output);
            assert_eq!(
                output.status.code(),
                Some(3),
                "{command:?} {state}: {error}"
            );
            let expected = format!("could not open state database {state}: {reason}; {ADVICE}");
            assert!(error.contains(&expected), "{command:?} {state}: {error}");
            assert!(!stdout(&output).contains("does not exist"), "{command:?}");
        }
    }
}

#[test]
fn a_missing_folder_is_named_and_nothing_is_created() {
    let test = setup();
    let output = test
        .keyhook(["status", "--state", "nowhere/state.db"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("(nowhere/state.db does not exist)"));
    let output = test
        .keyhook(["retry", "--state", "nowhere/state.db"])
        .output()
        .unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains(
            "could not open state database nowhere/state.db: its folder nowhere does not exist"
        ),
        "{error}"
    );
    assert!(!test.path("nowhere").exists());
}

#[test]
fn a_state_file_in_a_folder_this_user_may_not_enter_is_not_called_missing() {
    let test = setup();
    std::fs::create_dir_all(test.path("private")).unwrap();
    test.keyhook(["retry", "--state", "private/state.db"])
        .assert()
        .success();
    chmod(test.dir.path(), 0o755);
    chmod(&test.path("private"), 0o700);
    for command in [["status"], ["log"]] {
        let process = test.process(command.iter().chain(&["--state", "private/state.db"]));
        let Some(mut process) = unprivileged(process) else {
            return;
        };
        let output = process.output().unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{command:?}: {error}");
        assert!(
            error.contains("could not open state database private/state.db: this user may not look into its folder private (permission denied)"),
            "{command:?}: {error}"
        );
        assert!(!stdout(&output).contains("does not exist"), "{command:?}");
    }
}

#[test]
fn a_state_file_in_a_read_only_folder_says_why() {
    let test = setup();
    std::fs::create_dir_all(test.path("shared")).unwrap();
    test.keyhook(["retry", "--state", "shared/state.db"])
        .assert()
        .success();
    chmod(test.dir.path(), 0o755);
    chmod(&test.path("shared"), 0o555);
    let process = test.process(["retry", "--state", "shared/state.db"]);
    let Some(mut process) = unprivileged(process) else {
        return;
    };
    let output = process.output().unwrap();
    chmod(&test.path("shared"), 0o755);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains("could not open state database shared/state.db: this user may not create files in its folder shared"),
        "{error}"
    );
    assert!(!error.contains("os error"), "{error}");
}

#[test]
fn a_state_file_this_user_may_not_write_says_why() {
    let test = setup();
    std::fs::create_dir_all(test.path("shared")).unwrap();
    test.keyhook(["run-task", "renewals", "--state", "shared/state.db"])
        .output()
        .unwrap();
    chmod(test.dir.path(), 0o755);
    chmod(&test.path("shared"), 0o777);
    chmod(&test.path("shared/state.db"), 0o444);
    // prune writes without a task's lock (it takes one only to remove a run killed while it
    // was recorded, and there is none here): the file itself is what stops it.
    let process = test.process(["prune", "--older-than", "1s", "--state", "shared/state.db"]);
    let Some(mut process) = unprivileged(process) else {
        return;
    };
    let output = process.output().unwrap();
    chmod(&test.path("shared/state.db"), 0o644);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains(
            "could not open state database shared/state.db: this user may not read and write it"
        ),
        "{error}"
    );
}

#[test]
fn a_state_file_with_a_second_hard_link_is_refused_before_it_is_corrupted() {
    let test = setup();
    test.keyhook(["retry"]).assert().success();
    std::fs::hard_link(test.path("keyhook-state.db"), test.path("other.db")).unwrap();
    for state in ["keyhook-state.db", "other.db"] {
        let output = test
            .keyhook(["run-task", "renewals", "--state", state])
            .output()
            .unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(3), "{state}: {error}");
        assert!(
            error.contains(&format!(
                "could not open state database {state}: it has 2 hard links"
            )),
            "{error}"
        );
    }
    // A symbolic link is the same name, its lock shared.
    std::fs::remove_file(test.path("other.db")).unwrap();
    std::os::unix::fs::symlink("keyhook-state.db", test.path("link.db")).unwrap();
    test.keyhook(["retry", "--state", "link.db"])
        .assert()
        .success();
}

#[test]
fn a_lock_that_cannot_be_taken_names_its_path() {
    let test = setup();
    std::fs::write(test.path("keyhook-state.db.locks"), "a file, not a folder").unwrap();
    let output = test.keyhook(["run-task", "renewals"]).output().unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert!(
        error.contains(
            "could not take the lock of task `renewals` (keyhook-state.db.locks/renewals.lock)"
        ),
        "{error}"
    );
    assert!(!error.contains("os error"), "{error}");
}

/// An empty state file (a truncated copy, a first run killed as it opened): SQLite takes it
/// for a new database. keyhook does too, but says so, once, naming the file.
#[test]
fn an_empty_state_file_is_started_anew_and_said() {
    let test = setup();
    std::fs::write(test.path("empty.db"), b"").unwrap();
    // Emptied a while ago: one written in the last seconds is another keyhook creating it.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(test.path("empty.db"))
        .and_then(|file| file.set_modified(an_hour_ago))
        .unwrap();
    let output = test
        .keyhook(["status", "--state", "empty.db"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let err = stderr(&output);
    assert_eq!(
        err.matches("was empty (0 bytes): keyhook started a new state in it")
            .count(),
        1,
        "{err}"
    );
    assert!(err.contains("empty.db"), "{err}");
    let again = test
        .keyhook(["status", "--state", "empty.db"])
        .output()
        .unwrap();
    assert_eq!(stderr(&again), "", "said once: the file holds a state now");
}

#[test]
fn a_state_file_emptied_just_before_the_run_is_said_too() {
    // A restore script that truncated the file a moment ago: it stays empty (no keyhook is
    // creating it), so it is said all the same.
    let test = setup();
    std::fs::write(test.path("fresh.db"), b"").unwrap();
    let output = test
        .keyhook(["status", "--state", "fresh.db"])
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("was empty (0 bytes)"),
        "{}",
        stderr(&output)
    );
}
