//! Read-only evaluation of a search: reads of the license table only, a deadline, and rows
//! streamed to the caller so memory does not grow with the matches (beyond a bounded group of
//! rowids, for a search read in table order).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{CachedStatement, Connection, ErrorCode, Statement};

use super::date_text::DateText;
use super::license_info::{InfoBuffer, License, LicenseRow, RowError};
use super::macros::{DATE_FORMAT, Template};
use super::open::{MAX_HEAP_BYTES, MAX_VALUE_BYTES};
use super::refusal::Refusal;
use super::schema::{self, LICENSE_INFO, TABLE, is_column};

/// Why a search could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "license database {} does not exist (create one with `keyhook db init` or `keyhook db demo`)",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "could not open license database {}: {reason}; point --db (KEYHOOK_DB) at the license \
         database, or let this user read it",
        .path.display()
    )]
    Open { path: PathBuf, reason: String },
    #[error(
        "license database {} is locked: another program has held a write lock on it (a long \
         write, or a transaction left open) for longer than keyhook waits (5 s); let it finish, \
         or end that program's transaction, then run again",
        .0.display()
    )]
    Busy(PathBuf),
    #[error("{} is not a license database: it has no {TABLE} table", .0.display())]
    NotLicenseDb(PathBuf),
    #[error(
        "{} is not a license database: it is not a SQLite file; point --db (KEYHOOK_DB) at one",
        .0.display()
    )]
    NotSqlite(PathBuf),
    #[error(
        "license database {} lacks QLM's column(s) {} in its {TABLE} table; add them \
         (`ALTER TABLE {TABLE} ADD COLUMN ...`) or point --db (KEYHOOK_DB) at a QLM license database",
        .path.display(),
        .columns.join(", ")
    )]
    MissingColumns { path: PathBuf, columns: Vec<String> },
    #[error(
        "license database {} is in WAL mode and its folder {} is not writable, so SQLite cannot \
         read the changes still in its -wal file; let this user write the folder, or have its \
         owner run `sqlite3 {} 'PRAGMA wal_checkpoint(TRUNCATE)'` (or `PRAGMA journal_mode = \
         DELETE`)",
        .path.display(),
        .folder.display(),
        .path.display()
    )]
    WalUnreadable { path: PathBuf, folder: PathBuf },
    #[error("refused: the search {0}; a search may only read the {TABLE} table")]
    Refused(Refusal),
    #[error("the search is empty")]
    Empty,
    #[error("the search holds more than one statement")]
    MultipleStatements,
    #[error("SQLite rejected the search: {0}")]
    Sql(String),
    #[error("PostgreSQL rejected the search: {0}")]
    PgSql(String),
    #[error(
        "could not use license database {db}: {reason}; point --db (KEYHOOK_DB) at the \
         license database, and check that the server answers and lets this role in"
    )]
    Server { db: String, reason: String },
    #[error("the search ran longer than its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    /// SIGINT (2) or SIGTERM (15) came while it ran: nothing was recorded or sent.
    #[error("the search was stopped by {} before it ended; nothing was sent", signal_name(*.0))]
    Stopped(i32),
    #[error(
        "the search made a value longer than {} MiB, the limit for one value, and was stopped",
        MAX_VALUE_BYTES >> 20
    )]
    ValueTooLong,
    #[error(
        "the search needed more than SQLite's memory limit of {} MiB and was stopped",
        MAX_HEAP_BYTES >> 20
    )]
    OutOfMemory,
}

impl QueryError {
    /// Whether the search itself, rather than the database, is at fault.
    pub fn is_search_fault(&self) -> bool {
        matches!(
            self,
            QueryError::Refused(_)
                | QueryError::Empty
                | QueryError::MultipleStatements
                | QueryError::Sql(_)
                | QueryError::PgSql(_)
        )
    }
}

/// The flags SIGINT and SIGTERM set (`commands::sending::Stop`), once a command has installed
/// its handlers: a search checks them with its deadline, so a stop does not wait it out.
static STOP_FLAGS: std::sync::OnceLock<(Arc<AtomicBool>, Arc<AtomicBool>)> =
    std::sync::OnceLock::new();

/// Lets running and later searches see SIGINT (`interrupt`) and SIGTERM (`terminate`). The
/// first flags given stay: every handler installed since sets its own flags too.
pub fn watch_stop(interrupt: Arc<AtomicBool>, terminate: Arc<AtomicBool>) {
    let _ = STOP_FLAGS.set((interrupt, terminate));
}

/// The signal that asked for a stop, if one did: SIGTERM's 15 before SIGINT's 2.
fn stop_signal() -> Option<i32> {
    let (interrupt, terminate) = STOP_FLAGS.get()?;
    if terminate.load(Ordering::Relaxed) {
        Some(15)
    } else if interrupt.load(Ordering::Relaxed) {
        Some(2)
    } else {
        None
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        15 => "SIGTERM",
        _ => "SIGINT",
    }
}

/// The license database, opened read-only with a guard on what a search may do.
pub struct LicenseDb {
    conn: Connection,
    path: PathBuf,
    refusal: Arc<Mutex<Option<Refusal>>>,
    /// Set while keyhook begins or ends a read transaction of its own: the only time the
    /// guard lets a transaction statement through.
    own_transaction: Arc<AtomicBool>,
    deadline: Duration,
    /// How rows are reached in table order ([`schema::rowid_alias`]).
    rowid: Option<&'static str>,
    /// [`ROWIDS_AT_ONCE`] (fewer in tests).
    rowids_at_once: usize,
    /// [`FIRST_ROWIDS`] (fewer in tests).
    first_rowids: usize,
    /// [`ROWS_PER_FETCH`] (fewer in tests).
    rows_per_fetch: usize,
    /// The shape of the stored dates, read off one the first time a search is bound.
    dates: std::cell::OnceCell<DateText>,
}

/// How many matches' rowids are gathered, then fetched in table order (512 KiB of them).
const ROWIDS_AT_ONCE: usize = 64 * 1024;

/// How many rows one execution of the fetch statement reads (`rowid IN (?1, ..., ?64)`):
/// fetching one row per execution cost a statement's reset, halt and new cursor per match,
/// a tenth of the reader's instructions.
const ROWS_PER_FETCH: usize = 64;

/// The first group of rowids of a caller that may stop early (`dry-run --limit`), doubled
/// with each group up to [`ROWIDS_AT_ONCE`]: its first row is not held back by 65,536.
const FIRST_ROWIDS: usize = 4096;

impl LicenseDb {
    /// Opens `path` read-only; `deadline` bounds every evaluation.
    pub fn open(path: &Path, deadline: Duration) -> Result<LicenseDb, QueryError> {
        let mut conn = super::open::connect(path)?;
        let rowid =
            schema::rowid_alias(&conn).map_err(|error| super::open::failed(path, &error))?;
        let refusal = Arc::new(Mutex::new(None));
        let recorder = Arc::clone(&refusal);
        let own_transaction = Arc::new(AtomicBool::new(false));
        let ours = Arc::clone(&own_transaction);
        conn.authorizer(Some(move |context: AuthContext<'_>| {
            let verdict = match context.action {
                AuthAction::Transaction { .. } if ours.load(Ordering::Relaxed) => Ok(()),
                _ => authorize(&context.action),
            };
            if let Err(reason) = &verdict
                && let Ok(mut slot) = recorder.lock()
            {
                slot.get_or_insert_with(|| reason.clone());
            }
            match verdict {
                Ok(()) => Authorization::Allow,
                Err(_) => Authorization::Deny,
            }
        }))
        .map_err(|error| QueryError::Open {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Ok(LicenseDb {
            conn,
            path: path.to_path_buf(),
            refusal,
            own_transaction,
            deadline,
            rowid,
            rowids_at_once: ROWIDS_AT_ONCE,
            first_rowids: FIRST_ROWIDS,
            rows_per_fetch: ROWS_PER_FETCH,
            dates: std::cell::OnceCell::new(),
        })
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Prepares the search without running it: syntax, columns and permissions.
    pub fn check(&self, template: &Template) -> Result<(), QueryError> {
        self.prepare(&select_sql(template)?).map(drop)
    }

    /// Counts the matches.
    pub fn count(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
    ) -> Result<u64, QueryError> {
        let sql = over_search("count(*)", condition(template)?);
        self.start_deadline();
        let mut statement = self.prepare(&sql)?;
        self.bind(&mut statement, values)?;
        let mut rows = statement.raw_query();
        let count = match rows.next().map_err(|error| self.failure(error))? {
            Some(row) => row.get::<_, i64>(0).map_err(|error| self.failure(error))?,
            None => 0,
        };
        Ok(count.max(0) as u64)
    }

    /// Calls `each` for every match until it returns `false`; returns how many matches were
    /// passed to it. A row that cannot be read as a license (a bad row) is passed as an error
    /// and the search goes on: one bad row holds back no other.
    ///
    /// Matches come in SQLite's order for the search, which for a table with rowids (QLM's)
    /// is table order: a search whose rowids one index alone finds is read a group of rowids
    /// at a time, each group in table order (`each_in_table_order`).
    pub fn for_each(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        mut each: impl FnMut(Result<License, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        let first = self.first_rowids.min(self.rowids_at_once);
        self.each_raw(template, values, first, |row| each(License::from_row(row)))
    }

    /// [`LicenseDb::for_each`], each match as its row holds it (no copy of its text), for a
    /// caller that takes every match (a run): groups of rowids at their largest from the first.
    /// With `packed`, each `LicenseInfo` is written packed ([`InfoBuffer::packing`]).
    pub fn for_each_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        packed: bool,
        mut each: impl FnMut(Result<LicenseRow, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        // One buffer for every row's `LicenseInfo`: a row is done with before the next.
        let mut info = InfoBuffer::for_rows(packed);
        let first = self.rowids_at_once;
        self.each_raw(template, values, first, |row| {
            each(LicenseRow::from_row(row, &mut info))
        })
    }

    fn each_raw(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        first_group: usize,
        mut each: impl FnMut(&rusqlite::Row) -> bool,
    ) -> Result<u64, QueryError> {
        let paused = self.start_deadline();
        // The deadline is for the search, not for what the caller does with each match.
        let mut hand_over = |row: &rusqlite::Row| {
            let handed_over = Instant::now();
            let more = each(row);
            let spent = u64::try_from(handed_over.elapsed().as_nanos()).unwrap_or(u64::MAX);
            paused.fetch_add(spent, Ordering::Relaxed);
            more
        };
        if let Some(rowid) = self.rowid {
            let ids = over_search(rowid, condition(template)?);
            if self.index_alone_finds(&ids, values)? {
                return self.each_in_table_order(&ids, values, rowid, first_group, hand_over);
            }
        }
        let mut statement = self.prepare(&select_sql(template)?)?;
        self.bind(&mut statement, values)?;
        let mut rows = statement.raw_query();
        let mut seen = 0;
        while let Some(row) = rows.next().map_err(|error| self.failure(error))? {
            seen += 1;
            if !hand_over(row) {
                break;
            }
        }
        Ok(seen)
    }

    /// Whether SQLite finds the matches' rowids (`ids`, the search's rowids) in one index
    /// alone, without reading the table: then the search itself would read the matches in
    /// that index's order, a table page of its own for each match (one `pread` per match),
    /// where reading them by rowid afterwards reads each page once. A search that needs the
    /// table to tell a match (a column the index lacks, an `OR` of indexes) reads those pages
    /// all the same: read twice, it would cost more, so it goes on as it is.
    fn index_alone_finds(&self, ids: &str, values: &[NaiveDateTime]) -> Result<bool, QueryError> {
        let mut plan = self.prepare(&format!("EXPLAIN QUERY PLAN {ids}"))?;
        self.bind(&mut plan, values)?;
        let mut rows = plan.raw_query();
        while let Some(row) = rows.next().map_err(|error| self.failure(error))? {
            let parent: i64 = row.get(1).map_err(|error| self.failure(error))?;
            let detail: String = row.get(3).map_err(|error| self.failure(error))?;
            // The first step of the statement itself decides: later ones are subqueries'.
            if parent == 0
                && (detail.starts_with("SCAN ")
                    || detail.starts_with("SEARCH ")
                    || detail.starts_with("MULTI-INDEX OR"))
            {
                return Ok(detail.starts_with(&format!("SEARCH {TABLE} USING COVERING INDEX ")));
            }
        }
        Ok(false)
    }

    /// [`LicenseDb::each_raw`] for a search whose rowids one index alone finds: `ids` gives
    /// them, `first_group` at first, then twice as many each time up to [`ROWIDS_AT_ONCE`],
    /// and each group's rows are read in rowid order, each page of the table once for all
    /// its matches in the group. At 40k matches of 100k licenses: 35.8k `pread`s of the
    /// license file -> 9.9k. Both statements read in one transaction: the rows are those the
    /// search found, and SQLite locks the file (and checks it for changes) once, not once
    /// per row (24k `fcntl` and 18k `fstat` at 40k).
    fn each_in_table_order(
        &self,
        ids: &str,
        values: &[NaiveDateTime],
        rowid: &str,
        mut group: usize,
        mut hand_over: impl FnMut(&rusqlite::Row) -> bool,
    ) -> Result<u64, QueryError> {
        let _transaction = ReadTransaction::begin(self)?;
        let mut ids = self.prepare(ids)?;
        self.bind(&mut ids, values)?;
        let per_fetch = self.rows_per_fetch;
        let mut fetch = self.prepare(&by_rowids_statement(rowid, per_fetch))?;
        let mut matches = ids.raw_query();
        let mut chunk: Vec<i64> = Vec::new();
        let mut seen = 0;
        loop {
            chunk.clear();
            while chunk.len() < group {
                let Some(row) = matches.next().map_err(|error| self.failure(error))? else {
                    break;
                };
                chunk.push(row.get(0).map_err(|error| self.failure(error))?);
            }
            chunk.sort_unstable();
            for ids in chunk.chunks(per_fetch) {
                // A short last list is filled up with its last rowid: `IN` reads each once.
                let last = ids[ids.len() - 1];
                let padded = ids.iter().chain(std::iter::repeat(&last));
                for (index, &id) in padded.take(per_fetch).enumerate() {
                    fetch
                        .raw_bind_parameter(index + 1, id)
                        .map_err(|error| self.failure(error))?;
                }
                let mut rows = fetch.raw_query();
                while let Some(row) = rows.next().map_err(|error| self.failure(error))? {
                    seen += 1;
                    if !hand_over(row) {
                        return Ok(seen);
                    }
                }
            }
            if chunk.len() < group {
                return Ok(seen);
            }
            group = (group * 2).min(self.rowids_at_once);
        }
    }

    /// Arms the deadline; time added to the returned counter (nanoseconds) is not counted.
    fn start_deadline(&mut self) -> Arc<AtomicU64> {
        let started = Instant::now();
        let deadline = self.deadline;
        let paused = Arc::new(AtomicU64::new(0));
        let excluded = Arc::clone(&paused);
        // Checking the clock every few thousand VM steps costs nothing measurable.
        let _ = self.conn.progress_handler(
            4096,
            Some(move || {
                let excluded = Duration::from_nanos(excluded.load(Ordering::Relaxed));
                started.elapsed().saturating_sub(excluded) > deadline || stop_signal().is_some()
            }),
        );
        paused
    }

    fn prepare(&self, sql: &str) -> Result<CachedStatement<'_>, QueryError> {
        if let Ok(mut slot) = self.refusal.lock() {
            slot.take();
        }
        self.conn
            .prepare_cached(sql)
            .map_err(|error| self.failure(error))
    }

    fn failure(&self, error: rusqlite::Error) -> QueryError {
        if let Some(reason) = self.refusal.lock().ok().and_then(|mut slot| slot.take()) {
            return QueryError::Refused(reason);
        }
        match error {
            rusqlite::Error::MultipleStatement => QueryError::MultipleStatements,
            rusqlite::Error::SqliteFailure(code, _)
                if code.code == ErrorCode::OperationInterrupted =>
            {
                match stop_signal() {
                    Some(signal) => QueryError::Stopped(signal),
                    None => QueryError::Deadline(self.deadline),
                }
            }
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
                ) =>
            {
                QueryError::Busy(self.path.clone())
            }
            rusqlite::Error::SqliteFailure(code, _) if code.code == ErrorCode::TooBig => {
                QueryError::ValueTooLong
            }
            rusqlite::Error::SqliteFailure(code, _) if code.code == ErrorCode::OutOfMemory => {
                QueryError::OutOfMemory
            }
            rusqlite::Error::SqliteFailure(_, Some(message)) => self.sql_error(message),
            rusqlite::Error::SqlInputError { msg, .. } => self.sql_error(msg),
            other => QueryError::Sql(other.to_string()),
        }
    }
}

impl LicenseDb {
    /// Binds a search's placeholder values, in the shape of the stored dates
    /// ([`DateText`]): `2026-12-01 00:00:00` where the database writes dates with a space.
    fn bind(&self, statement: &mut Statement, values: &[NaiveDateTime]) -> Result<(), QueryError> {
        let shape = self.date_shape();
        for (index, value) in values.iter().enumerate() {
            statement
                .raw_bind_parameter(index + 1, shape.format(value))
                .map_err(|error| QueryError::Sql(error.to_string()))?;
        }
        Ok(())
    }

    /// The shape of the stored dates: that of the first subscription expiry (or, without
    /// one, expiry) date in the table; keyhook's own when there is none or it is no date.
    pub fn date_shape(&self) -> DateText {
        *self
            .dates
            .get_or_init(|| super::date_text::of_database(&self.conn))
    }

    /// Dates stored in another shape than the one placeholders are bound in
    /// ([`LicenseDb::date_shape`]): on the day a search's window starts or ends, such rows can
    /// fall on the wrong side of it. Says which column, how many rows and the first `ID`.
    ///
    /// Only the date columns that `searches` (their SQL) name are read: one pass over the
    /// table, a test of two characters per column and row.
    pub fn date_warning(&self, searches: &[&str]) -> Result<Option<String>, QueryError> {
        let shape = self.date_shape();
        let named = |column: &str| {
            let column = column.to_ascii_lowercase();
            searches
                .iter()
                .any(|sql| sql.to_ascii_lowercase().contains(&column))
        };
        let columns: Vec<&str> = schema::searched_columns()
            .filter(|name| schema::is_date_column(name) && named(name))
            .collect();
        if columns.is_empty() {
            return Ok(None);
        }
        // A date's shape in SQL: its length, and the character after the day.
        let agrees = |column: &str| match shape.separator() {
            None => format!("length({column}) = 10"),
            Some(separator) => {
                format!("length({column}) > 10 AND substr({column}, 11, 1) = '{separator}'")
            }
        };
        // One statement per column: it reads only the column's index where there is one
        // (`keyhook db init` makes them), not the table's every page.
        let mut found = Vec::new();
        for column in &columns {
            // A date at all: `YYYY-MM-DD...` (what is not is a bad row, said elsewhere).
            let sql = format!(
                "SELECT count(*), min(ID) FROM {TABLE} WHERE substr({column}, 5, 1) = '-' \
                 AND substr({column}, 8, 1) = '-' AND NOT ({})",
                agrees(column)
            );
            let mut statement = self.prepare(&sql)?;
            let mut rows = statement.raw_query();
            let Some(row) = rows.next().map_err(|error| self.failure(error))? else {
                continue;
            };
            let count: i64 = row.get(0).map_err(|error| self.failure(error))?;
            let first: Option<i64> = row.get(1).map_err(|error| self.failure(error))?;
            if let (1.., Some(first)) = (count, first) {
                let rows = if count == 1 { "row" } else { "rows" };
                found.push(format!("{column} ({count} {rows}, the first ID {first})"));
            }
        }
        if found.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!(
            "license dates are stored in more than one shape. Searches compare dates as text, \
             in the shape of this database's first subscription expiry date (`{}`); these hold \
             another: {}. On the day a search's window starts or ends, such rows can fall on \
             the wrong side of it. Store every date in one shape (for dates written with a \
             space: `UPDATE {TABLE} SET ExpiryDate = replace(ExpiryDate, ' ', 'T')`, and so on \
             for each column)",
            shape.example(),
            found.join(", ")
        )))
    }

    /// "no such column: X" for one of QLM's columns is the database's fault, not the search's.
    fn sql_error(&self, message: String) -> QueryError {
        let column = message
            .strip_prefix("no such column: ")
            .map(|name| name.rsplit('.').next().unwrap_or(name));
        match column {
            Some(column) if is_column(column) => QueryError::MissingColumns {
                path: self.path.clone(),
                columns: vec![column.to_string()],
            },
            _ => QueryError::Sql(message),
        }
    }
}

/// Formats the values bound to a template's parameters.
pub fn format_value(value: &NaiveDateTime) -> String {
    value.format(DATE_FORMAT).to_string()
}

pub(super) fn condition(template: &Template) -> Result<&str, QueryError> {
    let trimmed = template.sql.trim();
    if trimmed.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(trimmed)
}

/// The statement a search runs.
fn select_sql(template: &Template) -> Result<String, QueryError> {
    Ok(select_statement(condition(template)?))
}

/// `SELECT <the columns a license is read from> FROM LicenseKeys WHERE (<condition>)`, the
/// same for every back end.
pub(super) fn select_statement(condition: &str) -> String {
    over_search(&read_columns(), condition)
}

/// `SELECT <what> FROM LicenseKeys WHERE (<condition>)`. The condition sits on lines of its
/// own so that a trailing `--` comment in it cannot swallow the closing parenthesis.
fn over_search(what: &str, condition: &str) -> String {
    format!("SELECT {what} FROM {TABLE} WHERE (\n{condition}\n)")
}

/// The columns a license is read from, in the order [`LicenseRow::from_row`] reads them.
fn read_columns() -> String {
    let columns: Vec<&str> = LICENSE_INFO.iter().map(|(name, _)| *name).collect();
    format!("ID, SubscriptionExpiryDate, {}", columns.join(", "))
}

/// A read transaction on the license database, ended when dropped.
struct ReadTransaction<'d>(&'d LicenseDb);

impl<'d> ReadTransaction<'d> {
    fn begin(db: &'d LicenseDb) -> Result<ReadTransaction<'d>, QueryError> {
        own_statement(db, "BEGIN").map_err(|error| db.failure(error))?;
        Ok(ReadTransaction(db))
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        // Nothing was written: ending it only lets go of the read lock. Should COMMIT fail,
        // ROLLBACK: a transaction left open would fail every later search that begins one,
        // and hold the others to an old snapshot.
        if own_statement(self.0, "COMMIT").is_err() || !self.0.conn.is_autocommit() {
            let _ = own_statement(self.0, "ROLLBACK");
        }
    }
}

/// `BEGIN`, `COMMIT` or `ROLLBACK`, let through the guard for this statement only.
fn own_statement(db: &LicenseDb, sql: &str) -> rusqlite::Result<()> {
    db.own_transaction.store(true, Ordering::Relaxed);
    let done = db.conn.execute_batch(sql);
    db.own_transaction.store(false, Ordering::Relaxed);
    done
}

/// The columns [`select_statement`] reads, of the rows whose rowids are `?1` to `?<count>`,
/// in rowid order (SQLite walks an `IN` list on the rowid in order: no sort).
fn by_rowids_statement(rowid: &str, count: usize) -> String {
    let list: Vec<String> = (1..=count).map(|n| format!("?{n}")).collect();
    format!(
        "SELECT {} FROM {TABLE} WHERE {rowid} IN ({}) ORDER BY {rowid}",
        read_columns(),
        list.join(", ")
    )
}

/// What a search may do: read the license table and call functions. Anything else is
/// refused, with the reason given back to the user.
fn authorize(action: &AuthAction) -> Result<(), Refusal> {
    match action {
        AuthAction::Select | AuthAction::Recursive => Ok(()),
        AuthAction::Read { table_name, .. } if table_name.eq_ignore_ascii_case(TABLE) => Ok(()),
        AuthAction::Read { table_name, .. } => Err(Refusal::ReadsTable(table_name.to_string())),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            Err(Refusal::LoadsExtension)
        }
        AuthAction::Function { .. } => Ok(()),
        AuthAction::Pragma { pragma_name, .. } => Err(Refusal::Pragma(pragma_name.to_string())),
        AuthAction::Attach { filename } => Err(Refusal::Attaches(filename.to_string())),
        AuthAction::Detach { database_name } => Err(Refusal::Detaches(database_name.to_string())),
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if table_name.starts_with("sqlite_") =>
        {
            Err(Refusal::ChangesSchema)
        }
        AuthAction::Insert { table_name } => Err(Refusal::Inserts(table_name.to_string())),
        AuthAction::Update { table_name, .. } => Err(Refusal::Updates(table_name.to_string())),
        AuthAction::Delete { table_name } => Err(Refusal::Deletes(table_name.to_string())),
        _ => Err(Refusal::NotARead),
    }
}

#[cfg(test)]
mod tests;
