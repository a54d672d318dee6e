//! The request body, byte for byte as QLM sends it: compact JSON, keys in QLM's order,
//! UTF-8 strings escaped no further than JSON requires.
//!
//! Written here rather than by serde_json: the keys are known in advance, and what a string
//! needs escaped is found a whole string at a time. The bytes are serde_json's (a test holds
//! the two side by side); building a body this way costs a third of what serde_json did.

use std::borrow::Borrow;

use crate::licenses::license_info::{FieldRef, LicenseInfo, LicenseRow};
use crate::licenses::schema::LICENSE_INFO;

/// What every body of one task shares: everything before `LicenseInfo`'s first field.
pub struct Envelope {
    start: Vec<u8>,
}

impl Envelope {
    pub fn new(task_name: &str, user_data: &str) -> Envelope {
        let mut start = Vec::with_capacity(64 + task_name.len() + user_data.len());
        start.extend_from_slice(b"{\"Name\":");
        push_str(&mut start, task_name);
        start.extend_from_slice(b",\"WebHookUserData\":");
        push_str(&mut start, user_data);
        start.extend_from_slice(b",\"LicenseInfo\":{");
        Envelope { start }
    }

    /// The body of the request for one license. It is built once and both signed and sent
    /// as is.
    pub fn body(&self, license_info: &LicenseInfo) -> Vec<u8> {
        self.write(
            license_info
                .fields()
                .map(|(name, value)| (name, value.as_ref())),
        )
    }

    /// [`Envelope::body`] for a license as its row holds it: the same bytes.
    pub fn body_of(&self, license: &LicenseRow) -> Vec<u8> {
        let names = LICENSE_INFO.iter().map(|(name, _)| *name);
        self.write(names.zip(&license.fields))
    }

    fn write<'a, F: Borrow<FieldRef<'a>>>(
        &self,
        fields: impl Iterator<Item = (&'static str, F)>,
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.start.len() + 1536);
        bytes.extend_from_slice(&self.start);
        for (index, (name, value)) in fields.enumerate() {
            if index > 0 {
                bytes.push(b',');
            }
            // Field names are ASCII letters: nothing to escape.
            bytes.push(b'"');
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b"\":");
            push_field(&mut bytes, value.borrow());
        }
        bytes.extend_from_slice(b"}}");
        bytes
    }
}

/// The body of the request for one license of task `task_name`.
pub fn body(task_name: &str, user_data: &str, license_info: &LicenseInfo) -> Vec<u8> {
    Envelope::new(task_name, user_data).body(license_info)
}

fn push_field(out: &mut Vec<u8>, value: &FieldRef) {
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

/// `text` as a JSON string, escaped as serde_json escapes: `"`, `\` and control characters
/// only, the usual short forms where JSON has them, else `\u00XX` in lower-case hex.
fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.push(b'"');
    // Most strings need nothing: one pass without branches finds out (it vectorizes).
    if !bytes
        .iter()
        .fold(false, |any, &byte| any | needs_escape(byte))
    {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if !needs_escape(byte) {
            continue;
        }
        out.extend_from_slice(&bytes[start..at]);
        push_escape(out, byte);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            let hex = [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]];
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&hex);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

#[cfg(test)]
mod tests;
