//! Opening the license database read-only: readable even where SQLite may not write (a WAL
//! file in a read-only folder), with a bound on memory, and refused with a reason when the
//! file or its table is not QLM's.

use std::path::{Path, PathBuf};

use rusqlite::limits::Limit;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::query::QueryError;
use super::schema::{self, TABLE};
use crate::file_access::{self, Presence};

/// The longest string or blob a search may make: a license's fields are far shorter.
pub const MAX_VALUE_BYTES: i32 = 64 << 20;

/// SQLite's memory for the whole process: a search building a huge value or table is
/// stopped with an error instead of taking the machine's memory.
pub const MAX_HEAP_BYTES: i64 = 256 << 20;

/// Opens `path` read-only and checks that it holds QLM's license table.
pub fn connect(path: &Path) -> Result<Connection, QueryError> {
    match file_access::presence(path) {
        Presence::File => {}
        Presence::Absent => return Err(QueryError::Missing(path.to_path_buf())),
        Presence::Unusable(reason) => return Err(open_error(path, reason)),
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| failed(path, &e))?;
    let has_table = match has_table(&conn) {
        Ok(found) => found,
        Err(error) if cannot_write_beside(&error) && is_wal(path) => {
            conn = immutable(path)?;
            has_table(&conn).map_err(|e| failed(path, &e))?
        }
        Err(error) => return Err(failed(path, &error)),
    };
    if !has_table {
        return Err(QueryError::NotLicenseDb(path.to_path_buf()));
    }
    let missing =
        schema::missing_columns(&conn, schema::searched_columns()).map_err(|e| failed(path, &e))?;
    if !missing.is_empty() {
        return Err(QueryError::MissingColumns {
            path: path.to_path_buf(),
            columns: missing,
        });
    }
    bound_memory(&conn).map_err(|e| failed(path, &e))?;
    Ok(conn)
}

fn has_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [TABLE],
        |row| row.get(0),
    )
}

/// Caps what one value and SQLite as a whole may take. The heap limit is process-wide.
fn bound_memory(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)?;
    // SAFETY: sqlite3_hard_heap_limit64 only stores a number; any value is valid.
    unsafe { rusqlite::ffi::sqlite3_hard_heap_limit64(MAX_HEAP_BYTES) };
    Ok(())
}

/// SQLite refused because it could not create the `-shm` (or `-wal`) file beside the database.
fn cannot_write_beside(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen)
    )
}

/// Whether the file's header says WAL mode (bytes 18 and 19 are 2).
fn is_wal(path: &Path) -> bool {
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

/// A WAL database whose folder this user may not write: with no `-wal` file beside it, every
/// committed change is in the file itself, so it can be read as immutable. With one, it
/// cannot be read safely, and the error says what to do.
fn immutable(path: &Path) -> Result<Connection, QueryError> {
    let wal = sibling(path, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|metadata| metadata.len() > 0) {
        return Err(QueryError::WalUnreadable {
            path: path.to_path_buf(),
            folder: file_access::folder_of(path),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(immutable_uri(path), flags).map_err(|e| failed(path, &e))
}

/// `file:<absolute path>?immutable=1`, with the characters a URI gives meaning escaped.
fn immutable_uri(path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for byte in absolute.as_os_str().as_encoded_bytes() {
        match byte {
            b'%' | b'?' | b'#' | 0x80..=0xff | 0..=0x1f => uri.push_str(&format!("%{byte:02X}")),
            _ => uri.push(*byte as char),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// An open or read failure, with the reason the file system gives when it gives one.
pub(super) fn failed(path: &Path, error: &rusqlite::Error) -> QueryError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => return QueryError::NotSqlite(path.to_path_buf()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            return QueryError::Busy(path.to_path_buf());
        }
        _ => {}
    }
    let reason = file_access::open_problem(path, false).unwrap_or_else(|| error.to_string());
    open_error(path, reason)
}

fn open_error(path: &Path, reason: String) -> QueryError {
    QueryError::Open {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_sqlite_would_read_as_syntax() {
        let uri = immutable_uri(Path::new("/no/such/a?b#c%d é.db"));
        assert_eq!(uri, "file:/no/such/a%3Fb%23c%25d %C3%A9.db?immutable=1");
    }
}
