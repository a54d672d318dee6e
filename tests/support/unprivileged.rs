//! Running keyhook as a user that file permissions apply to. Tests may run as root, where a
//! folder without write permission still lets everything through; there, the command runs
//! as `nobody` through `setpriv`, and a machine without it skips the test, saying why.

#![allow(dead_code)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// `command` as a user permissions bite for, or `None` (after printing why) when there is none.
pub fn unprivileged(command: Command) -> Option<Command> {
    if !running_as_root() {
        return Some(command);
    }
    let probe = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "test",
            "-x",
        ])
        .arg(command.get_program())
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipped: running as root, and `setpriv` cannot run keyhook as nobody");
        return None;
    }
    Some(wrapped(
        &command,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
    ))
}

/// `command` run as user `uid` (give each test its own: the limit counts all of a user's
/// processes, and tests run in parallel) with at most `threads` processes and threads; `None`
/// (after saying why) unless the tests run as root and `setpriv` and `prlimit` can do it.
pub fn as_user_with_threads(command: Command, uid: u32, threads: u32) -> Option<Command> {
    if !running_as_root() {
        eprintln!("skipped: needs root to run keyhook as a user of its own");
        return None;
    }
    let (uid, limit) = (uid.to_string(), format!("--nproc={threads}:{threads}"));
    let wrapper = [
        "setpriv",
        "--reuid",
        &uid,
        "--regid",
        &uid,
        "--clear-groups",
        "prlimit",
        &limit,
    ];
    let probe = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .args(["test", "-x"])
        .arg(command.get_program())
        .stderr(std::process::Stdio::null())
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipped: `setpriv` and `prlimit` cannot run keyhook as a user of its own");
        return None;
    }
    Some(wrapped(&command, &wrapper))
}

/// `command` run through `wrapper` (a program and its arguments), in its folder, with its
/// environment.
fn wrapped(command: &Command, wrapper: &[&str]) -> Command {
    let mut wrapped = Command::new(wrapper[0]);
    wrapped
        .args(&wrapper[1..])
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(name, value),
            None => wrapped.env_remove(name),
        };
    }
    wrapped
}

/// Sets `path`'s permission bits.
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn running_as_root() -> bool {
    let probe = tempfile::tempfile().expect("a temporary file");
    probe.metadata().expect("metadata").uid() == 0
}
