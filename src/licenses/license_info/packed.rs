//! A task's body as the SQLite state stores it. A body is the task's envelope around a
//! `LicenseInfo` object whose keys are always [`LICENSE_INFO`]'s names in its order, and those
//! keys are more than half of its bytes: stored, they are left out, and put back when the body
//! is read, byte for byte the body that was built. A third fewer bytes per delivery to write
//! to the WAL, copy into the file at the checkpoint and read back to send.
//!
//! Packed, a body is [`TAG`], its length as [`LENGTH_DIGITS`] ASCII digits (SQL reads it
//! there: `log` shows it without unpacking), then, each as a LEB128 length and its bytes: the
//! envelope's head (up to the `LicenseInfo` object), every field's value in order, and the
//! envelope's tail (after the object). The row's reader writes the values so as it reads them
//! ([`super::InfoBuffer::packing`]): each after its length where its key would go. Any other
//! body (an event's) is stored as it is: a JSON body starts with `{`, never with [`TAG`].
//!
//! [`TAG`] stands for [`LICENSE_INFO`]'s names as they are now (a test holds them by their
//! SHA-256): a change to them needs a new tag, and the old names kept to unpack what older
//! runs stored.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use super::json::KEYS;

/// The first byte of a packed body.
const TAG: u8 = 0x01;
/// How many ASCII digits hold the unpacked length, after [`TAG`]: more than any body SQLite
/// can hold (a blob is at most 2^31 - 1 bytes).
const LENGTH_DIGITS: usize = 10;

/// Why a stored body cannot be read: a packed body that is cut short or altered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored body is damaged ({0}); the delivery cannot be sent as it was recorded")]
pub struct Damaged(&'static str);

/// A `LicenseInfo` object as a packed body holds it: its values (each a LEB128 length and its
/// bytes, in [`LICENSE_INFO`]'s order, as [`super::LicenseRow::packed`] gives them) and its
/// length as JSON.
#[derive(Debug, Clone, Copy)]
pub struct PackedInfo<'a> {
    pub values: &'a [u8],
    pub json_len: usize,
}

/// Puts the length of the value written after `info[mark]` (a byte left for it) in its
/// place, as LEB128 (moving the value for the bytes a length of 128 or more takes), and
/// returns the value's length.
pub(super) fn mark_length(info: &mut Vec<u8>, mark: usize) -> usize {
    let length = info.len() - mark - 1;
    match u8::try_from(length) {
        Ok(short @ 0..0x80) => info[mark] = short,
        _ => {
            let mut prefix = Vec::with_capacity(5);
            push_length(&mut prefix, length);
            info.splice(mark..mark + 1, prefix);
        }
    }
    length
}

/// Appends a packed body to `out`: the envelope's `head`, the `LicenseInfo` object `info`,
/// the envelope's `tail`.
pub fn pack_body(head: &[u8], info: PackedInfo, tail: &[u8], out: &mut Vec<u8>) {
    let length = head.len() + info.json_len + tail.len();
    out.push(TAG);
    let mut digits = [b'0'; LENGTH_DIGITS];
    let mut rest = length;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    debug_assert_eq!(rest, 0, "a body of {length} bytes");
    out.extend_from_slice(&digits);
    push_part(out, head);
    out.extend_from_slice(info.values);
    push_part(out, tail);
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
    let keys = &*PADDED_KEYS;
    // Unpacking adds the keys and the object's `}` and nothing else: a length beyond that is
    // damage, and must not be allocated on its word (ten digits could ask for 10 GB).
    if length > stored.len() + keys.total + 1 {
        return Err(Damaged("a length it cannot have"));
    }
    // Room for a last short copy's overshoot (see `append`).
    let mut body = Vec::with_capacity(length + CHUNK);
    let head = reader.part()?;
    append(&mut body, stored, head);
    for (padded, key_len) in &keys.padded {
        body.extend_from_slice(padded);
        body.truncate(body.len() - (CHUNK - key_len));
        let value = reader.part()?;
        append(&mut body, stored, value);
    }
    body.push(b'}');
    let tail = reader.part()?;
    append(&mut body, stored, tail);
    if reader.at != stored.len() {
        return Err(Damaged("bytes after its end"));
    }
    if body.len() != length {
        return Err(Damaged("not the length it says"));
    }
    Ok(Cow::Owned(body))
}

/// How many bytes [`append`] copies at once: most parts (and every key) are shorter.
const CHUNK: usize = 32;

/// [`KEYS`], each padded to [`CHUNK`] bytes, with its length; and their total length.
struct PaddedKeys {
    padded: Vec<([u8; CHUNK], usize)>,
    total: usize,
}

static PADDED_KEYS: LazyLock<PaddedKeys> = LazyLock::new(|| {
    let padded = KEYS
        .iter()
        .map(|key| {
            let mut padded = [0; CHUNK];
            padded[..key.len()].copy_from_slice(key);
            (padded, key.len())
        })
        .collect();
    PaddedKeys {
        padded,
        total: KEYS.iter().map(|key| key.len()).sum(),
    }
});

/// Appends `source[part]` to `out`. A part of up to [`CHUNK`] bytes is copied as [`CHUNK`]
/// bytes and cut back: a copy of a known size is a few moves, one of any size a call to
/// `memcpy`, which was most of the cost of unpacking a body's ~80 short pieces.
#[inline]
fn append(out: &mut Vec<u8>, source: &[u8], part: Range<usize>) {
    let len = part.len();
    match source[part.start..].first_chunk::<CHUNK>() {
        Some(chunk) if len <= CHUNK => {
            out.extend_from_slice(chunk);
            out.truncate(out.len() - (CHUNK - len));
        }
        _ => out.extend_from_slice(&source[part]),
    }
}

/// The SQL for the length of a stored body as it is sent, `column` being the stored bytes.
pub fn length_sql(column: &str) -> String {
    format!(
        "CASE WHEN substr({column}, 1, 1) = x'{TAG:02x}' \
         THEN CAST(substr({column}, 2, {LENGTH_DIGITS}) AS INTEGER) \
         ELSE length({column}) END"
    )
}

/// Appends `part` with its length before it.
fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    push_length(out, part.len());
    out.extend_from_slice(part);
}

/// Appends `length` as LEB128: one byte below 128, as most values are.
#[inline]
fn push_length(out: &mut Vec<u8>, mut length: usize) {
    loop {
        let low = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
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
        let length = digits.iter().try_fold(0u64, |total, &digit| {
            digit
                .is_ascii_digit()
                .then(|| total * 10 + u64::from(digit - b'0'))
                .ok_or(Damaged("its length is not a number"))
        })?;
        usize::try_from(length).map_err(|_| Damaged("a length it cannot have"))
    }

    /// Where the next part is: its LEB128 length, then its bytes.
    #[inline]
    fn part(&mut self) -> Result<Range<usize>, Damaged> {
        // Most values are shorter than 128 bytes: their length is one byte.
        if let Some(&length) = self.bytes.get(self.at)
            && length < 0x80
        {
            let start = self.at + 1;
            let end = start + usize::from(length);
            if end > self.bytes.len() {
                return Err(Damaged("cut short"));
            }
            self.at = end;
            return Ok(start..end);
        }
        // At most five bytes: a part is shorter than a blob (2^31 bytes).
        let mut length = 0usize;
        for shift in (0..35).step_by(7) {
            let byte = *self.bytes.get(self.at).ok_or(Damaged("cut short"))?;
            self.at += 1;
            length |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let start = self.at;
                let end = start.checked_add(length).ok_or(Damaged("cut short"))?;
                if end > self.bytes.len() {
                    return Err(Damaged("cut short"));
                }
                self.at = end;
                return Ok(start..end);
            }
        }
        Err(Damaged("a part's length is out of range"))
    }
}

#[cfg(test)]
mod tests;
