//! An event's JSON snapshot of a row (see `keyhook_outbox.snapshot`) read as the row itself:
//! each JSON value becomes the SQLite value the trigger's `json_object` was given, and goes
//! through the same mapping as a row of a search ([`read_fields`]).

use rusqlite::types::ValueRef;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
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

/// A snapshot: the row's columns, name and value, in the order the trigger wrote them.
///
/// Read into a list, not a map: an event's snapshot is read once and looked up column by
/// column in about the order it was written, and building a hash map of 40 columns was half
/// the cost of reading it. A name written twice (no trigger does) is found by its last value,
/// as a JSON map would keep it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot(Vec<(String, serde_json::Value)>);

impl Snapshot {
    /// The value of `column`, by its exact name.
    pub fn get(&self, column: &str) -> Option<&serde_json::Value> {
        self.0
            .iter()
            .rev()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value)
    }

    /// The value of `column`, looked for at `*hint` first (then everywhere, and then ignoring
    /// case, as SQLite's names are); `*hint` moves past what was found.
    fn column(&self, column: &str, hint: &mut usize) -> Option<&serde_json::Value> {
        let at = match self.0.get(*hint) {
            Some((name, _)) if name == column && !self.named_again(*hint) => Some(*hint),
            _ => self.0.iter().rposition(|(name, _)| name == column),
        };
        let at = at.or_else(|| {
            self.0
                .iter()
                .rposition(|(name, _)| name.eq_ignore_ascii_case(column))
        })?;
        *hint = at + 1;
        Some(&self.0[at].1)
    }

    /// Whether the name at `at` comes again later (then the later value is the one).
    fn named_again(&self, at: usize) -> bool {
        let name = &self.0[at].0;
        self.0[at + 1..].iter().any(|(other, _)| other == name)
    }

    /// The snapshot as a JSON object (a later value of a name written twice wins).
    pub fn into_map(self) -> Map<String, serde_json::Value> {
        self.0.into_iter().collect()
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Snapshot, D::Error> {
        struct Columns;
        impl<'de> Visitor<'de> for Columns {
            type Value = Snapshot;
            fn expecting(&self, out: &mut std::fmt::Formatter) -> std::fmt::Result {
                out.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Snapshot, A::Error> {
                let mut columns = Vec::with_capacity(map.size_hint().unwrap_or(48));
                while let Some(column) = map.next_entry()? {
                    columns.push(column);
                }
                Ok(Snapshot(columns))
            }
        }
        deserializer.deserialize_map(Columns)
    }
}

impl Serialize for Snapshot {
    /// As the JSON object it was read from.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.clone().into_map().serialize(serializer)
    }
}

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
    let mut hint = 0;
    read_fields(table, |_, column| {
        sqlite_value(snapshot.column(column, &mut hint))
    })
}

/// The value `json_object` was given for a column (`None`: the column is not in the
/// snapshot), borrowed from the snapshot.
fn sqlite_value(value: Option<&serde_json::Value>) -> Result<ValueRef<'_>, SnapshotValueError> {
    match value {
        None => Err(SnapshotValueError::Missing),
        Some(serde_json::Value::Null) => Ok(ValueRef::Null),
        Some(serde_json::Value::Bool(flag)) => Ok(ValueRef::Integer(i64::from(*flag))),
        Some(serde_json::Value::Number(number)) => match number.as_i64() {
            Some(integer) => Ok(ValueRef::Integer(integer)),
            None => Ok(ValueRef::Real(number.as_f64().unwrap_or(f64::NAN))),
        },
        Some(serde_json::Value::String(text)) => Ok(ValueRef::Text(text.as_bytes())),
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
