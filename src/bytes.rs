//! Scanning bytes on hot paths (a JSON string's, a request's header fields), and cutting
//! text on a character.

/// The largest character boundary of `text` at or below `index` (`str::floor_char_boundary`,
/// which needs a newer Rust than this crate's `rust-version`).
pub(crate) fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Whether `test` gives anything but 0 for a byte of `bytes`, tried 16 bytes at a time
/// without branches (so that it vectorizes): short strings are the usual case, and a byte
/// at a time was most of the cost of writing one.
pub(crate) fn any_byte(bytes: &[u8], test: impl Fn(u8) -> u8) -> bool {
    const LANES: usize = 16;
    let any = |chunk: &[u8; LANES]| chunk.iter().fold(0, |any, &byte| any | test(byte)) != 0;
    let (chunks, rest) = bytes.as_chunks::<LANES>();
    if rest.is_empty() {
        return chunks.iter().any(any);
    }
    // The last bytes as a chunk of their own, overlapping the chunk before, or (shorter than
    // a chunk) padded with copies of a byte of their own: a byte that is there anyway, so the
    // padding never changes the answer, whatever `test` flags.
    let mut last = [rest[0]; LANES];
    match bytes.last_chunk::<LANES>() {
        Some(chunk) => last = *chunk,
        None => last[..rest.len()].copy_from_slice(rest),
    }
    chunks.iter().any(any) || any(&last)
}

#[cfg(test)]
mod tests {
    use super::any_byte;

    #[test]
    fn every_length_and_position_is_seen_and_the_padding_flags_nothing() {
        // A test that flags spaces: padding with spaces would flag every short input.
        let flags_space = |byte: u8| u8::from(byte == b' ');
        for length in 0..40 {
            let clean = vec![b'a'; length];
            assert!(!any_byte(&clean, flags_space), "{length}");
            for at in 0..length {
                let mut dirty = clean.clone();
                dirty[at] = b' ';
                assert!(any_byte(&dirty, flags_space), "{length} at {at}");
            }
        }
    }
}
