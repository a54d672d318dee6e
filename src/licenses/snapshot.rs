//! An event's JSON snapshot of a row (see `keyhook_outbox.snapshot`) read as the row itself:
//! each JSON value becomes the SQLite value the trigger's `json_object` was given, and goes
//! through the same mapping as a row of a search ([`read_fields`]).

use rusqlite::types::{Value, ValueRef};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Map;

use super::license_info::{Field, FieldError, LicenseInfo, RowError, read_fields};
use super::schema::{Kind, LICENSE_INFO};

/// Why a snapshot gives no value for a column; worded to follow `column <name>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotValueError {
    #[error("is missing from the event's snapshot (`keyhook events status`)")]
    Missing,
    #[error("holds JSON {0}, not a value a column holds")]
    NotAValue(serde_json::Value),
}

/// A snapshot: column name → value.
pub type Snapshot = Map<String, serde_json::Value>;

/// A row's fields by a fixed table (`CustomerInfo`), serialized in the table's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    table: &'static [(&'static str, Kind)],
    values: Vec<Field>,
}

/// The `LicenseInfo` of a license snapshot; a value a run could not send is a [`RowError`],
/// worded as a bad row is.
pub fn license_info(snapshot: &Snapshot) -> Result<LicenseInfo, RowError> {
    let values = read(&LICENSE_INFO, snapshot).map_err(|(column, problem)| RowError {
        id: id_of(snapshot, "ID"),
        key: text_of(snapshot, "ActivationKey"),
        column,
        problem: problem.to_string(),
    })?;
    Ok(LicenseInfo::from_fields(values))
}

/// The fields of `table` in a snapshot; an error names the column and the problem (in words,
/// as the event's payload error carries it).
pub fn record(
    table: &'static [(&'static str, Kind)],
    snapshot: &Snapshot,
) -> Result<Record, (&'static str, String)> {
    let values =
        read(table, snapshot).map_err(|(column, problem)| (column, problem.to_string()))?;
    Ok(Record { table, values })
}

fn read(
    table: &[(&'static str, Kind)],
    snapshot: &Snapshot,
) -> Result<Vec<Field>, (&'static str, FieldError<SnapshotValueError>)> {
    let mut values = Vec::with_capacity(table.len());
    for (column, _) in table {
        values.push(
            sqlite_value(column, snapshot)
                .map_err(|problem| (*column, FieldError::Read(problem)))?,
        );
    }
    read_fields(table, |offset, _| Ok(ValueRef::from(&values[offset])))
}

/// The value `json_object` was given for `column` (SQLite's names are case-insensitive).
fn sqlite_value(column: &str, snapshot: &Snapshot) -> Result<Value, SnapshotValueError> {
    let value = snapshot.get(column).or_else(|| {
        snapshot
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(column))
            .map(|(_, value)| value)
    });
    match value {
        None => Err(SnapshotValueError::Missing),
        Some(serde_json::Value::Null) => Ok(Value::Null),
        Some(serde_json::Value::Bool(flag)) => Ok(Value::Integer(i64::from(*flag))),
        Some(serde_json::Value::Number(number)) => match number.as_i64() {
            Some(integer) => Ok(Value::Integer(integer)),
            None => Ok(Value::Real(number.as_f64().unwrap_or(f64::NAN))),
        },
        Some(serde_json::Value::String(text)) => Ok(Value::Text(text.clone())),
        Some(other) => Err(SnapshotValueError::NotAValue(other.clone())),
    }
}

/// The snapshot's `column` as a number, to name a bad row by (0 when it is not one).
pub fn id_of(snapshot: &Snapshot, column: &str) -> i64 {
    match snapshot.get(column) {
        Some(serde_json::Value::Number(number)) => number.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(text)) => text.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn text_of(snapshot: &Snapshot, column: &str) -> String {
    match snapshot.get(column) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(serde_json::Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for ((name, _), value) in self.table.iter().zip(&self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::licenses::schema::CUSTOMER_INFO;

    fn snapshot(text: &str) -> Snapshot {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_snapshot_maps_like_a_row() {
        let mut json = LICENSE_INFO
            .iter()
            .map(|(name, _)| format!("\"{name}\":null"))
            .collect::<Vec<_>>()
            .join(",");
        json.push_str(",\"ID\":7");
        let json = format!("{{{json}}}")
            .replace("\"ActivationKey\":null", "\"ActivationKey\":\"K-7\"")
            .replace("\"LicenseModel\":null", "\"LicenseModel\":\"trial\"")
            .replace("\"ExpiryDate\":null", "\"expirydate\":\"2026-01-31 08:00\"");
        let info = license_info(&snapshot(&json)).unwrap();
        assert_eq!(info.get("LicenseModel"), Some(&Field::Int(2)));
        assert_eq!(info.text("ExpiryDate"), "2026-01-31T08:00:00");
        assert_eq!(info.get("Email"), Some(&Field::Text(String::new())));
        assert_eq!(info.get("OrderDate"), Some(&Field::Date(None)));
        let bad = json.replace("\"Duration\":null", "\"Duration\":\"ten\"");
        let error = license_info(&snapshot(&bad)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "license 7 (K-7): column Duration holds `ten`, which is not a number"
        );
        let missing = json.replace("\"Duration\":null,", "");
        let error = license_info(&snapshot(&missing)).unwrap_err();
        assert!(error.problem.contains("missing from the event's snapshot"));
    }

    #[test]
    fn customer_records_keep_their_order_and_types() {
        let mut json: Vec<String> = CUSTOMER_INFO
            .iter()
            .map(|(name, _)| format!("\"{name}\":null"))
            .collect();
        json.reverse();
        let json = format!("{{{}}}", json.join(",")).replace("\"OptIn\":null", "\"OptIn\":1");
        let record = record(&CUSTOMER_INFO, &snapshot(&json)).unwrap();
        let text = serde_json::to_string(&record).unwrap();
        assert!(
            text.starts_with("{\"CustomerID\":0,\"FullName\":\"\",\"Contact\":\"\""),
            "{text}"
        );
        assert!(text.contains("\"OptIn\":true"), "{text}");
        assert!(text.ends_with("\"LastUpdatedDate\":null}"), "{text}");
    }
}
