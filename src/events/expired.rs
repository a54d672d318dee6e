//! `license.expired` in a dispatch pass: the licenses whose expiry passed in the window
//! `(previous scan, now]` (the first window starts when events were installed, or now if that
//! is later) become deliveries to the webhooks that subscribe to it. Each `(license, expiry
//! value)` is recorded in the state database with its deliveries in one transaction, so an
//! expiry fires once, and a renewal that moves it re-arms it. The license database is only read.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::dispatch::{BodyError, DispatchError, Pass, Route, Taken, Unsendable, delivery_id_of};
use super::expiry::{Expiries, Expiry};
use super::outbox::{META, OutboxRow};
use super::payload;
use crate::licenses::schema::TABLE;
use crate::state::EventStore;
use crate::state::events::EventDelivery;
use crate::state::expiries::Expired;

/// The time-based event's canonical name.
pub const EXPIRED: &str = "license.expired";

/// How dates are written in the license database (QLM's wall-clock text).
const FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// What a scan took, and the earliest expiry after its window (when asked for): the time a
/// caller that scans on a cadence (`watch`) should scan again at the latest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    pub taken: Taken,
    pub next_expiry: Option<DateTime<Utc>>,
}

/// Scans the window ending `now` (read in `zone`, the zone the database's dates are in) and
/// records the new expiries' deliveries; nothing (no scan) when no route subscribes. With
/// `look_ahead`, also finds the earliest expiry after the window.
pub fn take_expired(
    state: &mut dyn EventStore,
    conn: &mut dyn Expiries,
    pass: &Pass,
    (now, zone): (DateTime<Utc>, Tz),
    look_ahead: bool,
    unsendable: &mut Vec<Unsendable>,
) -> Result<Scan, DispatchError> {
    let routes: Vec<&Route> = pass
        .routes
        .iter()
        .filter(|r| r.events.contains(EXPIRED))
        .collect();
    if routes.is_empty() {
        return Ok(Scan::default());
    }
    let until = now.with_timezone(&zone).format(FORMAT).to_string();
    let since = match state.expiry_scanned_to(pass.license_db)? {
        Some(since) => since,
        None => installed_at(conn.installed_ms()?, zone)
            .unwrap_or_else(|| until.clone())
            .min(until.clone()),
    };
    let mut found = Vec::new();
    for expiry in conn.expired_between(&since, &until)? {
        if !state.expiry_seen(pass.license_db, expiry.license_id, &expiry.expiry)? {
            found.push(expired(pass, &routes, &expiry, zone, unsendable));
        }
    }
    let deliveries = found.iter().map(|f| f.deliveries.len() as u64).sum();
    let events = state.record_expired(pass.license_db, &found, &until, now.timestamp())?;
    let next_expiry = match look_ahead {
        true => conn
            .next_expiry_after(&until)?
            .map(|next| expiry_ms(&next, zone))
            // 0: not a date this reads; the caller's own cadence covers it.
            .filter(|ms| *ms != 0)
            .and_then(DateTime::from_timestamp_millis),
        false => None,
    };
    Ok(Scan {
        taken: Taken {
            events,
            deliveries,
            behind: None,
        },
        next_expiry,
    })
}

/// When events were installed, as the database writes dates; `None` if not recorded.
fn installed_at(ms: Option<i64>, zone: Tz) -> Option<String> {
    ms.and_then(DateTime::from_timestamp_millis)
        .map(|at| at.with_timezone(&zone).format(FORMAT).to_string())
}

/// When install first ran, from its record in a SQLite license database.
pub fn installed_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let sql = format!("SELECT min(installed_ms) FROM {META}");
    Ok(conn
        .query_row(&sql, [], |row| row.get(0))
        .optional()?
        .flatten())
}

/// One expiry's deliveries, one per subscribed route.
fn expired(
    pass: &Pass,
    routes: &[&Route],
    expiry: &Expiry,
    zone: Tz,
    unsendable: &mut Vec<Unsendable>,
) -> Expired {
    let key = event_key(expiry.license_id, &expiry.expiry);
    let row = OutboxRow {
        seq: 0,
        event_type: EXPIRED.to_string(),
        table_name: TABLE.to_string(),
        row_key: Some(expiry.license_id.to_string()),
        created_ms: expiry_ms(&expiry.expiry, zone),
        snapshot: expiry.snapshot.clone(),
        not_utf8: expiry.not_utf8.clone(),
    };
    let snapshot = payload::parse_row(&row);
    let activation_key = snapshot
        .as_ref()
        .ok()
        .and_then(|s| s.get("ActivationKey")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut deliveries = Vec::new();
    for route in routes {
        let id = delivery_id_of(&key, &route.source);
        let body = match &snapshot {
            Ok(snapshot) => (pass.body)(route, &row, snapshot),
            Err(error) => Err(BodyError::Payload(error.clone())),
        };
        match body {
            Ok(body) => deliveries.push(EventDelivery {
                id,
                source: route.source.clone(),
                event_type: EXPIRED.to_string(),
                event_key: key.clone(),
                order_key: Some(format!("{TABLE}:{}", expiry.license_id)),
                license_id: expiry.license_id,
                activation_key: activation_key.clone(),
                body,
            }),
            Err(reason) => unsendable.push(Unsendable {
                id,
                reason: reason.to_string(),
            }),
        }
    }
    Expired {
        license_id: expiry.license_id,
        expiry: expiry.expiry.clone(),
        deliveries,
    }
}

/// The stable id of a license's expiry: `evt_exp_<license id, hex>_<8 hex of the expiry
/// value's SHA-256>`. `x` is no hex digit, so it never equals an outbox event's `evt_<seq>`.
pub fn event_key(license_id: i64, expiry: &str) -> String {
    let hash = Sha256::digest(expiry.as_bytes());
    format!("evt_exp_{license_id:x}_{}", hex::encode(&hash[..4]))
}

/// When the license expired (UTC ms): the `timestamp` of its event; 0 if it cannot be read.
fn expiry_ms(expiry: &str, zone: Tz) -> i64 {
    // Every shape a license database may store its dates in (a space, no seconds, a day).
    crate::licenses::date_text::parse(expiry)
        .and_then(|at| zone.from_local_datetime(&at).earliest())
        .map_or(0, |at| at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_keys_are_stable_distinct_and_never_an_outbox_key() {
        let a = event_key(42, "2026-11-20T10:00:00");
        assert_eq!(a, event_key(42, "2026-11-20T10:00:00"));
        assert_ne!(
            a,
            event_key(42, "2027-11-20T10:00:00"),
            "a renewal is a new event"
        );
        assert_ne!(a, event_key(43, "2026-11-20T10:00:00"));
        assert!(a.starts_with("evt_exp_2a_"), "{a}");
        assert!(!a[4..16].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            expiry_ms("2026-01-01T00:00:00", chrono_tz::UTC),
            1_767_225_600_000
        );
    }
}
