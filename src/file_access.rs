//! Why a file cannot be opened, in words a person can act on: SQLite says only "unable to
//! open database file", and `Path::exists` says "no" for a file it may not even look at.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// What the file system says about a path keyhook needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// A regular file (or a link to one) is there.
    File,
    /// Nothing is there, and its folder exists: the file can be created.
    Absent,
    /// The path cannot be used, for this reason.
    Unusable(String),
}

/// Looks at `path` without opening it. A missing file, or a missing folder on the way to
/// it, is absent; anything else that stops a look is a reason the path cannot be used.
pub fn presence(path: &Path) -> Presence {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            Presence::Unusable("it is a folder, not a file".into())
        }
        Ok(_) => Presence::File,
        Err(error) if error.kind() == ErrorKind::NotFound => Presence::Absent,
        Err(error) => Presence::Unusable(folder_problem(path).unwrap_or_else(|| {
            if error.kind() == ErrorKind::PermissionDenied {
                format!(
                    "this user may not look into its folder {} (permission denied)",
                    folder_of(path).display()
                )
            } else {
                describe(&error)
            }
        })),
    }
}

/// Why `path`, which the file system says is not there, is not simply absent: it is a
/// symbolic link whose target is gone (an unmounted share, a failed deploy). Taken for an
/// absent file, a settings file would mean the defaults (`webhooks_enabled = false` lost) and
/// a definitions folder would hold nothing, without a word.
pub fn dangling_link(path: &Path) -> Option<String> {
    let link = std::fs::symlink_metadata(path).ok()?;
    if !link.is_symlink() {
        return None;
    }
    let target = std::fs::read_link(path).ok()?;
    Some(format!(
        "it is a link to {}, which does not exist; restore its target, or remove the link",
        target.display()
    ))
}

/// Why SQLite could not open `path` for reading (and writing), if the file system says.
pub fn open_problem(path: &Path, write: bool) -> Option<String> {
    match presence(path) {
        Presence::Unusable(reason) => Some(reason),
        Presence::Absent => folder_problem(path),
        Presence::File => access_problem(path, write),
    }
}

/// Why the file at `path`, which is there, cannot be opened for reading (and writing).
pub fn access_problem(path: &Path, write: bool) -> Option<String> {
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(path);
    match opened {
        Ok(_) => None,
        Err(error) if error.kind() == ErrorKind::PermissionDenied => Some(format!(
            "this user may not {} it (permission denied)",
            if write { "read and write" } else { "read" }
        )),
        Err(error) => Some(describe(&error)),
    }
}

/// The folder a path lives in ("." for a bare file name).
pub fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// What is wrong with the folders on the way to `path`, if anything.
fn folder_problem(path: &Path) -> Option<String> {
    let folder = folder_of(path);
    match std::fs::metadata(&folder) {
        Ok(metadata) if metadata.is_dir() => None,
        Ok(_) => Some(format!("{} is a file, not a folder", folder.display())),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            Some(format!("its folder {} does not exist", folder.display()))
        }
        Err(error) if error.kind() == ErrorKind::NotADirectory => Some(format!(
            "a part of {} is a file, not a folder",
            folder.display()
        )),
        Err(error) if error.kind() == ErrorKind::PermissionDenied => Some(format!(
            "this user may not look into a folder on the way to it (permission denied on {})",
            folder.display()
        )),
        Err(error) => Some(format!("{}: {}", folder.display(), describe(&error))),
    }
}

/// Reads a file keyhook was told to read while it runs unattended (a definition, a secret, a
/// certificate or key): a regular file, or a link to one, of at most `max` bytes. A FIFO would
/// hang the run (and, from cron, every minute's run after it) and a link to `/dev/zero` would
/// take the memory: both are refused with an error that says so, as the caller words it
/// ("could not read secret_file <path>: <this>").
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let refused = |why: Refused| std::io::Error::new(ErrorKind::InvalidInput, why);
    // Looked at before it is opened: opening a FIFO waits for a writer.
    if !std::fs::metadata(path)?.is_file() {
        return Err(refused(Refused::NotRegular));
    }
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(refused(Refused::NotRegular));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(refused(Refused::TooLong(size(max))));
    }
    Ok(bytes)
}

/// Why [`read_regular`] refused a file, carried inside the `io::Error` it returns (see
/// [`refusal`]), so that a caller can word it its own way.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("not a regular file (a FIFO, a device or a folder): point it at a regular file")]
    NotRegular,
    #[error("longer than {0}, far beyond what it should hold: is it the right file?")]
    TooLong(String),
}

/// The refusal inside an error of [`read_regular`], if it was one (not the system's error).
pub fn refusal(error: &std::io::Error) -> Option<&Refused> {
    error.get_ref()?.downcast_ref()
}

/// [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_regular(path, max)?)
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// A byte count as a person reads it: whole MiB or KiB.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

/// The most a secret file (or its rotation sidecar) may hold.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;
/// The most a certificate, key or CA bundle file may hold.
pub const MAX_PEM_BYTES: u64 = 16 << 20;

/// An I/O error without Rust's "(os error N)" suffix, lowercase.
pub fn describe(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_cannot_hold_a_file_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let cases = [
            (dir.path().to_path_buf(), "is a folder, not a file"),
            (file.join("state.db"), "file is a file, not a folder"),
            (file.join("sub/state.db"), "is a file, not a folder"),
        ];
        for (path, expected) in cases {
            match presence(&path) {
                Presence::Unusable(reason) => assert!(reason.contains(expected), "{reason}"),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        assert_eq!(presence(&file), Presence::File);
        assert_eq!(presence(&dir.path().join("new.db")), Presence::Absent);
        let nowhere = dir.path().join("none/state.db");
        assert_eq!(presence(&nowhere), Presence::Absent);
        let reason = open_problem(&nowhere, true).unwrap();
        assert!(reason.contains("none does not exist"), "{reason}");
    }
}
