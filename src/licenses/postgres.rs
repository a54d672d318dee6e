//! The license database on PostgreSQL: a search is one prepared statement with typed
//! (timestamp) parameters, checked by the guard, run in a `READ ONLY` transaction under
//! `statement_timeout`, its rows streamed as licenses.

pub mod connect;
pub mod dialect;
pub mod guard;
pub mod row;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDateTime;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};

use super::database::LicenseDatabase;
use super::license_info::{License, RowError};
use super::macros::Template;
use super::query::{QueryError, condition, select_statement};
use super::refusal::Refusal;
use super::schema::TABLE;

/// A connection to the server holding the license table.
pub struct PgLicenseDb {
    client: Client,
    /// The URL without its password, for messages.
    shown: String,
    /// The schema the license table is in: the only one a search may read from.
    schema: String,
    deadline: Duration,
}

impl PgLicenseDb {
    /// Connects and checks that the license table (found on the URL's search path) has QLM's
    /// columns. `deadline` becomes each search's `statement_timeout`.
    pub fn open(url: &str, deadline: Duration) -> Result<PgLicenseDb, QueryError> {
        let shown = connect::redact(url);
        let server = |reason| QueryError::Server {
            db: shown.clone(),
            reason,
        };
        let mut client = connect::connect(url).map_err(|e| server(e.to_string()))?;
        let schema = schema::table_schema(&mut client)
            .map_err(|e| server(connect::error_text(&e)))?
            .ok_or_else(|| QueryError::NotLicenseDb(PathBuf::from(&shown)))?;
        let missing =
            schema::missing_columns(&mut client, &schema, super::schema::searched_columns())
                .map_err(|e| server(connect::error_text(&e)))?;
        if !missing.is_empty() {
            return Err(QueryError::MissingColumns {
                path: PathBuf::from(&shown),
                columns: missing,
            });
        }
        Ok(PgLicenseDb {
            client,
            shown,
            schema,
            deadline,
        })
    }

    /// A read-only transaction with the deadline armed and the search path pinned:
    /// `pg_catalog` first, so a name cannot resolve to a look-alike in another schema.
    fn begin(&mut self) -> Result<Transaction<'_>, QueryError> {
        let millis = self.deadline.as_millis().clamp(1, i32::MAX as u128);
        let schema = quote_identifier(&self.schema);
        let shown = self.shown.clone();
        let mut transaction = self
            .client
            .build_transaction()
            .read_only(true)
            .start()
            .map_err(|e| server_error(&shown, &e))?;
        transaction
            .batch_execute(&format!(
                "SET LOCAL statement_timeout = {millis}; \
                 SET LOCAL search_path = pg_catalog, {schema}, pg_temp"
            ))
            .map_err(|e| server_error(&shown, &e))?;
        Ok(transaction)
    }

    /// The statement for `condition`, checked: its calls, then its plan.
    fn guarded(
        &mut self,
        template: &Template,
        statement: impl Fn(&str) -> String,
        values: Option<&[NaiveDateTime]>,
    ) -> Result<(Transaction<'_>, postgres::Statement), QueryError> {
        let translated = dialect::translate(condition(template)?).map_err(QueryError::Refused)?;
        guard::check_calls(&translated.calls).map_err(QueryError::Refused)?;
        let sql = statement(&translated.sql);
        let (deadline, schema) = (self.deadline, self.schema.clone());
        let mut transaction = self.begin()?;
        let types = vec![Type::TIMESTAMP; template.placeholders.len()];
        let fail = |error: postgres::Error| search_error(error, deadline);
        let prepared = transaction.prepare_typed(&sql, &types).map_err(fail)?;
        let explain = format!("EXPLAIN (VERBOSE, FORMAT JSON) {sql}");
        let nulls = vec![None::<NaiveDateTime>; types.len()];
        let params: Vec<&(dyn ToSql + Sync)> = match values {
            Some(values) => values.iter().map(|v| v as &(dyn ToSql + Sync)).collect(),
            None => nulls.iter().map(|v| v as &(dyn ToSql + Sync)).collect(),
        };
        let explain = transaction.prepare_typed(&explain, &types).map_err(fail)?;
        let plan: serde_json::Value = transaction
            .query_one(&explain, &params)
            .and_then(|row| row.try_get(0))
            .map_err(fail)?;
        guard::check_plan(&plan, &schema).map_err(QueryError::Refused)?;
        Ok((transaction, prepared))
    }
}

impl LicenseDatabase for PgLicenseDb {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn check(&mut self, template: &Template) -> Result<(), QueryError> {
        self.guarded(template, select_statement, None).map(drop)
    }

    fn count(&mut self, template: &Template, values: &[NaiveDateTime]) -> Result<u64, QueryError> {
        let deadline = self.deadline;
        let count_sql =
            |condition: &str| format!("SELECT count(*) FROM {TABLE} WHERE (\n{condition}\n)");
        let (mut transaction, statement) = self.guarded(template, count_sql, Some(values))?;
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let count: i64 = transaction
            .query_one(&statement, &params)
            .and_then(|row| row.try_get(0))
            .map_err(|error| search_error(error, deadline))?;
        Ok(count.max(0) as u64)
    }

    fn each_row(
        &mut self,
        template: &Template,
        values: &[NaiveDateTime],
        each: &mut dyn FnMut(Result<License, RowError>) -> bool,
    ) -> Result<u64, QueryError> {
        let deadline = self.deadline;
        let fail = |error| search_error(error, deadline);
        let (mut transaction, statement) =
            self.guarded(template, select_statement, Some(values))?;
        let params = values.iter().map(|v| v as &dyn ToSql);
        let mut rows = transaction.query_raw(&statement, params).map_err(fail)?;
        let mut seen = 0;
        while let Some(row) =
            postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(fail)?
        {
            seen += 1;
            if !each(row::license(&row)) {
                break;
            }
        }
        Ok(seen)
    }

    fn write_warning(&mut self) -> Result<Option<String>, QueryError> {
        let shown = self.shown.clone();
        let can_write = schema::can_write(&mut self.client, &self.schema)
            .map_err(|e| server_error(&shown, &e))?;
        Ok(can_write.then(|| {
            format!(
                "the role keyhook connects to {shown} as can change {}.{TABLE} (INSERT, \
                 UPDATE, DELETE or TRUNCATE): keyhook's checks refuse a search that writes, but \
                 a role with only SELECT on the license table is the real guarantee",
                self.schema
            )
        }))
    }
}

/// `"name"`, with any `"` doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn server_error(shown: &str, error: &postgres::Error) -> QueryError {
    QueryError::Server {
        db: shown.to_string(),
        reason: connect::error_text(error),
    }
}

/// What went wrong with a search, in PostgreSQL's words where they are the search's fault.
fn search_error(error: postgres::Error, deadline: Duration) -> QueryError {
    let Some(db) = error.as_db_error() else {
        return QueryError::PgSql(connect::error_text(&error));
    };
    let message = db.message().to_string();
    match db.code() {
        code if *code == SqlState::QUERY_CANCELED => QueryError::Deadline(deadline),
        code if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
            QueryError::Refused(Refusal::Writes(message))
        }
        code if *code == SqlState::SYNTAX_ERROR && message.contains("multiple commands") => {
            QueryError::MultipleStatements
        }
        _ => QueryError::PgSql(message),
    }
}
