//! JSON text as serde_json writes it, compactly: strings escaped no further than JSON
//! requires. Bodies are written with it rather than by serde_json, byte for byte the same.

use crate::bytes::any_byte;

/// `text` as a JSON string, escaped as serde_json escapes: `"`, `\` and control characters
/// only, the usual short forms where JSON has them, else `\u00XX` in lower-case hex.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.push(b'"');
    // Most strings need nothing: one pass finds out.
    if !any_byte(bytes, |byte| u8::from(needs_escape(byte))) {
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

/// Stored text as a JSON string, as [`push_str`] writes it, if it is UTF-8 (else nothing is
/// written). ASCII with nothing to escape, the usual text, is told in one pass that also
/// stands for the UTF-8 check.
pub fn push_utf8(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), std::str::Utf8Error> {
    if !any_byte(bytes, |byte| (byte & 0x80) | u8::from(needs_escape(byte))) {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return Ok(());
    }
    push_str(out, std::str::from_utf8(bytes)?);
    Ok(())
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
mod tests {
    use super::*;

    /// Texts of every length around the 16-byte chunks, with one awkward character (or none)
    /// at every place.
    fn texts() -> Vec<String> {
        let mut texts = Vec::new();
        for length in 0..40 {
            let plain = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..length].to_string();
            texts.push(plain.clone());
            for at in 0..length {
                for awkward in ['"', '\\', '\u{1f}', '\n', '\u{7f}', 'é', '\u{2028}'] {
                    let mut text = plain.clone();
                    text.replace_range(at..=at, &awkward.to_string());
                    texts.push(text);
                }
            }
        }
        texts
    }

    #[test]
    fn strings_are_serde_jsons_byte_for_byte() {
        for text in texts() {
            let serde = serde_json::to_vec(&text).unwrap();
            let mut written = Vec::new();
            push_str(&mut written, &text);
            assert_eq!(written, serde, "{text:?}");
            let mut stored = Vec::new();
            push_utf8(&mut stored, text.as_bytes()).unwrap();
            assert_eq!(stored, serde, "{text:?}");
        }
    }

    #[test]
    fn stored_text_that_is_not_utf8_writes_nothing() {
        for text in texts() {
            for at in 0..=text.len() {
                let mut bytes = text.clone().into_bytes();
                bytes.insert(at, 0xff);
                let mut out = b"[".to_vec();
                assert!(push_utf8(&mut out, &bytes).is_err(), "{bytes:?}");
                assert_eq!(out, b"[");
            }
        }
    }
}
