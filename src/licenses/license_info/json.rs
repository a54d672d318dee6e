//! `LicenseInfo` as the JSON object a body holds: keys in QLM's order, serde_json's bytes
//! (a test holds the two side by side), written field by field as the values are read.

use std::sync::LazyLock;

use rusqlite::types::ValueRef;

use super::FieldRef;
use super::convert::{ValueProblem, convert_ref};
use crate::json::{push_str, push_utf8};
use crate::licenses::schema::{Kind, LICENSE_INFO};

/// What goes before each field's value: `{"LicenseUpdatedOnServer":`, then `,"Name":`.
pub(super) static KEYS: LazyLock<Vec<Box<[u8]>>> = LazyLock::new(|| {
    let keys = LICENSE_INFO.iter().enumerate();
    // Field names are ASCII letters: nothing to escape.
    let key = |(index, (name, _)): (usize, &(&str, _))| {
        let opening = if index == 0 { "{" } else { "," };
        format!("{opening}\"{name}\":")
            .into_bytes()
            .into_boxed_slice()
    };
    keys.map(key).collect()
});

/// How many bytes [`key`] writes for the `index`th field.
pub(super) fn key_len(index: usize) -> usize {
    KEYS[index].len()
}

/// Writes the key of the `index`th field of [`LICENSE_INFO`] (opening the object before the
/// first).
pub(super) fn key(out: &mut Vec<u8>, index: usize) {
    out.extend_from_slice(&KEYS[index]);
}

/// Writes a field's value, after its [`key`].
pub(super) fn value(out: &mut Vec<u8>, value: &FieldRef) {
    match value {
        FieldRef::Bool(true) => out.extend_from_slice(b"true"),
        FieldRef::Bool(false) => out.extend_from_slice(b"false"),
        FieldRef::Int(number) => {
            out.extend_from_slice(itoa::Buffer::new().format(*number).as_bytes());
        }
        FieldRef::Text(text) | FieldRef::Date(Some(text)) => push_str(out, text),
        FieldRef::Date(None) => out.extend_from_slice(b"null"),
    }
}

/// Writes a stored value as its field, after its [`key`]: what [`convert_ref`] and [`value`]
/// give, the usual cases (a value of its column's type, or NULL) without the detour.
pub(super) fn stored(out: &mut Vec<u8>, stored: ValueRef, kind: Kind) -> Result<(), ValueProblem> {
    match (kind, stored) {
        (Kind::Text, ValueRef::Text(bytes)) => {
            return push_utf8(out, bytes).map_err(|_| ValueProblem::NotUtf8);
        }
        (Kind::Text, ValueRef::Null) => out.extend_from_slice(b"\"\""),
        (Kind::Date, ValueRef::Null) => out.extend_from_slice(b"null"),
        (Kind::Int, ValueRef::Integer(number)) => value(out, &FieldRef::Int(number)),
        (Kind::Bool, ValueRef::Integer(number)) => value(out, &FieldRef::Bool(number != 0)),
        _ => value(out, &convert_ref(stored, kind)?),
    }
    Ok(())
}

/// Ends the object, after its last field.
pub(super) fn close(out: &mut Vec<u8>) {
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_value_is_written_as_converting_it_writes_it() {
        let values = [
            ValueRef::Null,
            ValueRef::Integer(0),
            ValueRef::Integer(-7),
            ValueRef::Integer(i64::MAX),
            ValueRef::Real(3.0),
            ValueRef::Real(2.5),
            ValueRef::Text(b""),
            ValueRef::Text(b"42"),
            ValueRef::Text(b"true"),
            ValueRef::Text(b"trial"),
            ValueRef::Text(b"M\xc3\xbcller \"q\""),
            ValueRef::Text(b"\xff"),
            ValueRef::Text(b"2026-01-31 08:00"),
            ValueRef::Text(b"2026-02-30"),
            ValueRef::Blob(b"\x00"),
        ];
        let kinds = [Kind::Bool, Kind::Text, Kind::Int, Kind::Date, Kind::Model];
        for (stored_value, kind) in values.iter().flat_map(|v| kinds.map(|k| (*v, k))) {
            let mut converted = Vec::new();
            let expected =
                convert_ref(stored_value, kind).map(|field| value(&mut converted, &field));
            let mut written = Vec::new();
            let got = stored(&mut written, stored_value, kind);
            assert_eq!(got, expected, "{stored_value:?} as {kind:?}");
            assert_eq!(written, converted, "{stored_value:?} as {kind:?}");
        }
    }
}
