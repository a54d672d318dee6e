//! Why the state database could not be opened, in words: its path, the reason the file system
//! gives, and what to do, rather than SQLite's "unable to open database file".

use std::path::Path;

use rusqlite::ErrorCode;

use super::StateError;
use crate::file_access;

/// SQLite's extended code for "the folder is read-only, so no journal can be made there".
const READONLY_DIRECTORY: i32 = rusqlite::ffi::SQLITE_READONLY_DIRECTORY;

/// Turns an error met while opening, setting up or migrating the file into one that names the
/// reason, when it is about access rather than content.
pub fn diagnose(path: &Path, error: StateError) -> StateError {
    let StateError::Sql { source, .. } = &error else {
        return error;
    };
    let Some(code) = source.sqlite_error_code() else {
        return error;
    };
    if !matches!(
        code,
        ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied
    ) {
        return error;
    }
    let reason = match extended_code(source) {
        Some(READONLY_DIRECTORY) => format!(
            "this user may not create files in its folder {} (SQLite keeps its -wal and -shm \
             files there)",
            file_access::folder_of(path).display()
        ),
        _ => file_access::open_problem(path, true).unwrap_or_else(|| source.to_string()),
    };
    unusable(path, reason)
}

/// The error for a state path that cannot be used, for `reason`.
pub fn unusable(path: &Path, reason: String) -> StateError {
    StateError::Unusable {
        path: path.to_path_buf(),
        reason,
    }
}

fn extended_code(error: &rusqlite::Error) -> Option<i32> {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    }
}
