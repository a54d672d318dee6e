//! The request body for one event, byte for byte: built from the event's snapshot (so it
//! describes that change, not a later state of the row), once, and then signed and sent as is.
//!
//! - `format = "qlm"`: `{"EventType":"license_activated","LicenseInfo":{...}}`, QLM's shape,
//!   with the 35-field `LicenseInfo` of scheduled tasks; customer events carry `CustomerInfo`
//!   ([`CUSTOMER_INFO`]), product events `ProductInfo` and others `Data` (the row as it is).
//! - `format = "standard"`: `{"type":"license.activated","timestamp":"<RFC 3339, UTC, ms>",
//!   "data":{...}}`, Standard Webhooks' structure, `data` being the same object.
//!
//! A test event (`webhooks test`) ends with `"Test":true` (qlm) or `data.test = true`
//! (standard), so a receiver can tell it from a real change.

use chrono::{SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

use super::catalog::{Catalog, PayloadKind};
use super::names::TIME_BASED;
use crate::definitions::registry::Format;
use crate::licenses::license_info::RowError;
use crate::licenses::schema::CUSTOMER_INFO;
use crate::licenses::snapshot::{self, Snapshot};

/// One event, as plain values: what an outbox row (or an expiry) holds.
#[derive(Debug, Clone, Copy)]
pub struct EventBody<'a> {
    /// The canonical dotted name (`license.activated`).
    pub event_type: &'a str,
    /// When the change was made, UTC milliseconds.
    pub created_ms: i64,
    /// The row as of the change, a JSON object by column.
    pub snapshot: &'a str,
    /// Marked as a test event.
    pub test: bool,
}

/// Why an event's snapshot cannot be sent truthfully; like a bad row, it holds back no other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("{0}")]
    License(#[from] RowError),
    #[error("customer {id}: column {column} {problem}")]
    Customer {
        id: i64,
        column: &'static str,
        problem: String,
    },
    #[error("event snapshot is not a JSON object: {0}")]
    Snapshot(String),
    #[error("column {0} holds text that is not UTF-8")]
    NotUtf8(String),
}

/// The body for `event` in `format`; `catalog` says what kind of row the event describes.
pub fn body(format: Format, event: &EventBody, catalog: &Catalog) -> Result<Vec<u8>, PayloadError> {
    body_of(format, event, &parse(event.snapshot)?, catalog)
}

/// An outbox row's snapshot, read once for all its bodies: refused when it holds text that
/// is not UTF-8.
pub fn parse_row(row: &crate::events::outbox::OutboxRow) -> Result<Snapshot, PayloadError> {
    match &row.not_utf8 {
        Some(column) => Err(PayloadError::NotUtf8(column.clone())),
        None => parse(&row.snapshot),
    }
}

/// An event's snapshot, read once for all its bodies.
pub fn parse(snapshot: &str) -> Result<Snapshot, PayloadError> {
    serde_json::from_str(snapshot).map_err(|error| PayloadError::Snapshot(error.to_string()))
}

/// [`body`], from the snapshot already read. A real event is written straight from its
/// fields; a test event, which adds a field to them, goes through a JSON value. Both give
/// the same bytes (keys in the order inserted).
pub fn body_of(
    format: Format,
    event: &EventBody,
    snapshot: &Snapshot,
    catalog: &Catalog,
) -> Result<Vec<u8>, PayloadError> {
    if event.test {
        return test_body(format, event, snapshot.clone(), catalog);
    }
    let (kind, qlm_name) = describe(event.event_type, catalog);
    let data = Data::of(kind, snapshot)?;
    let mut out = Vec::with_capacity(event.snapshot.len() + 256);
    let write = |out: &mut Vec<u8>, value: &dyn erased::Write| value.write(out);
    out.push(b'{');
    match format {
        Format::Qlm => {
            out.extend_from_slice(b"\"EventType\":");
            write(&mut out, &qlm_name.as_str());
            out.push(b',');
            write(&mut out, &qlm_key(kind));
            out.push(b':');
            write(&mut out, &data);
        }
        Format::Standard => {
            out.extend_from_slice(b"\"type\":");
            write(&mut out, &event.event_type);
            out.extend_from_slice(b",\"timestamp\":");
            write(&mut out, &rfc3339(event.created_ms).as_str());
            out.extend_from_slice(b",\"data\":");
            write(&mut out, &data);
        }
    }
    out.push(b'}');
    Ok(out)
}

/// Serializing into a `Vec` through one function for every kind of value.
mod erased {
    pub trait Write {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize> Write for T {
        fn write(&self, out: &mut Vec<u8>) {
            // Serializing plain fields into a Vec cannot fail.
            serde_json::to_writer(out, self).expect("a payload always serializes");
        }
    }
}

/// The object an event carries, by kind, serialized as [`data`] would make it.
enum Data<'a> {
    License(Box<crate::licenses::license_info::LicenseInfo>),
    Customer(snapshot::Record),
    Row(&'a Snapshot),
}

impl<'a> Data<'a> {
    fn of(kind: PayloadKind, snapshot: &'a Snapshot) -> Result<Data<'a>, PayloadError> {
        Ok(match kind {
            PayloadKind::License => Data::License(Box::new(snapshot::license_info(snapshot)?)),
            PayloadKind::Customer => Data::Customer(customer(snapshot)?),
            PayloadKind::Product | PayloadKind::Generic => Data::Row(snapshot),
        })
    }
}

impl serde::Serialize for Data<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::License(info) => info.serialize(serializer),
            Data::Customer(record) => record.serialize(serializer),
            Data::Row(row) => row.serialize(serializer),
        }
    }
}

fn customer(snapshot: &Snapshot) -> Result<snapshot::Record, PayloadError> {
    snapshot::record(&CUSTOMER_INFO, snapshot).map_err(|(column, problem)| PayloadError::Customer {
        id: snapshot::id_of(snapshot, "CustomerID"),
        column,
        problem,
    })
}

/// A test event's body: the event's object with the test mark added.
fn test_body(
    format: Format,
    event: &EventBody,
    snapshot: Snapshot,
    catalog: &Catalog,
) -> Result<Vec<u8>, PayloadError> {
    let (kind, qlm_name) = describe(event.event_type, catalog);
    let data = data(kind, snapshot)?;
    let mut object = Map::new();
    match format {
        Format::Qlm => {
            object.insert("EventType".into(), Value::String(qlm_name));
            object.insert(qlm_key(kind).into(), data);
            if event.test {
                object.insert("Test".into(), Value::Bool(true));
            }
        }
        Format::Standard => {
            let mut data = data;
            if event.test
                && let Value::Object(fields) = &mut data
            {
                fields.insert("test".into(), Value::Bool(true));
            }
            object.insert("type".into(), Value::String(event.event_type.into()));
            object.insert("timestamp".into(), Value::String(rfc3339(event.created_ms)));
            object.insert("data".into(), data);
        }
    }
    // Serializing a Value into a Vec cannot fail.
    Ok(serde_json::to_vec(&Value::Object(object)).expect("a payload always serializes"))
}

/// The kind of row an event describes and its QLM-style name.
fn describe(event_type: &str, catalog: &Catalog) -> (PayloadKind, String) {
    if let Some((source, event)) = catalog.find(event_type) {
        return (source.payload, event.qlm_name());
    }
    match TIME_BASED.iter().find(|(name, _)| *name == event_type) {
        Some((_, qlm)) => (PayloadKind::License, qlm.to_string()),
        None => (PayloadKind::Generic, event_type.replace('.', "_")),
    }
}

fn data(kind: PayloadKind, snapshot: Snapshot) -> Result<Value, PayloadError> {
    let value = match kind {
        PayloadKind::License => serde_json::to_value(snapshot::license_info(&snapshot)?),
        PayloadKind::Customer => serde_json::to_value(customer(&snapshot)?),
        PayloadKind::Product | PayloadKind::Generic => Ok(Value::Object(snapshot.into_map())),
    };
    Ok(value.expect("fields always serialize"))
}

fn qlm_key(kind: PayloadKind) -> &'static str {
    match kind {
        PayloadKind::License => "LicenseInfo",
        PayloadKind::Customer => "CustomerInfo",
        PayloadKind::Product => "ProductInfo",
        PayloadKind::Generic => "Data",
    }
}

/// `2026-11-23T10:00:00.123Z`.
fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests;
