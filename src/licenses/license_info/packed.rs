//! A task's body as the SQLite state stores it. A body is the task's envelope around a
//! `LicenseInfo` object whose keys are always [`LICENSE_INFO`]'s names in its order, and those
//! keys are more than half of its bytes: stored, they are left out, and put back when the body
//! is read, byte for byte the body that was built. A third fewer bytes per delivery to write
//! to the WAL, copy into the file at the checkpoint and read back to send.
//!
//! Packed, a body is [`TAG`], its length as [`LENGTH_DIGITS`] ASCII digits (SQL reads it
//! there: `log` shows it without unpacking), then, each as a LEB128 length and its bytes: the
//! envelope's head (up to the `LicenseInfo` object), every field's value in order, and the
//! envelope's tail (after the object). Any other body (an event's, a `LicenseInfo` whose keys
//! are not these) is stored as it is: a JSON body starts with `{`, never with [`TAG`].
//!
//! [`TAG`] stands for [`LICENSE_INFO`]'s names as they are now (a test holds them by their
//! SHA-256): a change to them needs a new tag, and the old names kept to unpack what older
//! runs stored.

use std::borrow::Cow;

use super::json::KEYS;

/// The first byte of a packed body.
const TAG: u8 = 0x01;
/// How many ASCII digits hold the unpacked length, after [`TAG`].
const LENGTH_DIGITS: usize = 8;
/// The longest body that is packed: its length fits in [`LENGTH_DIGITS`] digits.
const LONGEST: usize = 99_999_999;

/// Why a stored body cannot be read: a packed body that is cut short or altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored body is damaged ({0}); the delivery cannot be sent as it was recorded")]
pub struct Damaged(&'static str);

/// Appends the body `pieces` (end to end) to `out`: packed when they are an envelope's head, a
/// `LicenseInfo` object as [`super::LicenseRow`] writes it, and its tail; else as they are.
pub fn pack_body(pieces: &[&[u8]], out: &mut Vec<u8>) {
    let start = out.len();
    if let [head, info, tail] = pieces
        && pack(head, info, tail, out)
    {
        return;
    }
    out.truncate(start);
    for piece in pieces {
        out.extend_from_slice(piece);
    }
}

/// Appends the packed body; `false` (with `out` part written) when `info` is not a
/// `LicenseInfo` object with [`LICENSE_INFO`]'s keys in order.
fn pack(head: &[u8], info: &[u8], tail: &[u8], out: &mut Vec<u8>) -> bool {
    let length = head.len() + info.len() + tail.len();
    if length > LONGEST {
        return false;
    }
    out.push(TAG);
    let mut digits = [b'0'; LENGTH_DIGITS];
    let mut rest = length;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    push_part(out, head);
    let mut at = 0;
    for key in KEYS.iter() {
        if !info[at..].starts_with(key) {
            return false;
        }
        at += key.len();
        let Some(end) = value_end(info, at) else {
            return false;
        };
        push_part(out, &info[at..end]);
        at = end;
    }
    // What follows the last value must be the object's end and nothing else: then `info` is
    // exactly the keys and the values taken, and unpacking gives it back.
    if &info[at..] != b"}" {
        return false;
    }
    push_part(out, tail);
    true
}

/// Where the JSON value that starts at `at` ends (one past its last byte): a string at its
/// closing quote, anything else (a number, `true`, `false`, `null`) before the next `,` or `}`.
/// The caller checks that the next key (or the object's end) is there.
fn value_end(info: &[u8], at: usize) -> Option<usize> {
    let rest = info.get(at..)?;
    if rest.first() == Some(&b'"') {
        let mut escaped = false;
        for (offset, &byte) in rest.iter().enumerate().skip(1) {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => return Some(at + offset + 1),
                _ => {}
            }
        }
        return None;
    }
    rest.iter()
        .position(|&byte| byte == b',' || byte == b'}')
        .map(|offset| at + offset)
}

/// A stored body as it is sent: unpacked if it was packed, else as it is.
pub fn unpack_body(stored: &[u8]) -> Result<Cow<'_, [u8]>, Damaged> {
    if stored.first() != Some(&TAG) {
        return Ok(Cow::Borrowed(stored));
    }
    let mut reader = Reader {
        bytes: stored,
        at: 1,
    };
    let length = reader.length()?;
    let mut body = Vec::with_capacity(length);
    body.extend_from_slice(reader.part()?);
    for key in KEYS.iter() {
        body.extend_from_slice(key);
        body.extend_from_slice(reader.part()?);
    }
    body.push(b'}');
    body.extend_from_slice(reader.part()?);
    if reader.at != stored.len() {
        return Err(Damaged("bytes after its end"));
    }
    if body.len() != length {
        return Err(Damaged("not the length it says"));
    }
    Ok(Cow::Owned(body))
}

/// The SQL for the length of a stored body as it is sent, `column` being the stored bytes.
pub fn length_sql(column: &str) -> String {
    format!(
        "CASE WHEN substr({column}, 1, 1) = x'{TAG:02x}' \
         THEN CAST(substr({column}, 2, {LENGTH_DIGITS}) AS INTEGER) \
         ELSE length({column}) END"
    )
}

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    let mut length = part.len();
    loop {
        let low = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    out.extend_from_slice(part);
}

/// Reads a packed body's parts in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// The unpacked length, after the tag.
    fn length(&mut self) -> Result<usize, Damaged> {
        let digits = self
            .bytes
            .get(self.at..self.at + LENGTH_DIGITS)
            .ok_or(Damaged("cut short"))?;
        self.at += LENGTH_DIGITS;
        digits.iter().try_fold(0usize, |total, &digit| {
            digit
                .is_ascii_digit()
                .then(|| total * 10 + usize::from(digit - b'0'))
                .ok_or(Damaged("its length is not a number"))
        })
    }

    /// The next part: its LEB128 length, then its bytes.
    fn part(&mut self) -> Result<&'a [u8], Damaged> {
        let mut length = 0usize;
        for shift in (0..usize::BITS).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or(Damaged("cut short"))?;
            self.at += 1;
            length |= usize::from(byte & 0x7f)
                .checked_shl(shift)
                .ok_or(Damaged("a part's length is out of range"))?;
            if byte & 0x80 == 0 {
                let end = self.at.checked_add(length).ok_or(Damaged("cut short"))?;
                let part = self.bytes.get(self.at..end).ok_or(Damaged("cut short"))?;
                self.at = end;
                return Ok(part);
            }
        }
        Err(Damaged("a part's length is out of range"))
    }
}

#[cfg(test)]
mod tests;
