//! `license.expired` is time-based: no row changes when a license expires, so no trigger can
//! see it. It is found by a read-only scan instead, and never written to the license database
//! (install, uninstall and prune stay the only writes keyhook makes there).
//!
//! How dispatch uses it (`super::expired`): each pass calls [`expired_between`] for the window
//! `(since, now]`, where `since` is the previous pass's `now` (or, on the first pass, the time
//! events were installed, so old expiries do not all fire at once). An event is keyed on the
//! license and its expiry value, `(ID, expiry)`: dispatch records that key in the state
//! database in the same transaction as the event's deliveries, and skips keys it already has,
//! so overlapping windows and re-runs after a crash emit each expiry once, and a renewal that
//! moves the expiry re-arms the event. Its stable id derives from the same key.

use rusqlite::Connection;

use super::catalog::table_columns;
use super::dispatch::DispatchError;
use super::outbox::snapshot_sql;
use crate::licenses::date_text::{self, DateText};
use crate::licenses::schema::TABLE;

/// The expiry a license has: its subscription's end, else its own.
pub const EXPIRY: &str =
    "coalesce(nullif(NEW.SubscriptionExpiryDate, ''), nullif(NEW.ExpiryDate, ''))";

/// Where a pass finds expiries: a SQLite license database or a server.
pub trait Expiries {
    /// When events were installed (UTC ms), if recorded: where the first window starts.
    fn installed_ms(&mut self) -> Result<Option<i64>, DispatchError>;
    /// See [`expired_between`].
    fn expired_between(&mut self, since: &str, now: &str) -> Result<Vec<Expiry>, DispatchError>;
    /// See [`next_expiry_after`].
    fn next_expiry_after(&mut self, after: &str) -> Result<Option<String>, DispatchError>;
}

impl Expiries for Connection {
    fn installed_ms(&mut self) -> Result<Option<i64>, DispatchError> {
        Ok(super::expired::installed_ms(self)?)
    }

    fn expired_between(&mut self, since: &str, now: &str) -> Result<Vec<Expiry>, DispatchError> {
        Ok(expired_between(self, since, now)?)
    }

    fn next_expiry_after(&mut self, after: &str) -> Result<Option<String>, DispatchError> {
        Ok(next_expiry_after(self, after)?)
    }
}

/// One license whose expiry passed in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub license_id: i64,
    /// The expiry value, as stored (QLM's wall-clock text): half of the event's key.
    pub expiry: String,
    /// The license row now, as an outbox snapshot would hold it.
    pub snapshot: String,
    /// The column whose text is not UTF-8, if one is ([`OutboxRow::not_utf8`]).
    ///
    /// [`OutboxRow::not_utf8`]: super::outbox::OutboxRow::not_utf8
    pub not_utf8: Option<String>,
}

/// Licenses whose expiry is after `since` and at or before `now` (both `YYYY-MM-DDTHH:MM:SS`
/// in the zone the database's dates are written in), oldest first. Read-only.
pub fn expired_between(conn: &Connection, since: &str, now: &str) -> rusqlite::Result<Vec<Expiry>> {
    let columns = table_columns(conn, TABLE)?;
    let sql = format!(
        "SELECT NEW.ID, {EXPIRY}, {} FROM {TABLE} AS NEW \
         WHERE {EXPIRY} > ?1 AND {EXPIRY} <= ?2 ORDER BY {EXPIRY}, NEW.ID",
        snapshot_sql("NEW", &columns)
    );
    let mut statement = conn.prepare(&sql)?;
    let shape = date_text::of_database(conn);
    let (since, now) = (in_shape(since, shape), in_shape(now, shape));
    statement
        .query_map([since, now], |row| {
            let (snapshot, not_utf8) = super::outbox::snapshot_of(row.get_ref(2)?);
            Ok(Expiry {
                license_id: row.get(0)?,
                expiry: row.get(1)?,
                snapshot,
                not_utf8,
            })
        })?
        .collect()
}

/// The earliest expiry after `after` (same text form), if any license has one. Read-only.
pub fn next_expiry_after(conn: &Connection, after: &str) -> rusqlite::Result<Option<String>> {
    let sql = format!("SELECT min({EXPIRY}) FROM {TABLE} AS NEW WHERE {EXPIRY} > ?1");
    let after = in_shape(after, date_text::of_database(conn));
    conn.query_row(&sql, [after], |row| row.get(0))
}

/// `text` (keyhook's `YYYY-MM-DDTHH:MM:SS`) in the shape of the database's own dates, which
/// SQLite compares with it as text: `2026-12-01 10:00:00` sorts before `2026-12-01T00:00:00`.
fn in_shape(text: &str, shape: DateText) -> String {
    match date_text::parse(text) {
        Some(at) => shape.format(&at),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_expiry_in_the_window_once_and_a_renewal_moves_it() {
        let conn = Connection::open_in_memory().unwrap();
        crate::licenses::schema::create(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO LicenseKeys (ID, SubscriptionExpiryDate, ExpiryDate) VALUES
             (1, '2026-11-20T10:00:00', NULL), (2, NULL, '2026-11-21T10:00:00'),
             (3, '2026-12-20T10:00:00', '2026-11-01T00:00:00'), (4, NULL, NULL);",
        )
        .unwrap();
        let ids = |since: &str, now: &str| -> Vec<(i64, String)> {
            expired_between(&conn, since, now)
                .unwrap()
                .into_iter()
                .map(|e| (e.license_id, e.expiry))
                .collect()
        };
        assert_eq!(
            ids("2026-11-01T00:00:00", "2026-11-23T00:00:00"),
            [
                (1, "2026-11-20T10:00:00".to_string()),
                (2, "2026-11-21T10:00:00".to_string())
            ]
        );
        assert!(ids("2026-11-21T10:00:00", "2026-11-23T00:00:00").is_empty());
        let next = |after: &str| next_expiry_after(&conn, after).unwrap();
        assert_eq!(
            next("2026-11-20T10:00:00").as_deref(),
            Some("2026-11-21T10:00:00")
        );
        assert_eq!(next("2026-12-20T10:00:00"), None);
        conn.execute_batch(
            "UPDATE LicenseKeys SET ExpiryDate = '2026-11-22T09:00:00' WHERE ID = 2",
        )
        .unwrap();
        let renewed = expired_between(&conn, "2026-11-21T10:00:00", "2026-11-23T00:00:00").unwrap();
        assert_eq!(renewed.len(), 1);
        let snapshot: serde_json::Value = serde_json::from_str(&renewed[0].snapshot).unwrap();
        assert_eq!(snapshot["ID"], 2);
        assert_eq!(snapshot["ExpiryDate"], "2026-11-22T09:00:00");
    }
}
