//! A license row as QLM's `LicenseInfo`: its fields in QLM's order, with QLM's JSON types.
//!
//! NULLs: text becomes `""` (as QLM sends it), numbers `0`, booleans `false`, and dates
//! `null`, since no date is a truthful stand-in for "no date".

mod convert;
mod json;
mod packed;

use std::borrow::Cow;

use rusqlite::types::ValueRef;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::schema::{Kind, LICENSE_INFO};

pub use convert::{FieldError, FieldRef, ValueProblem, read_fields};
pub use packed::{Damaged, PackedInfo, length_sql, pack_body, unpack_body};

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

/// A matching license as its row holds it: its id, its `ActivationKey`, and its
/// `LicenseInfo` as the JSON object a body holds, or packed (see [`InfoBuffer::packing`]),
/// written as the row was read (once, with no copy of its values on the way).
#[derive(Debug)]
pub struct LicenseRow<'a> {
    pub id: i64,
    activation_key: Cow<'a, str>,
    info: &'a [u8],
    /// Packed ([`PackedInfo::values`]): the object's length as JSON. `None`: `info` is JSON.
    packed_len: Option<usize>,
}

/// Where [`LicenseRow`]s are written, one after the other: a row's `LicenseInfo` as JSON, or
/// packed (see [`InfoBuffer::packing`]).
#[derive(Debug, Default)]
pub struct InfoBuffer {
    bytes: Vec<u8>,
    packs: bool,
}

impl InfoBuffer {
    /// A buffer for `LicenseInfo` objects of about `bytes` bytes as JSON.
    pub fn with_capacity(bytes: usize) -> InfoBuffer {
        InfoBuffer {
            bytes: Vec::with_capacity(bytes),
            packs: false,
        }
    }

    /// A buffer whose rows are written packed, as a SQLite state stores them: each value after
    /// its length instead of its key. A run's reader writes them so, for the store to copy as
    /// they are; [`LicenseRow::info_json`] then has nothing to give.
    pub fn packing(bytes: usize) -> InfoBuffer {
        InfoBuffer {
            packs: true,
            ..InfoBuffer::with_capacity(bytes)
        }
    }

    /// A buffer for a run's rows: [`InfoBuffer::packing`] when `packed`, else JSON.
    pub fn for_rows(packed: bool) -> InfoBuffer {
        match packed {
            true => InfoBuffer::packing(2048),
            false => InfoBuffer::with_capacity(2048),
        }
    }

    /// Starts the `index`th field's value: its key, or (packed) a byte for its length. Returns
    /// where the value's mark is, for [`InfoBuffer::end_field`].
    fn start_field(&mut self, index: usize) -> usize {
        let mark = self.bytes.len();
        match self.packs {
            true => self.bytes.push(0),
            false => json::key(&mut self.bytes, index),
        }
        mark
    }

    /// Ends the `index`th field's value (packed: puts its length at `mark`), and returns how
    /// many bytes key and value take as JSON.
    fn end_field(&mut self, index: usize, mark: usize) -> usize {
        match self.packs {
            true => json::key_len(index) + packed::mark_length(&mut self.bytes, mark),
            false => self.bytes.len() - mark,
        }
    }

    /// Ends the object, whose fields take `fields` bytes as JSON: the row of `id`.
    fn row<'a>(
        &'a mut self,
        id: i64,
        activation_key: Cow<'a, str>,
        fields: usize,
    ) -> LicenseRow<'a> {
        let packed_len = match self.packs {
            true => Some(fields + 1),
            false => {
                json::close(&mut self.bytes);
                None
            }
        };
        LicenseRow {
            id,
            activation_key,
            info: &self.bytes,
            packed_len,
        }
    }
}

impl LicenseRow<'_> {
    /// Field `ActivationKey`, as text.
    pub fn activation_key(&self) -> &str {
        &self.activation_key
    }

    /// `LicenseInfo` as a JSON object, byte for byte as serde_json writes [`LicenseInfo`];
    /// `None` for a row read into a packing buffer ([`InfoBuffer::packing`]).
    pub fn info_json(&self) -> Option<&[u8]> {
        self.packed_len.is_none().then_some(self.info)
    }

    /// `LicenseInfo` as a packed body holds it, for a row read into a packing buffer.
    pub fn packed(&self) -> Option<PackedInfo<'_>> {
        self.packed_len.map(|json_len| PackedInfo {
            values: self.info,
            json_len,
        })
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
    /// The license as [`LicenseRow`], its `LicenseInfo` written to `buffer`.
    pub fn as_row<'a>(&'a self, buffer: &'a mut InfoBuffer) -> LicenseRow<'a> {
        buffer.bytes.clear();
        let mut fields = 0;
        for (index, (_, value)) in self.info.fields().enumerate() {
            let mark = buffer.start_field(index);
            json::value(&mut buffer.bytes, &value.as_ref());
            fields += buffer.end_field(index, mark);
        }
        let activation_key = match self.info.get("ActivationKey") {
            Some(Field::Text(key)) => Cow::Borrowed(key.as_str()),
            _ => Cow::Borrowed(""),
        };
        buffer.row(self.id, activation_key, fields)
    }
}

impl<'a> LicenseRow<'a> {
    /// Reads a row as [`License::from_row`] does (the same bad rows, the same errors),
    /// writing its `LicenseInfo` to `buffer` as each value is read.
    pub fn from_row(
        row: &'a rusqlite::Row,
        buffer: &'a mut InfoBuffer,
    ) -> Result<LicenseRow<'a>, RowError> {
        let id = row_id(row)?;
        // Searches filter on it; it is not sent, but a row it cannot be read from is bad.
        let expiry = row.get_ref(1).map_err(|error| error.to_string());
        let expiry = expiry.and_then(|value| {
            let date = convert::convert_ref(value, Kind::Date);
            date.map(drop).map_err(|problem| problem.to_string())
        });
        expiry.map_err(|problem| bad(row, id, "SubscriptionExpiryDate", problem))?;
        buffer.bytes.clear();
        let mut activation_key = Cow::Borrowed("");
        let mut fields = 0;
        for (offset, (name, kind)) in LICENSE_INFO.iter().enumerate() {
            let value = row.get_ref(FIRST_INFO_COLUMN + offset);
            let value = value.map_err(|error| bad(row, id, name, error.to_string()))?;
            let mark = buffer.start_field(offset);
            let info = &mut buffer.bytes;
            let written = match offset {
                ACTIVATION_KEY => convert::convert_ref(value, *kind).map(|field| {
                    json::value(info, &field);
                    if let FieldRef::Text(key) = field {
                        activation_key = key;
                    }
                }),
                _ => json::stored(info, value, *kind),
            };
            written.map_err(|problem| bad(row, id, name, problem.to_string()))?;
            fields += buffer.end_field(offset, mark);
        }
        Ok(buffer.row(id, activation_key, fields))
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

    /// Writes the `LicenseInfo` as the JSON object a body holds.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        for (index, (_, value)) in self.fields().enumerate() {
            json::key(out, index);
            json::value(out, &value.as_ref());
        }
        json::close(out);
    }

    /// A `LicenseInfo` from values already read by [`read_fields`] over [`LICENSE_INFO`].
    pub(crate) fn from_fields(values: Vec<Field>) -> LicenseInfo {
        debug_assert_eq!(values.len(), LICENSE_INFO.len());
        LicenseInfo { values }
    }

    /// For tests: every character below 0x80, a few beyond, JSON's own punctuation inside a
    /// value (a key, a quote, a backslash at the end), and a long value.
    #[cfg(test)]
    pub(crate) fn awkward_texts() -> Vec<String> {
        let ascii: String = (0u8..0x80).map(char::from).collect();
        vec![
            ascii,
            String::new(),
            "Müller & Söhne \u{2028}\u{1F600} \u{7f}".into(),
            "\"quoted\" \\ back\\slash\n\r\t\u{8}\u{c}\u{1}\u{1f}".into(),
            "<properties><property name=\"a\"/></properties>".into(),
            "\",\"Email\":\"x".into(),
            "a\\".into(),
            "\\\"".into(),
            "}".into(),
            ",".into(),
            "x".repeat(300),
        ]
    }

    /// For tests: every field set from `text` (its text fields `text` and their index, every
    /// other one empty with `flip`), the extremes of each number, both booleans, and with
    /// `flip` every date NULL.
    #[cfg(test)]
    pub(crate) fn sample(text: &str, flip: bool) -> LicenseInfo {
        let values = LICENSE_INFO
            .iter()
            .enumerate()
            .map(|(index, (_, kind))| match kind {
                Kind::Bool => Field::Bool(flip ^ (index % 2 == 0)),
                Kind::Text if flip && index % 2 == 0 => Field::Text(String::new()),
                Kind::Text => Field::Text(format!("{text}{index}")),
                Kind::Int | Kind::Model => Field::Int(match (index % 3, flip) {
                    (0, _) => i64::MIN,
                    (1, true) => i64::MAX,
                    (1, false) => -1,
                    _ => 0,
                }),
                Kind::Date if flip => Field::Date(None),
                Kind::Date => Field::Date(Some(format!("{text}2026-01-31T08:00:00"))),
            })
            .collect();
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
