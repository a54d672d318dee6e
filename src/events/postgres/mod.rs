//! Event capture on a PostgreSQL license database: the same catalog, outbox columns and meta
//! record as SQLite's, with PL/pgSQL trigger functions ([`plan`]), installed and removed in
//! one transaction ([`install`]), compared with their tables ([`drift`]). The outbox and its
//! record live in the license table's schema; the triggers name it, whatever the writer's
//! search path.

pub mod drift;
pub mod expiry;
pub mod install;
pub mod plan;

use postgres::error::SqlState;
use postgres::{Client, GenericClient};

use super::drift::TableState;
use super::outbox::{Counts, OutboxRow};
use crate::licenses::postgres::{connect, schema};

pub use super::outbox::{META, OUTBOX};

/// One column of a table with triggers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    /// As PostgreSQL names it (`activationkey`).
    pub name: String,
    /// Its type, as `format_type` writes it (`integer`, `timestamp(0) without time zone`).
    pub type_name: String,
    /// Its key in a snapshot: QLM's spelling (`ActivationKey`) for QLM's columns, else `name`.
    pub key: String,
}

/// The outbox on a server: a connection, and the schema the license table (and so the outbox)
/// is in.
pub struct PgOutbox {
    pub client: Client,
    pub schema: String,
}

/// Why the outbox on a server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PgEventsError {
    #[error("could not connect: {0}")]
    Connect(#[from] connect::ConnectError),
    #[error("the server has no license table `LicenseKeys` on the URL's search path")]
    NoLicenseTable,
    #[error("{0}")]
    Sql(String),
}

impl From<postgres::Error> for PgEventsError {
    fn from(error: postgres::Error) -> PgEventsError {
        PgEventsError::Sql(connect::error_text(&error))
    }
}

impl PgOutbox {
    /// Connects and finds the license table's schema.
    pub fn connect(url: &str) -> Result<PgOutbox, PgEventsError> {
        let mut client = connect::connect(url).map_err(PgEventsError::Connect)?;
        let schema = schema::table_schema(&mut client)?.ok_or(PgEventsError::NoLicenseTable)?;
        Ok(PgOutbox { client, schema })
    }

    /// `"schema".keyhook_outbox`.
    pub fn outbox(&self) -> String {
        format!("{}.{OUTBOX}", quote(&self.schema))
    }

    /// Whether events are installed (the outbox is there).
    pub fn installed(&mut self) -> Result<bool, PgEventsError> {
        let schema = self.schema.clone();
        Ok(relation(&mut self.client, &schema, OUTBOX)?.is_some())
    }

    /// Up to `limit` outbox rows after sequence `after`, in seq order, none that an open
    /// transaction could still commit a row below (see [`plan::OUTBOX_LOCK`]): the sequence's
    /// last value is read first, then the marks of the transactions writing events, then the
    /// rows up to the lowest of them. Each in its own statement, in that order: a transaction
    /// that takes a seq after the first read takes one above it, and one that took one before
    /// had marked itself before (a mark comes before the seqs), so the marks' read sees its
    /// mark or the rows' read its commit.
    pub fn read_after(&mut self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, PgEventsError> {
        let last = self.client.query_one(
            &format!("SELECT {}.{}()", quote(&self.schema), plan::LAST_FUNCTION),
            &[],
        );
        let last: i64 = match last {
            Ok(row) => row.try_get(0)?,
            // Installed by an earlier keyhook (`events status` says so): its triggers make
            // writers of events take their seqs one transaction at a time, so every row above
            // the cursor can be taken, as that keyhook did, until install replaces them.
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_FUNCTION) => {
                return self.rows(after, i64::MAX, limit);
            }
            Err(error) => return Err(error.into()),
        };
        // The lowest row that could be taken: none, nothing to do.
        let lowest: Option<i64> = self
            .client
            .query_one(
                &format!("SELECT min(seq) FROM {} WHERE seq > $1", self.outbox()),
                &[&after],
            )?
            .try_get(0)?;
        let Some(lowest) = lowest else {
            return Ok(Vec::new());
        };
        // A mark gives only its value's low 32 bits (see [`plan::mark_class`]): each is read
        // as the one value with those bits within 2^31 of the lowest row, and this pass goes
        // no higher than that. A mark can be below the cursor (its transaction read the last
        // value before an earlier pass did, and locked after that pass looked): then nothing
        // is taken until it ends. One taken since the last value was read here is above it,
        // so above the top: it holds nothing back.
        let base = lowest - (1 << 31);
        let top = last.min(lowest + (1 << 31) - 1);
        let marked: Option<i64> = self
            .client
            .query_one(
                "SELECT min(k.mark) FROM (SELECT $1 + ((l.objid::bigint - $1) % 4294967296 \
                 + 4294967296) % 4294967296 AS mark FROM pg_catalog.pg_locks l \
                 WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.mode = 'ShareLock' \
                 AND l.classid::bigint = $2 AND l.database = \
                 (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())) k \
                 WHERE k.mark <= $3",
                &[&base, &i64::from(plan::mark_class(&self.schema)), &top],
            )?
            .try_get(0)?;
        let horizon = marked.map_or(top, |marked| marked.min(top));
        self.rows(after, horizon, limit)
    }

    /// Up to `limit` outbox rows after `after`, up to `horizon`, in seq order.
    fn rows(
        &mut self,
        after: i64,
        horizon: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, PgEventsError> {
        let sql = format!(
            "SELECT seq, event_type, table_name, row_key, created_ms, snapshot FROM {} \
             WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            self.outbox()
        );
        let rows = self
            .client
            .query(&sql, &[&after, &horizon, &i64::from(limit)])?;
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    seq: row.try_get(0)?,
                    event_type: row.try_get(1)?,
                    table_name: row.try_get(2)?,
                    row_key: row.try_get(3)?,
                    created_ms: row.try_get(4)?,
                    snapshot: row.try_get(5)?,
                    // A PostgreSQL text value is always valid in its encoding.
                    not_utf8: None,
                })
            })
            .collect()
    }

    /// The outbox's size and what is after `taken`; `None` when there is no outbox.
    pub fn counts(&mut self, taken: Option<i64>) -> Result<Option<Counts>, PgEventsError> {
        if !self.installed()? {
            return Ok(None);
        }
        let outbox = self.outbox();
        let sql = format!(
            "SELECT count(*), (SELECT count(*) FROM {outbox} WHERE seq > $1), \
             (SELECT created_ms FROM {outbox} WHERE seq > $1 ORDER BY seq LIMIT 1), max(seq) \
             FROM {outbox}"
        );
        let row = self.client.query_one(&sql, &[&taken.unwrap_or(i64::MIN)])?;
        Ok(Some(Counts {
            total: row.try_get(0)?,
            pending: row.try_get(1)?,
            oldest_pending_ms: row.try_get(2)?,
            last_seq: row.try_get(3)?,
        }))
    }

    /// Deletes the rows at or before `taken` created before `before_ms`; returns how many. The
    /// identity column never hands a deleted seq out again, so the cursor stays valid.
    pub fn prune(&mut self, taken: i64, before_ms: i64) -> Result<u64, PgEventsError> {
        let sql = format!(
            "DELETE FROM {} WHERE seq <= $1 AND created_ms < $2",
            self.outbox()
        );
        Ok(self.client.execute(&sql, &[&taken, &before_ms])?)
    }
}

/// The channel the triggers notify on commit, one per schema: `keyhook_outbox:<schema>`,
/// cut to PostgreSQL's 63-byte limit on a character boundary.
pub fn channel(schema: &str) -> String {
    let mut name = format!("{OUTBOX}:{schema}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// The name of the table `name` in `schema` as PostgreSQL has it: exactly, else folded to
/// lower case as an unquoted name is (`LicenseKeys` is `licensekeys`).
pub fn relation(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<Option<String>, postgres::Error> {
    let row = client.query_opt(
        "SELECT c.relname::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname::text IN ($2::text, lower($2::text)) \
         ORDER BY c.relname::text = $2::text DESC LIMIT 1",
        &[&schema, &name],
    )?;
    row.map(|row| row.try_get(0)).transpose()
}

/// A function as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// `prosrc`.
    pub body: String,
    /// `SECURITY DEFINER`.
    pub definer: bool,
    /// Its `SET` clauses, as `name=value` (`proconfig`).
    pub settings: Vec<String>,
    /// `provolatile`: `s` for `STABLE`.
    pub volatility: String,
}

/// `schema`'s function `name` without arguments, if there is one.
pub fn function_source(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<Option<Function>, postgres::Error> {
    let row = client.query_opt(
        "SELECT p.prosrc, p.prosecdef, coalesce(p.proconfig, '{}')::text[], p.provolatile::text \
         FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs = 0",
        &[&schema, &name],
    )?;
    row.map(|row| {
        Ok(Function {
            body: row.try_get(0)?,
            definer: row.try_get(1)?,
            settings: row.try_get(2)?,
            volatility: row.try_get(3)?,
        })
    })
    .transpose()
}

/// Who cannot use `schema`'s [`plan::LAST_FUNCTION`] (which the triggers on `relation` call): its
/// owner, when they cannot read the outbox's sequence (the function runs as them), and the
/// roles that may change `relation` but not write its events: each trigger inserts
/// [`plan::OUTBOX_INSERTED`] into the outbox as the writer (its `seq` is an identity column,
/// which needs no grant) and executes the function (not the
/// predefined `pg_`
/// roles such as `pg_write_all_data`: their members are roles of their own, listed if they
/// lack it), as [`TableState::FunctionUnusable`]. `None`: nobody, or no such function.
pub fn function_access(
    client: &mut impl GenericClient,
    schema: &str,
    relation: &str,
) -> Result<Option<TableState>, postgres::Error> {
    let outbox = format!("{}.{OUTBOX}", quote(schema));
    let row = client.query_opt(
        "SELECT pg_catalog.pg_get_userbyid(p.proowner)::text, \
             pg_catalog.has_schema_privilege(p.proowner, n.oid, 'USAGE') \
             AND pg_catalog.has_sequence_privilege(p.proowner, \
                 pg_catalog.pg_get_serial_sequence($3, 'seq')::pg_catalog.regclass, \
                 'SELECT, USAGE'), \
             ARRAY(SELECT r.rolname::text FROM pg_catalog.pg_roles r \
                 WHERE (pg_catalog.has_any_column_privilege(r.oid, c.oid, 'INSERT, UPDATE') \
                     OR pg_catalog.has_table_privilege(r.oid, c.oid, 'DELETE')) \
                 AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'USAGE') \
                 AND r.rolname::text !~ '^pg_' \
                 AND NOT (pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE') \
                     AND NOT EXISTS (SELECT FROM pg_catalog.unnest($5::text[]) AS k(col) \
                         WHERE NOT pg_catalog.has_column_privilege(r.oid, $3::text, k.col, \
                             'INSERT'))) \
                 ORDER BY 1) \
         FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid \
         WHERE n.nspname = $1::text AND p.proname = $4::text AND p.pronargs = 0 \
         AND c.relname::text = $2::text",
        &[
            &schema,
            &relation,
            &outbox,
            &plan::LAST_FUNCTION,
            &&plan::OUTBOX_INSERTED[..],
        ],
    )?;
    let Some(row) = row else { return Ok(None) };
    let owner: String = row.try_get(0)?;
    let reads: bool = row.try_get(1)?;
    let writers: Vec<String> = row.try_get(2)?;
    Ok(
        (!reads || !writers.is_empty()).then(|| TableState::FunctionUnusable {
            owner: Some(owner).filter(|_| !reads),
            writers,
        }),
    )
}

/// The columns of `relation` in `schema`, in order, with their snapshot keys.
pub fn columns(
    client: &mut impl GenericClient,
    schema: &str,
    relation: &str,
) -> Result<Vec<Column>, postgres::Error> {
    let rows = client.query(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod) \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid = (SELECT c.oid FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1::text AND c.relname::text = $2::text) \
         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        &[&schema, &relation],
    )?;
    let known = qlm_spellings();
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            let key = known
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&name))
                .cloned()
                .unwrap_or_else(|| name.clone());
            Ok(Column {
                type_name: row.try_get(1)?,
                name,
                key,
            })
        })
        .collect()
}

/// Every column name of QLM's tables, spelled as SQLite's `db init` spells them.
fn qlm_spellings() -> Vec<String> {
    let mut names: Vec<String> = vec!["ID".into()];
    names.extend(crate::licenses::schema::all_columns().map(str::to_string));
    names.extend(
        crate::licenses::schema::RELATED_DDL
            .lines()
            .filter(|line| line.starts_with("    "))
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_string),
    );
    names
}

fn quote(name: &str) -> String {
    crate::licenses::postgres::quote_identifier(name)
}
