//! A license row as QLM's `LicenseInfo`: its fields in QLM's order, with QLM's JSON types.
//!
//! NULLs: text becomes `""` (as QLM sends it), numbers `0`, booleans `false`, and dates
//! `null`, since no date is a truthful stand-in for "no date".

mod convert;

use rusqlite::types::ValueRef;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::schema::{Kind, LICENSE_INFO};

pub use convert::{FieldError, FieldRef, ValueProblem, read_fields};

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

/// A matching license as its row holds it: its id and its `LicenseInfo` values, in
/// [`LICENSE_INFO`]'s order, borrowing the row's text (what a body is written from, without a
/// copy of every value on the way).
#[derive(Debug)]
pub struct LicenseRow<'a> {
    pub id: i64,
    pub fields: Vec<FieldRef<'a>>,
}

impl LicenseRow<'_> {
    /// Field `ActivationKey`, as text.
    pub fn activation_key(&self) -> &str {
        match self.fields.get(ACTIVATION_KEY) {
            Some(FieldRef::Text(key)) => key,
            _ => "",
        }
    }
}

/// Where `ActivationKey` is in [`LICENSE_INFO`].
const ACTIVATION_KEY: usize = 1;
const _: () = assert!(matches!(
    LICENSE_INFO[ACTIVATION_KEY].0.as_bytes(),
    b"ActivationKey"
));

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
        let id = row_id(row)?;
        let expiry = read_fields(&[("SubscriptionExpiryDate", Kind::Date)], |_, _| {
            row.get_ref(1)
        })
        .map_err(|(column, problem)| bad(row, id, column, problem.to_string()))?;
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

impl License {
    /// The license as [`LicenseRow`], borrowing its values.
    pub fn as_row(&self) -> LicenseRow<'_> {
        let fields = self.info.fields().map(|(_, field)| field.as_ref());
        LicenseRow {
            id: self.id,
            fields: fields.collect(),
        }
    }
}

impl<'a> LicenseRow<'a> {
    /// Reads a row as [`License::from_row`] does (the same bad rows, the same errors),
    /// keeping its text where it is.
    pub fn from_row(row: &'a rusqlite::Row) -> Result<LicenseRow<'a>, RowError> {
        let id = row_id(row)?;
        let read = |column, kind| -> Result<FieldRef<'a>, String> {
            let value = row.get_ref(column).map_err(|error| error.to_string())?;
            convert::convert_ref(value, kind).map_err(|problem| problem.to_string())
        };
        read(1, Kind::Date).map_err(|problem| bad(row, id, "SubscriptionExpiryDate", problem))?;
        let mut fields = Vec::with_capacity(LICENSE_INFO.len());
        for (offset, (name, kind)) in LICENSE_INFO.iter().enumerate() {
            let field = read(FIRST_INFO_COLUMN + offset, *kind);
            fields.push(field.map_err(|problem| bad(row, id, name, problem))?);
        }
        Ok(LicenseRow { id, fields })
    }
}

/// The row's `ID`.
fn row_id(row: &rusqlite::Row) -> Result<i64, RowError> {
    match row.get_ref(0) {
        Ok(ValueRef::Integer(id)) => Ok(id),
        Ok(other) => Err(bad(
            row,
            0,
            "ID",
            format!("holds {}, not a number", kind(other)),
        )),
        Err(error) => Err(bad(row, 0, "ID", error.to_string())),
    }
}

fn bad(row: &rusqlite::Row, id: i64, column: &'static str, problem: String) -> RowError {
    RowError {
        id,
        key: key_of(row),
        column,
        problem,
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

impl Field {
    /// The value, borrowed.
    pub fn as_ref(&self) -> FieldRef<'_> {
        match self {
            Field::Bool(flag) => FieldRef::Bool(*flag),
            Field::Text(text) => FieldRef::Text(text.as_str().into()),
            Field::Int(number) => FieldRef::Int(*number),
            Field::Date(date) => FieldRef::Date(date.as_deref().map(Into::into)),
        }
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
