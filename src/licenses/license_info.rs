//! A license row as QLM's `LicenseInfo`: its fields in QLM's order, with QLM's JSON types.
//!
//! NULLs: text becomes `""` (as QLM sends it), numbers `0`, booleans `false`, and dates
//! `null`, since no date is a truthful stand-in for "no date".

mod convert;

use rusqlite::types::ValueRef;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::schema::{Kind, LICENSE_INFO};

pub use convert::{FieldError, ValueProblem, read_fields};

/// One `LicenseInfo` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Bool(bool),
    Text(String),
    Int(i64),
    Date(Option<String>),
}

/// A license's `LicenseInfo`, one value per field of [`LICENSE_INFO`], in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseInfo {
    values: Vec<Field>,
}

/// A matching license: its row id, the dates searches filter on, and what would be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    pub id: i64,
    pub subscription_expiry: Option<String>,
    pub info: LicenseInfo,
}

/// Why a row could not be read as a `LicenseInfo`: a bad row, which is reported (and recorded
/// by a run) without holding back the other matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("license {id}{}: column {column} {problem}", key_suffix(.key))]
pub struct RowError {
    pub id: i64,
    /// The row's `ActivationKey`, as far as it can be read (`""` when it cannot).
    pub key: String,
    pub column: &'static str,
    pub problem: String,
}

fn key_suffix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" ({key})")
    }
}

/// The columns a search selects, in order: `ID`, `SubscriptionExpiryDate`, then
/// [`LICENSE_INFO`].
const FIRST_INFO_COLUMN: usize = 2;

impl License {
    /// Reads a row selected as `ID, SubscriptionExpiryDate, <LicenseInfo columns>`.
    pub fn from_row(row: &rusqlite::Row) -> Result<License, RowError> {
        let bad = |id, column, problem| RowError {
            id,
            key: key_of(row),
            column,
            problem,
        };
        let id = match row.get_ref(0) {
            Ok(ValueRef::Integer(id)) => id,
            Ok(other) => return Err(bad(0, "ID", format!("holds {}, not a number", kind(other)))),
            Err(error) => return Err(bad(0, "ID", error.to_string())),
        };
        let expiry = read_fields(&[("SubscriptionExpiryDate", Kind::Date)], |_, _| {
            row.get_ref(1)
        })
        .map_err(|(column, problem)| bad(id, column, problem.to_string()))?;
        let subscription_expiry = match expiry.into_iter().next() {
            Some(Field::Date(date)) => date,
            _ => None,
        };
        let info = LicenseInfo::from_row(row, FIRST_INFO_COLUMN, id)?;
        Ok(License {
            id,
            subscription_expiry,
            info,
        })
    }
}

/// The `ActivationKey` of a row, best effort, to name a bad row by.
fn key_of(row: &rusqlite::Row) -> String {
    let Some(offset) = LICENSE_INFO
        .iter()
        .position(|(name, _)| *name == "ActivationKey")
    else {
        return String::new();
    };
    match row.get_ref(FIRST_INFO_COLUMN + offset) {
        Ok(ValueRef::Text(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Ok(ValueRef::Integer(number)) => number.to_string(),
        _ => String::new(),
    }
}

fn kind(value: ValueRef) -> &'static str {
    match value {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

impl LicenseInfo {
    /// The value of field `name`, if there is such a field.
    pub fn get(&self, name: &str) -> Option<&Field> {
        let index = LICENSE_INFO.iter().position(|(field, _)| *field == name)?;
        self.values.get(index)
    }

    /// Every field with its name, in [`LICENSE_INFO`]'s order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &Field)> {
        LICENSE_INFO.iter().map(|(name, _)| *name).zip(&self.values)
    }

    /// Field `name` as display text (`""` for NULL dates and unknown fields).
    pub fn text(&self, name: &str) -> String {
        match self.get(name) {
            Some(Field::Text(text)) | Some(Field::Date(Some(text))) => text.clone(),
            Some(Field::Int(number)) => number.to_string(),
            Some(Field::Bool(flag)) => flag.to_string(),
            Some(Field::Date(None)) | None => String::new(),
        }
    }

    /// Reads the `LicenseInfo` columns of a row, starting at column `first`.
    pub fn from_row(row: &rusqlite::Row, first: usize, id: i64) -> Result<Self, RowError> {
        let values = read_fields(&LICENSE_INFO, |offset, _| row.get_ref(first + offset)).map_err(
            |(column, problem)| RowError {
                id,
                key: key_of(row),
                column,
                problem: problem.to_string(),
            },
        )?;
        Ok(LicenseInfo { values })
    }

    /// A `LicenseInfo` from values already read by [`read_fields`] over [`LICENSE_INFO`].
    pub(crate) fn from_fields(values: Vec<Field>) -> LicenseInfo {
        debug_assert_eq!(values.len(), LICENSE_INFO.len());
        LicenseInfo { values }
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Bool(flag) => serializer.serialize_bool(*flag),
            Field::Text(text) => serializer.serialize_str(text),
            Field::Int(number) => serializer.serialize_i64(*number),
            Field::Date(Some(date)) => serializer.serialize_str(date),
            Field::Date(None) => serializer.serialize_none(),
        }
    }
}

impl Serialize for LicenseInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for ((name, _), value) in LICENSE_INFO.iter().zip(&self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}
