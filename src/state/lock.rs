//! The per-task lock: an OS file lock, so a killed process never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Held while a task is being run or retried; released when dropped (or the process dies).
#[derive(Debug)]
pub struct TaskLock {
    _file: File,
}

/// Whether the lock was taken.
pub enum Acquired {
    Held(TaskLock),
    /// Another process holds it.
    Busy(PathBuf),
}

impl TaskLock {
    /// Tries once to lock `task` for the state database at `state`; never waits.
    pub fn try_acquire(state: &Path, task: &str) -> std::io::Result<Acquired> {
        let path = lock_path(state, task);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Acquired::Held(TaskLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(Acquired::Busy(path)),
            Err(std::fs::TryLockError::Error(error)) => Err(error),
        }
    }
}

/// Held while a new state file is created and given its schema. SQLite makes the file (0
/// bytes) before it writes its first page, so a process that finds it empty could be looking
/// at another keyhook creating it: under this lock it waits for that one to finish, and a file
/// still empty then was emptied (a truncated copy or restore) or left by a killed first run.
#[derive(Debug)]
pub struct CreationLock {
    _file: File,
}

impl CreationLock {
    /// Waits for the lock of the state at `state`; an error when its file cannot be made.
    pub fn acquire(state: &Path) -> std::io::Result<CreationLock> {
        // `.new` is no task's name: definitions whose names start with a dot are not read.
        let path = lock_path(state, ".new");
        // Never the state's own folder: a missing one is said by the open that follows.
        if let Some(folder) = path.parent() {
            match std::fs::create_dir(folder) {
                Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(error);
                }
                _ => {}
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok(CreationLock { _file: file })
    }
}

/// `<state>.locks/<task>.lock`, beside the state file as it really is: reached through a
/// symbolic link, it has the same locks (they alone keep two processes from sending the same
/// delivery from a SQLite state).
pub fn lock_path(state: &Path, task: &str) -> PathBuf {
    let linked = std::fs::symlink_metadata(state).is_ok_and(|meta| meta.file_type().is_symlink());
    let state = match linked {
        true => std::fs::canonicalize(state).unwrap_or_else(|_| state.to_path_buf()),
        false => state.to_path_buf(),
    };
    let mut folder = state.as_os_str().to_owned();
    folder.push(".locks");
    PathBuf::from(folder).join(format!("{task}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_reached_through_a_link_shares_its_locks() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        std::fs::write(&state, b"").unwrap();
        let link = dir.path().join("other-name.db");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        let Acquired::Held(_held) = TaskLock::try_acquire(&state, "renewals").unwrap() else {
            panic!("the first lock must be taken");
        };
        assert!(matches!(
            TaskLock::try_acquire(&link, "renewals").unwrap(),
            Acquired::Busy(_)
        ));
    }

    #[test]
    fn a_state_being_created_is_waited_for_and_not_taken_for_an_emptied_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        // Another keyhook has made the file (0 bytes) and not yet written its first page.
        let creating = CreationLock::acquire(&state).unwrap();
        std::fs::write(&state, b"").unwrap();
        let opener = {
            let state = state.clone();
            std::thread::spawn(move || crate::state::StateDb::open(&state).unwrap().found_empty())
        };
        // The opener is blocked on the creation lock before the file gets its first page: a
        // thread that started late would find it written and prove nothing.
        wait_until_blocked_on(&lock_path(&state, ".new"));
        drop(crate::state::StateDb::open_and_migrate(&state).unwrap());
        assert!(std::fs::metadata(&state).unwrap().len() > 0);
        drop(creating);
        assert!(
            !opener.join().unwrap(),
            "a file being created was called emptied"
        );
    }

    /// Waits (30 s at most) until a process or thread waits for the lock on `path`: a blocked
    /// `flock` is a `->` line of `/proc/locks` that names the file's inode.
    fn wait_until_blocked_on(path: &Path) {
        use std::os::unix::fs::MetadataExt;
        let inode = format!(":{} ", std::fs::metadata(path).unwrap().ino());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let locks = std::fs::read_to_string("/proc/locks").unwrap();
            if locks
                .lines()
                .any(|line| line.contains("->") && line.contains(&inode))
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nobody waits for {}:\n{locks}",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn an_empty_state_file_nobody_creates_is_found_empty_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        assert!(!crate::state::StateDb::open(&state).unwrap().found_empty());
        std::fs::write(&state, b"").unwrap();
        std::fs::remove_file(dir.path().join("state.db-wal")).ok();
        assert!(crate::state::StateDb::open(&state).unwrap().found_empty());
        assert!(!crate::state::StateDb::open(&state).unwrap().found_empty());
    }

    #[test]
    fn a_second_holder_is_turned_away_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let Acquired::Held(first) = TaskLock::try_acquire(&state, "renewals").unwrap() else {
            panic!("the first lock must be taken");
        };
        assert!(matches!(
            TaskLock::try_acquire(&state, "renewals").unwrap(),
            Acquired::Busy(_)
        ));
        assert!(matches!(
            TaskLock::try_acquire(&state, "trials").unwrap(),
            Acquired::Held(_)
        ));
        drop(first);
        assert!(matches!(
            TaskLock::try_acquire(&state, "renewals").unwrap(),
            Acquired::Held(_)
        ));
    }
}
