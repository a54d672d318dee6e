//! `LicenseInfo` as the JSON object a body holds: keys in QLM's order, serde_json's bytes
//! (a test holds the two side by side), written field by field as the values are read.

use std::sync::LazyLock;

use super::FieldRef;
use crate::json::push_str;
use crate::licenses::schema::LICENSE_INFO;

/// What goes before each field's value: `{"LicenseUpdatedOnServer":`, then `,"Name":`.
static KEYS: LazyLock<Vec<Box<[u8]>>> = LazyLock::new(|| {
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

/// Ends the object, after its last field.
pub(super) fn close(out: &mut Vec<u8>) {
    out.push(b'}');
}
