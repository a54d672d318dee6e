//! How one stored value becomes a `LicenseInfo` field: QLM's types, the NULL rules, dates
//! in one form, license models by number; for a SQLite row, a PostgreSQL row and an event's
//! snapshot alike.

use std::borrow::Cow;

use rusqlite::types::ValueRef;

use super::Field;
use crate::licenses::macros::DATE_FORMAT;
use crate::licenses::schema::{Kind, LICENSE_MODELS};
use crate::schedule::clock;

/// Why a value cannot be sent as its field; worded to follow `column <name>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueProblem {
    #[error("holds `{0}`, which is not a number")]
    NotANumber(String),
    #[error("holds a blob, not a number")]
    BlobForNumber,
    #[error("holds text that is not UTF-8")]
    NotUtf8,
    #[error("holds a blob, not text")]
    BlobForText,
    #[error("holds {0}, which is not a whole number in range")]
    NotWhole(f64),
    #[error("holds `{0}`, which is not a date that exists")]
    NoSuchDate(String),
    #[error(
        "holds `{0}`, which is not a QLM license model ({models})",
        models = LICENSE_MODELS.join(", ")
    )]
    NotAModel(String),
}

/// How many characters of a value a problem quotes.
const SHOWN_CHARS: usize = 100;

/// A stored value as a problem quotes it: on a terminal, in cron's mail and in the state's log
/// of bad rows, so its control characters escaped (`\u{1b}[2J` would clear the screen) and its
/// length bounded.
fn shown(value: &str) -> String {
    crate::commands::printable::line(value, SHOWN_CHARS)
}

/// Why a column gave no field: its value could not be read (`E`, the source's own error), or
/// was read but cannot be sent as its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldError<E> {
    #[error(transparent)]
    Read(E),
    #[error(transparent)]
    Value(ValueProblem),
}

/// The fields of `table`, in its order, from `value(offset, column)`: one mapping (types,
/// NULL rules, dates, license models) for a SQLite row and an event's JSON snapshot alike.
/// An error names the column and what is wrong with its value.
pub fn read_fields<'a, E>(
    table: &[(&'static str, Kind)],
    mut value: impl FnMut(usize, &'static str) -> Result<ValueRef<'a>, E>,
) -> Result<Vec<Field>, (&'static str, FieldError<E>)> {
    let mut values = Vec::with_capacity(table.len());
    for (offset, (column, kind)) in table.iter().enumerate() {
        let field = value(offset, column)
            .map_err(FieldError::Read)
            .and_then(|value| convert(value, *kind).map_err(FieldError::Value))
            .map_err(|problem| (*column, problem))?;
        values.push(field);
    }
    Ok(values)
}

/// One `LicenseInfo` value as read, borrowing the stored text where it is sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldRef<'a> {
    Bool(bool),
    Text(Cow<'a, str>),
    Int(i64),
    Date(Option<Cow<'a, str>>),
}

impl FieldRef<'_> {
    pub fn into_owned(self) -> Field {
        match self {
            FieldRef::Bool(flag) => Field::Bool(flag),
            FieldRef::Text(text) => Field::Text(text.into_owned()),
            FieldRef::Int(number) => Field::Int(number),
            FieldRef::Date(date) => Field::Date(date.map(Cow::into_owned)),
        }
    }
}

pub(super) fn convert(value: ValueRef, kind: Kind) -> Result<Field, ValueProblem> {
    convert_ref(value, kind).map(FieldRef::into_owned)
}

/// [`convert`] without copying text that goes out as it is stored.
pub(super) fn convert_ref(value: ValueRef<'_>, kind: Kind) -> Result<FieldRef<'_>, ValueProblem> {
    Ok(match kind {
        Kind::Bool => FieldRef::Bool(integer(value)? != 0),
        Kind::Int => FieldRef::Int(integer(value)?),
        Kind::Text => FieldRef::Text(text(value)?.unwrap_or_default()),
        Kind::Date => FieldRef::Date(text(value)?.map(normalize_cow).transpose()?),
        Kind::Model => FieldRef::Int(model(value)?),
    })
}

fn integer(value: ValueRef) -> Result<i64, ValueProblem> {
    match value {
        ValueRef::Null => Ok(0),
        ValueRef::Integer(number) => Ok(number),
        ValueRef::Real(number) => whole(number),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            match text.trim() {
                "true" | "True" => Ok(1),
                "false" | "False" => Ok(0),
                other => other
                    .parse()
                    .map_err(|_| ValueProblem::NotANumber(shown(&text))),
            }
        }
        ValueRef::Blob(_) => Err(ValueProblem::BlobForNumber),
    }
}

fn text(value: ValueRef<'_>) -> Result<Option<Cow<'_, str>>, ValueProblem> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(|text| Some(Cow::Borrowed(text)))
            .map_err(|_| ValueProblem::NotUtf8),
        ValueRef::Integer(number) => Ok(Some(Cow::Owned(number.to_string()))),
        ValueRef::Real(number) => Ok(Some(Cow::Owned(number.to_string()))),
        ValueRef::Blob(_) => Err(ValueProblem::BlobForText),
    }
}

/// A real number stored in an integer column, if it is a whole number in range.
fn whole(number: f64) -> Result<i64, ValueProblem> {
    // i64::MAX is not exactly representable; 2^63 is the first real out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if number.fract() == 0.0 && (-LIMIT..LIMIT).contains(&number) {
        Ok(number as i64)
    } else {
        Err(ValueProblem::NotWhole(number))
    }
}

/// [`normalize_date`] for text that may or may not be borrowed.
fn normalize_cow(stored: Cow<'_, str>) -> Result<Cow<'_, str>, ValueProblem> {
    match stored {
        Cow::Borrowed(stored) => normalize_date(stored),
        Cow::Owned(stored) => normalize_date(&stored).map(|date| Cow::Owned(date.into_owned())),
    }
}

/// Dates go out as `YYYY-MM-DDTHH:MM:SS`; a stored `2026-01-31 08:00` or `2026-01-31` is
/// rewritten to that, and text that is no date at all is sent as it is. A date that cannot
/// exist (`2026-02-30`, `2026-01-31T25:00`) is an error: sending it would mislead.
fn normalize_date(stored: &str) -> Result<Cow<'_, str>, ValueProblem> {
    let trimmed = stored.trim();
    if is_canonical_date(trimmed) {
        // Already `YYYY-MM-DDTHH:MM:SS` and a real moment: what formatting it would give back.
        return Ok(Cow::Borrowed(trimmed));
    }
    match clock::parse_wall_clock(trimmed) {
        Some(date) => Ok(Cow::Owned(date.format(DATE_FORMAT).to_string())),
        None if impossible_date(trimmed) => Err(ValueProblem::NoSuchDate(shown(stored))),
        None => Ok(Cow::Borrowed(stored)),
    }
}

/// Whether `text` is exactly `YYYY-MM-DDTHH:MM:SS` and names a day and a time that exist: the
/// form dates go out in, which most databases store (parsing and formatting it again, as
/// other forms are, was a quarter of the cost of reading a license).
fn is_canonical_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 19 {
        return false;
    }
    let number = |range: std::ops::Range<usize>| {
        bytes[range].iter().try_fold(0u32, |total, byte| {
            byte.is_ascii_digit()
                .then(|| total * 10 + u32::from(byte - b'0'))
        })
    };
    let separators = bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':';
    let parts = (
        number(0..4),
        number(5..7),
        number(8..10),
        number(11..13),
        number(14..16),
        number(17..19),
    );
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) = parts else {
        return false;
    };
    separators
        && chrono::NaiveDate::from_ymd_opt(year as i32, month, day).is_some()
        && chrono::NaiveTime::from_hms_opt(hour, minute, second).is_some()
}

/// Whether `text` is shaped like `YYYY-MM-DD[THH:MM...]` but names no real day or time.
fn impossible_date(text: &str) -> bool {
    let digits = |part: Option<&str>| part.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let bytes = text.as_bytes();
    let shaped = bytes.len() >= 10
        && digits(text.get(..4))
        && digits(text.get(5..7))
        && digits(text.get(8..10))
        && bytes[4] == b'-'
        && bytes[7] == b'-';
    if !shaped {
        return false;
    }
    if chrono::NaiveDate::parse_from_str(&text[..10], "%Y-%m-%d").is_err() {
        return true;
    }
    let timed = matches!(bytes.get(10), Some(b'T' | b' '))
        && digits(text.get(11..13))
        && digits(text.get(14..16))
        && bytes.get(13) == Some(&b':');
    timed && chrono::NaiveTime::parse_from_str(&text[11..16], "%H:%M").is_err()
}

/// QLM stores the model's name and sends its number (`trial` is 2).
fn model(value: ValueRef) -> Result<i64, ValueProblem> {
    match text(value)? {
        None => Ok(0),
        Some(name) => {
            let trimmed = name.trim();
            match LICENSE_MODELS
                .iter()
                .position(|model| model.eq_ignore_ascii_case(trimmed))
            {
                Some(index) => Ok(index as i64),
                None => trimmed
                    .parse()
                    .map_err(|_| ValueProblem::NotAModel(shown(&name))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `normalize_date` without the shortcut.
    fn normalize_slowly(text: &str) -> Option<String> {
        match clock::parse_wall_clock(text) {
            Some(date) => Some(date.format(DATE_FORMAT).to_string()),
            None if impossible_date(text) => None,
            None => Some(text.to_string()),
        }
    }

    #[test]
    fn the_canonical_date_shortcut_agrees_with_parsing_and_formatting() {
        let table = [
            "2026-01-31T08:00:00",
            "0999-12-31T23:59:59",
            "2024-02-29T00:00:00",
            "2026-02-29T00:00:00",
            "2026-02-30T10:00:00",
            "2026-01-31T24:00:00",
            "2026-01-31T23:60:00",
            "2026-01-31T23:59:60",
            "2026-13-01T00:00:00",
            "2026-00-10T00:00:00",
            "2026-01-31 08:00:00",
            "2026-01-31T08:00:0x",
            "+026-01-31T08:00:00",
            "2026-01-31T08:00:00.5",
        ];
        for text in table {
            let slow = clock::parse_wall_clock(text)
                .map(|date| date.format(DATE_FORMAT).to_string())
                .filter(|formatted| formatted == text);
            // The shortcut is taken only where parsing and formatting give the text back (a
            // leap second, `:60`, is left to them).
            if is_canonical_date(text) {
                assert!(slow.is_some(), "{text}");
            }
            assert_eq!(
                normalize_date(text).ok().map(Cow::into_owned),
                normalize_slowly(text),
                "{text}"
            );
        }
        assert!(
            [
                "2026-01-31T08:00:00",
                "0999-12-31T23:59:59",
                "2024-02-29T00:00:00"
            ]
            .iter()
            .all(|text| is_canonical_date(text))
        );
    }

    #[test]
    fn conversions_table() {
        let cases: [(ValueRef, Kind, Result<Field, ()>); 21] = [
            (ValueRef::Null, Kind::Text, Ok(Field::Text(String::new()))),
            (ValueRef::Null, Kind::Int, Ok(Field::Int(0))),
            (ValueRef::Null, Kind::Bool, Ok(Field::Bool(false))),
            (ValueRef::Null, Kind::Date, Ok(Field::Date(None))),
            (ValueRef::Integer(1), Kind::Bool, Ok(Field::Bool(true))),
            (ValueRef::Text(b"42"), Kind::Int, Ok(Field::Int(42))),
            (ValueRef::Text(b"x"), Kind::Int, Err(())),
            (
                ValueRef::Integer(7),
                Kind::Text,
                Ok(Field::Text("7".into())),
            ),
            (
                ValueRef::Text(b"2026-01-31 08:00"),
                Kind::Date,
                Ok(Field::Date(Some("2026-01-31T08:00:00".into()))),
            ),
            (
                ValueRef::Text(b"2026-01-31"),
                Kind::Date,
                Ok(Field::Date(Some("2026-01-31T00:00:00".into()))),
            ),
            (
                ValueRef::Text(b"someday"),
                Kind::Date,
                Ok(Field::Date(Some("someday".into()))),
            ),
            (ValueRef::Text(b"trial"), Kind::Model, Ok(Field::Int(2))),
            (
                ValueRef::Text(b"Subscription_Cloud"),
                Kind::Model,
                Ok(Field::Int(9)),
            ),
            (ValueRef::Text(b"lifetime"), Kind::Model, Err(())),
            (ValueRef::Text(b"2026-02-30"), Kind::Date, Err(())),
            (ValueRef::Text(b"2026-01-31T25:00:00"), Kind::Date, Err(())),
            (ValueRef::Text(b"\xff2026"), Kind::Date, Err(())),
            (ValueRef::Blob(b"\x00"), Kind::Int, Err(())),
            (ValueRef::Real(2.5), Kind::Int, Err(())),
            (ValueRef::Real(1e300), Kind::Int, Err(())),
            (ValueRef::Real(3.0), Kind::Int, Ok(Field::Int(3))),
        ];
        for (value, kind, expected) in cases {
            let got = convert(value, kind).map_err(|_| ());
            assert_eq!(got, expected, "{value:?} as {kind:?}");
        }
    }
}
