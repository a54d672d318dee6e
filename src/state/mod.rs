//! keyhook's own state, in a SQLite file apart from the license database: runs, deliveries
//! (with the exact body sent, a task's packed: see `licenses::license_info::pack_body`) and
//! attempts. WAL mode; every change is a transaction.

mod backend;
pub mod deliveries;
mod event_store;
pub mod events;
pub mod expiries;
pub mod lock;
mod migrations;
mod open_error;
pub mod postgres;
mod rows;
pub mod runs;
pub mod sources;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::file_access::{self, Presence};

pub use backend::{DeliveryQueue, Location, SlotClaim, SlotRun, State};
pub use event_store::EventStore;

/// The state file's name when `--state` is not given: beside the license database.
pub const DEFAULT_FILE: &str = "keyhook-state.db";

/// Why the state database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state database {} is unreadable ({detail}); keyhook will not reset it, since it holds \
         the delivery log and retry queue: move it aside to start afresh",
        .path.display()
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state database {} has schema version {version}, newer than this keyhook ({known}); \
         upgrade keyhook",
        .path.display()
    )]
    TooNew {
        path: PathBuf,
        version: i64,
        known: i64,
    },
    #[error(
        "could not open state database {}: {reason}; point --state (KEYHOOK_STATE) at a file \
         this user can read and write, in a folder it can write, or fix the permissions",
        .path.display()
    )]
    Unusable { path: PathBuf, reason: String },
    #[error("state database {shown}: {detail}")]
    Postgres { shown: String, detail: String },
    /// Another host recorded this slot's run first: the normal outcome of a race, not a
    /// failure.
    #[error("the slot at {slot} of task `{task}` was run by another host")]
    SlotTaken { task: String, slot: i64 },
    /// Event deliveries came again under ids the state already holds.
    #[error(
        "state database {shown} already holds these events' deliveries, so nothing was \
         recorded: the license database was dispatched before under another path or URL \
         (moved, renamed, or named another way: its event cursor is kept per path or URL as \
         given, so give it the way it was), or it is an older copy whose outbox numbers its \
         events again. `keyhook events uninstall --force` then `keyhook events install` numbers \
         the next events anew"
    )]
    EventsAgain { shown: String },
    #[error("state database {}", .path.display())]
    Sql {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// An open state database.
pub struct StateDb {
    pub(crate) conn: Connection,
    path: PathBuf,
    /// Deliveries this process's senders hold: see [`deliveries::ClaimBook`].
    claims: std::cell::RefCell<deliveries::ClaimBook>,
    /// Deliveries claims gave up since the sender last asked: see
    /// [`DeliveryQueue::take_given_up`].
    given_up: std::cell::Cell<u64>,
    /// The host its runs are recorded as run by (`--host`); `None`: not said.
    pub(crate) host: Option<String>,
    /// See [`StateDb::found_empty`].
    found_empty: bool,
}

impl StateDb {
    /// Opens (creating if needed) and migrates the state database at `path`.
    pub fn open(path: &Path) -> Result<StateDb, StateError> {
        if let Presence::Unusable(reason) = file_access::presence(path) {
            return Err(open_error::unusable(path, reason));
        }
        if let Some(reason) = hard_linked(path) {
            return Err(open_error::unusable(path, reason));
        }
        // A file there and not empty is no new one: no lock to wait for.
        let new = !std::fs::metadata(path).is_ok_and(|meta| meta.len() > 0);
        // Without the lock's file (a folder keyhook cannot write in), emptiness is judged
        // as it is found.
        let _creating = new.then(|| lock::CreationLock::acquire(path).ok());
        let found_empty = new && std::fs::metadata(path).is_ok_and(|meta| meta.len() == 0);
        let mut state =
            Self::open_and_migrate(path).map_err(|error| open_error::diagnose(path, error))?;
        state.found_empty = found_empty;
        Ok(state)
    }

    /// Whether the file was there and empty (0 bytes) when it was opened, and no other keyhook
    /// was creating it: SQLite takes that for a new database, so what a truncated copy or
    /// restore held (run history, retries) is gone, and it is worth saying.
    pub fn found_empty(&self) -> bool {
        self.found_empty
    }

    /// Whether the file is there: `false` only when it truly is not, an error when it cannot
    /// be looked at (a read-only command must not call an unreadable file "not there").
    pub fn exists(path: &Path) -> Result<bool, StateError> {
        match file_access::presence(path) {
            Presence::File => Ok(true),
            Presence::Absent => Ok(false),
            Presence::Unusable(reason) => Err(open_error::unusable(path, reason)),
        }
    }

    fn open_and_migrate(path: &Path) -> Result<StateDb, StateError> {
        configure_sqlite();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| classify(path, e))?;
        // A new file gets 8 KiB pages (an existing one keeps its own): see `PAGE_SIZE`.
        // WAL: readers never block the sender; NORMAL: a commit survives a killed process
        // (only a power cut can lose the last commits, never corrupt the file).
        conn.execute_batch(&format!(
            "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        ))
        .map_err(|e| classify(path, e))?;
        // A checkpoint (two fsyncs) every 32 MiB of WAL rather than every 4 MiB: a run commits
        // outcomes every few milliseconds, so the default checkpointed several times a second.
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .map_err(|e| classify(path, e))?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            WAL_AUTOCHECKPOINT_BYTES / page_size,
        )
        .map_err(|e| classify(path, e))?;
        let mut state = StateDb {
            conn,
            path: path.to_path_buf(),
            claims: Default::default(),
            given_up: Default::default(),
            host: None,
            found_empty: false,
        };
        migrations::migrate(&mut state.conn, path)?;
        // The schema's one CHECK (`deliveries.status IN (4 values)`) builds a temporary b-tree
        // for its list on every insert and every outcome: a third of an outcome's cost. Every
        // status written comes from `Status::as_str`, a closed set, and `PRAGMA
        // integrity_check` still verifies the constraint.
        state
            .conn
            .execute_batch("PRAGMA ignore_check_constraints = ON;")
            .map_err(|e| classify(path, e))?;
        tune_statements(&state.conn).map_err(|e| classify(path, e))?;
        Ok(state)
    }

    /// The same state, its runs recorded as run by `host`.
    pub fn with_host(mut self, host: &str) -> StateDb {
        self.host = Some(host.to_string());
        self
    }

    /// The default state path for a license database path.
    pub fn default_path(license_db: &Path) -> PathBuf {
        license_db
            .parent()
            .map_or_else(|| PathBuf::from(DEFAULT_FILE), |dir| dir.join(DEFAULT_FILE))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A transaction write-locked from the start (`BEGIN IMMEDIATE`): it waits for another
    /// writer (the busy timeout) before it reads anything. A deferred one that has read cannot
    /// wait when it comes to write; it fails at once if another process wrote meanwhile
    /// (`SQLITE_BUSY_SNAPSHOT`), which processes sharing the state (run-due, watch, retry)
    /// would see as "database is locked".
    pub(crate) fn write_transaction(&self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
    }

    /// Wraps a SQLite error with the file name (and recognises a corrupt file).
    pub(crate) fn error(&self, error: rusqlite::Error) -> StateError {
        classify(&self.path, error)
    }
}

/// Why a state file with several names cannot be used: the tasks' locks and SQLite's WAL are
/// kept beside the name, so two processes using two names would write the file at once and
/// corrupt it. A symbolic link is resolved to the one name and shares both.
fn hard_linked(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata(path).ok()?.nlink();
    (links > 1).then(|| {
        format!(
            "it has {links} hard links, and each name would take locks and a write-ahead log of \
             its own (two processes using two names would corrupt it); keep one name, and use \
             a symbolic link for another"
        )
    })
}

fn classify(path: &Path, error: rusqlite::Error) -> StateError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StateError::Corrupt {
            path: path.to_path_buf(),
            detail: error.to_string(),
        },
        // SQLite opened a file this user may not write read-only; the first write says so.
        Some(ErrorCode::ReadOnly) => open_error::diagnose(
            path,
            StateError::Sql {
                path: path.to_path_buf(),
                source: error,
            },
        ),
        _ => StateError::Sql {
            path: path.to_path_buf(),
            source: error,
        },
    }
}

/// Settings that keep prepared statements reusable.
///
/// The query planner stability guarantee: a plan that depends on no bound value. Otherwise a
/// `col = ?` filter the index does not serve, or a bound LIMIT, marks a statement to be
/// prepared again when that value changes, and the statement cache clears every binding when
/// a statement comes back to it: each claim of the send loop was parsed and planned afresh
/// (a quarter of its cost). The state's queries name their indexes or use literal lists, so
/// no plan changes. More cached statements: each chunk size of an outcome group has its own.
fn tune_statements(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// How much of a statement journal SQLite keeps in memory before it moves it to a temporary
/// file (its default is 64 KiB). A statement that writes many rows in a transaction (a run's
/// 64-row inserts, a group's outcomes) journals the pages it changes, so that it can be undone
/// alone; at 64 KiB nearly every such statement spilled, one `pwrite` per page, about one per
/// delivery. 4 MiB holds any of them.
const STATEMENT_JOURNAL_IN_MEMORY: i32 = 4 << 20;

/// Process-wide SQLite settings, which SQLite takes only before its first connection: called
/// when keyhook starts, and again before each state connection (then a no-op).
pub fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_STMTJRNL_SPILL takes one int. Once SQLite has started,
        // sqlite3_config refuses (SQLITE_MISUSE) and changes nothing: only speed is lost.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
                STATEMENT_JOURNAL_IN_MEMORY,
            );
        }
    });
}

/// WAL bytes after which a commit checkpoints (see `open_and_migrate`).
pub(crate) const WAL_AUTOCHECKPOINT_BYTES: i64 = 32 << 20;

/// The page size of a new state file: 8 KiB, twice SQLite's default.
///
/// Every page SQLite writes to the WAL costs two `pwrite`s (the frame's header, then the
/// page), and a run writes about a kilobyte and a quarter per delivery (mostly its body), then
/// reads it back to send it and copies it into the file at the checkpoint: at 8 KiB, half the
/// system calls for the same bytes, and no more instructions (`callgrind`: 16 KiB pages cost
/// 7% more, moving more bytes in each page's b-tree). A file made before keeps its page size
/// (SQLite changes it only by rebuilding the whole file).
pub(crate) const PAGE_SIZE: i64 = 8192;

/// Seconds since the Unix epoch, the unit of every time in the state database.
pub fn unix(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp()
}
