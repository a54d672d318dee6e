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
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
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
    Some(wrapped)
}

/// Sets `path`'s permission bits.
pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn running_as_root() -> bool {
    let probe = tempfile::tempfile().expect("a temporary file");
    probe.metadata().expect("metadata").uid() == 0
}
