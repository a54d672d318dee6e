//! `license.expired` on a server: the same read-only scan as SQLite's
//! ([`crate::events::expiry`]), over `timestamp` columns. Windows and expiry values are
//! `YYYY-MM-DDTHH:MM:SS` text, as on SQLite, so the event's key and the state's record read
//! the same on both.

use super::plan::snapshot_sql;
use super::{META, PgEventsError, PgOutbox, columns, relation};
use crate::events::dispatch::DispatchError;
use crate::events::expiry::{Expiries, Expiry};
use crate::licenses::postgres::quote_identifier as quote;
use crate::licenses::schema::TABLE;

/// The expiry a license has: its subscription's end, else its own.
const EXPIRY: &str = "coalesce(NEW.SubscriptionExpiryDate, NEW.ExpiryDate)";

/// An expiry as text, in the form SQLite's dates are written in.
const AS_TEXT: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS'";

impl PgOutbox {
    /// `"schema"."licensekeys"`, and its columns: what an expiry's snapshot covers.
    fn license_table(&mut self) -> Result<(String, String), PgEventsError> {
        let schema = self.schema.clone();
        let rel =
            relation(&mut self.client, &schema, TABLE)?.ok_or(PgEventsError::NoLicenseTable)?;
        let columns = columns(&mut self.client, &schema, &rel)?;
        Ok((
            format!("{}.{}", quote(&schema), quote(&rel)),
            snapshot_sql("NEW", &columns),
        ))
    }
}

impl Expiries for PgOutbox {
    fn installed_ms(&mut self) -> Result<Option<i64>, DispatchError> {
        let sql = format!(
            "SELECT min(installed_ms) FROM {}.{META}",
            quote(&self.schema)
        );
        let row = self
            .client
            .query_one(&sql, &[])
            .map_err(PgEventsError::from)?;
        Ok(row.try_get(0).map_err(PgEventsError::from)?)
    }

    fn expired_between(&mut self, since: &str, now: &str) -> Result<Vec<Expiry>, DispatchError> {
        let (table, snapshot) = self.license_table()?;
        let sql = format!(
            "SELECT NEW.ID::bigint, to_char({EXPIRY}, {AS_TEXT}), {snapshot} FROM {table} AS NEW \
             WHERE {EXPIRY} > $1::text::timestamp AND {EXPIRY} <= $2::text::timestamp \
             ORDER BY {EXPIRY}, NEW.ID"
        );
        let rows = self
            .client
            .query(&sql, &[&since, &now])
            .map_err(PgEventsError::from)?;
        let read = |row: &postgres::Row| -> Result<Expiry, postgres::Error> {
            Ok(Expiry {
                license_id: row.try_get(0)?,
                expiry: row.try_get(1)?,
                snapshot: row.try_get(2)?,
                not_utf8: None,
            })
        };
        Ok(rows
            .iter()
            .map(read)
            .collect::<Result<_, _>>()
            .map_err(PgEventsError::from)?)
    }

    fn next_expiry_after(&mut self, after: &str) -> Result<Option<String>, DispatchError> {
        let (table, _) = self.license_table()?;
        let sql = format!(
            "SELECT to_char(min({EXPIRY}), {AS_TEXT}) FROM {table} AS NEW \
             WHERE {EXPIRY} > $1::text::timestamp"
        );
        let row = self
            .client
            .query_one(&sql, &[&after])
            .map_err(PgEventsError::from)?;
        Ok(row.try_get(0).map_err(PgEventsError::from)?)
    }
}
