//! Read-only evaluation of a search: one statement, reads of the license table only, a
//! deadline, and rows streamed to the caller so memory does not grow with the matches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::{CachedStatement, Connection, ErrorCode, Statement};

use super::license_info::{License, LicenseRow, RowError};
use super::macros::{DATE_FORMAT, Template};
use super::open::{MAX_HEAP_BYTES, MAX_VALUE_BYTES};
use super::refusal::Refusal;
use super::schema::{LICENSE_INFO, TABLE, is_column};

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

/// The license database, opened read-only with a guard on what a search may do.
pub struct LicenseDb {
    conn: Connection,
    path: PathBuf,
    refusal: Arc<Mutex<Option<Refusal>>>,
    deadline: Duration,
}

impl LicenseDb {
    /// Opens `path` read-only; `deadline` bounds every evaluation.
    pub fn open(path: &Path, deadline: Duration) -> Result<LicenseDb, QueryError> {
        let mut conn = super::open::connect(path)?;
        let refusal = Arc::new(Mutex::new(None));
        let recorder = Arc::clone(&refusal);
        conn.authorizer(Some(move |context: AuthContext<'_>| {
            let verdict = authorize(&context.action);
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
            deadline,
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
        let sql = format!(
            "SELECT count(*) FROM {TABLE} WHERE (\n{}\n)",
            condition(template)?
        );
        self.start_deadline();
        let mut statement = self.prepare(&sql)?;
        bind(&mut statement, values)?;
        let mut rows = statement.raw_query();
        let count = match rows.next().map_err(|error| self.failure(error))? {
            Some(row) => row.get::<_, i64>(0).map_err(|error| self.failure(error))?,
            None => 0,
        };
        Ok(count.max(0) as u64)
    }

    /// Calls `each` for every match, in table order, until it returns `false`; returns how
    /// many matches were passed to it. A row that cannot be read as a license (a bad row) is
    /// passed as an error and the search goes on: one bad row holds back no other.
    pub fn for_each(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        mut each: impl FnMut(Result<License, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        self.each_raw(template, values, |row| each(License::from_row(row)))
    }

    /// [`LicenseDb::for_each`], each match as its row holds it (no copy of its text).
    pub fn for_each_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        mut each: impl FnMut(Result<LicenseRow, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        // One buffer for every row's `LicenseInfo`: a row is done with before the next.
        let mut info = Vec::with_capacity(2048);
        self.each_raw(template, values, |row| {
            each(LicenseRow::from_row(row, &mut info))
        })
    }

    fn each_raw(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        mut each: impl FnMut(&rusqlite::Row) -> bool,
    ) -> Result<u64, QueryError> {
        let sql = select_sql(template)?;
        let paused = self.start_deadline();
        let mut statement = self.prepare(&sql)?;
        bind(&mut statement, values)?;
        let mut rows = statement.raw_query();
        let mut seen = 0;
        while let Some(row) = rows.next().map_err(|error| self.failure(error))? {
            let handed_over = Instant::now();
            seen += 1;
            let more = each(row);
            // The deadline is for the search, not for what the caller does with each match.
            let spent = u64::try_from(handed_over.elapsed().as_nanos()).unwrap_or(u64::MAX);
            paused.fetch_add(spent, std::sync::atomic::Ordering::Relaxed);
            if !more {
                break;
            }
        }
        Ok(seen)
    }

    /// Arms the deadline; time added to the returned counter (nanoseconds) is not counted.
    fn start_deadline(&mut self) -> Arc<std::sync::atomic::AtomicU64> {
        let started = Instant::now();
        let deadline = self.deadline;
        let paused = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let excluded = Arc::clone(&paused);
        // Checking the clock every few thousand VM steps costs nothing measurable.
        let _ = self.conn.progress_handler(
            4096,
            Some(move || {
                let excluded =
                    Duration::from_nanos(excluded.load(std::sync::atomic::Ordering::Relaxed));
                started.elapsed().saturating_sub(excluded) > deadline
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
                QueryError::Deadline(self.deadline)
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

fn bind(statement: &mut Statement, values: &[NaiveDateTime]) -> Result<(), QueryError> {
    for (index, value) in values.iter().enumerate() {
        statement
            .raw_bind_parameter(index + 1, format_value(value))
            .map_err(|error| QueryError::Sql(error.to_string()))?;
    }
    Ok(())
}

pub(super) fn condition(template: &Template) -> Result<&str, QueryError> {
    let trimmed = template.sql.trim();
    if trimmed.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(trimmed)
}

/// The statement a search runs. The condition sits on lines of its own so that a trailing
/// `--` comment in it cannot swallow the closing parenthesis.
fn select_sql(template: &Template) -> Result<String, QueryError> {
    Ok(select_statement(condition(template)?))
}

/// `SELECT <the columns a license is read from> FROM LicenseKeys WHERE (<condition>)`, the
/// same for every back end.
pub(super) fn select_statement(condition: &str) -> String {
    let columns: Vec<&str> = LICENSE_INFO.iter().map(|(name, _)| *name).collect();
    format!(
        "SELECT ID, SubscriptionExpiryDate, {} FROM {TABLE} WHERE (\n{condition}\n)",
        columns.join(", "),
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
