use sha2::{Digest, Sha256};

use super::*;
use crate::delivery::payload::Envelope;
use crate::licenses::license_info::{InfoBuffer, License, LicenseInfo};
use crate::licenses::schema::LICENSE_INFO;

/// The body of `info` under `envelope` as sent, and as a SQLite state stores it.
fn sent_and_stored(envelope: &Envelope, info: LicenseInfo) -> (Vec<u8>, Vec<u8>) {
    let license = License {
        id: 7,
        subscription_expiry: None,
        info,
    };
    let sent = envelope.body(&license.info);
    let mut buffer = InfoBuffer::packing(0);
    let row = license.as_row(&mut buffer);
    let info = row.packed().expect("read into a packing buffer");
    let [head, _, tail] = envelope.parts(&[]);
    let mut stored = b"before".to_vec();
    pack_body(head, info, tail, &mut stored);
    (sent, stored.split_off(6))
}

#[test]
fn a_task_body_comes_back_byte_for_byte() {
    for text in LicenseInfo::awkward_texts() {
        for flip in [false, true] {
            for (name, user_data) in [("Renewals", "crm=1"), ("", ""), (text.as_str(), "\"")] {
                let envelope = Envelope::new(name, user_data);
                let (sent, stored) = sent_and_stored(&envelope, LicenseInfo::sample(&text, flip));
                assert_eq!(stored[0], TAG, "{text:?} is packed");
                assert_eq!(
                    unpack_body(&stored).unwrap().as_ref(),
                    sent.as_slice(),
                    "{text:?}, {flip}"
                );
            }
        }
    }
}

#[test]
fn a_usual_body_is_stored_in_well_under_half_its_bytes() {
    let envelope = Envelope::new("Renewals", "crm=1");
    let (sent, stored) = sent_and_stored(&envelope, LicenseInfo::sample("Ólafur", false));
    assert!(
        stored.len() * 2 < sent.len(),
        "{} bytes stored for {}",
        stored.len(),
        sent.len()
    );
}

#[test]
fn any_other_body_is_read_as_it_is() {
    for body in [
        br#"{"event":"license.created","data":{}}"#.as_slice(),
        b"{}",
        b"",
    ] {
        assert!(matches!(unpack_body(body), Ok(Cow::Borrowed(same)) if same == body));
    }
}

#[test]
fn a_damaged_packed_body_is_an_error_never_other_bytes() {
    let envelope = Envelope::new("t", "u");
    let (_, stored) = sent_and_stored(&envelope, LicenseInfo::sample("x", false));
    for end in 1..stored.len() {
        assert!(unpack_body(&stored[..end]).is_err(), "cut at {end}");
    }
    let mut longer = stored.clone();
    longer.push(b'}');
    assert!(unpack_body(&longer).is_err());
    let mut wrong_length = stored.clone();
    wrong_length[LENGTH_DIGITS] = if stored[LENGTH_DIGITS] == b'9' {
        b'8'
    } else {
        b'9'
    };
    assert!(unpack_body(&wrong_length).is_err());
    let mut not_digits = stored.clone();
    not_digits[1] = b'x';
    assert!(unpack_body(&not_digits).is_err());
    let mut huge_part = stored[..1 + LENGTH_DIGITS].to_vec();
    huge_part.extend_from_slice(&[0xff; 12]);
    assert!(unpack_body(&huge_part).is_err());
    // A value's length one too long: the parts that follow are misread, so it ends wrong.
    let mut shifted = stored.clone();
    let head_len = usize::from(stored[1 + LENGTH_DIGITS]);
    shifted[1 + LENGTH_DIGITS + 1 + head_len] += 1;
    assert!(unpack_body(&shifted).is_err());
}

#[test]
fn sql_reads_the_length_of_a_body_as_it_is_sent() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE b (body BLOB)").unwrap();
    let envelope = Envelope::new("t", "u");
    let (sent, stored) = sent_and_stored(&envelope, LicenseInfo::sample("length", true));
    for stored in [stored, sent.clone()] {
        conn.execute("DELETE FROM b", []).unwrap();
        conn.execute("INSERT INTO b VALUES (?1)", [&stored])
            .unwrap();
        let length: i64 = conn
            .query_row(
                &format!("SELECT {} FROM b", length_sql("body")),
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(length, sent.len() as i64);
    }
}

/// Bodies packed by [`TAG`] are unpacked with [`LICENSE_INFO`]'s names as they are now. If
/// this fails, the names changed: what earlier runs stored needs the old names to be read. Add
/// a tag for the new names, keep the old ones for the old tag, then update this hash.
#[test]
fn the_tag_stands_for_these_field_names() {
    let names: Vec<&str> = LICENSE_INFO.iter().map(|(name, _)| *name).collect();
    let digest = hex::encode(Sha256::digest(names.join(",").as_bytes()));
    assert_eq!(
        digest, "2766400ef7818f653e8e653cdbcda0333e7aae915bf8daa258053d3960d547d4",
        "LICENSE_INFO's names changed: stored bodies need a new tag (see this test)"
    );
}

#[test]
fn a_length_a_packed_body_cannot_have_is_refused_before_anything_is_allocated() {
    // Ten digits could ask for 10 GB: refused, not allocated (an allocation that fails
    // aborts the process).
    let mut stored = vec![TAG];
    stored.extend_from_slice(b"9999999999");
    stored.push(0);
    assert_eq!(
        unpack_body(&stored),
        Err(Damaged("a length it cannot have"))
    );
    // A part's length over five bytes: no part is that long.
    let envelope = Envelope::new("t", "u");
    let (_, good) = sent_and_stored(&envelope, LicenseInfo::sample("x", false));
    let mut long_part = good[..1 + LENGTH_DIGITS].to_vec();
    long_part.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert!(unpack_body(&long_part).is_err());
}

#[test]
fn values_of_every_length_prefix_come_back() {
    // 127 and 128 bytes (one and two bytes of length), 16,383 and 16,384 (two and three),
    // and 3 MB.
    for length in [127, 128, 16_383, 16_384, 3_000_000] {
        let envelope = Envelope::new("t", &"u".repeat(length));
        let (sent, stored) =
            sent_and_stored(&envelope, LicenseInfo::sample(&"v".repeat(length), true));
        assert_eq!(
            unpack_body(&stored).unwrap().as_ref(),
            sent.as_slice(),
            "{length}"
        );
    }
}
