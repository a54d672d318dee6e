use sha2::{Digest, Sha256};

use super::*;
use crate::delivery::payload::Envelope;
use crate::licenses::license_info::{Field, LicenseInfo};
use crate::licenses::schema::{Kind, LICENSE_INFO};

/// Texts a packer that looked for keys or commas inside values would cut wrongly.
fn awkward_texts() -> Vec<String> {
    let ascii: String = (0u8..0x80).map(char::from).collect();
    vec![
        ascii,
        String::new(),
        "\",\"Email\":\"x".into(),
        "a\\".into(),
        "\\\"".into(),
        "}".into(),
        ",".into(),
        "Müller & Söhne \u{2028}\u{1F600} \u{7f}".into(),
        "\"quoted\" \\ back\\slash\n\r\t\u{8}\u{c}\u{1}\u{1f}".into(),
        "x".repeat(300),
    ]
}

fn info_with(text: &str, flip: bool) -> LicenseInfo {
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
    LicenseInfo::from_fields(values)
}

fn packed(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = b"before".to_vec();
    pack_body(pieces, &mut out);
    out.split_off(6)
}

#[test]
fn a_task_body_comes_back_byte_for_byte_and_is_packed() {
    for text in awkward_texts() {
        for flip in [false, true] {
            let mut info = Vec::new();
            info_with(&text, flip).write_json(&mut info);
            for (name, user_data) in [("Renewals", "crm=1"), ("", ""), (text.as_str(), "\"")] {
                let envelope = Envelope::new(name, user_data);
                let pieces = envelope.parts(&info);
                let body = pieces.concat();
                let stored = packed(&pieces);
                assert_eq!(stored[0], TAG, "{text:?} is packed");
                assert_eq!(
                    unpack_body(&stored).unwrap().as_ref(),
                    body.as_slice(),
                    "{text:?}, {flip}"
                );
            }
        }
    }
}

#[test]
fn a_usual_body_is_stored_in_well_under_half_its_bytes() {
    let mut info = Vec::new();
    info_with("Ólafur", false).write_json(&mut info);
    let envelope = Envelope::new("Renewals", "crm=1");
    let body = envelope.parts(&info).concat();
    let stored = packed(&envelope.parts(&info));
    assert!(
        stored.len() * 2 < body.len(),
        "{} bytes stored for {}",
        stored.len(),
        body.len()
    );
}

#[test]
fn any_other_body_is_stored_as_it_is() {
    let mut info = Vec::new();
    info_with("a", false).write_json(&mut info);
    let envelope = Envelope::new("t", "u");
    let [head, _, tail] = envelope.parts(&info);
    let first_key_len = KEYS[0].len();
    let mut swapped = info.clone();
    // The first value's key renamed: not this LicenseInfo.
    swapped[2] = b'X';
    let mut extra = info[..info.len() - 1].to_vec();
    extra.extend_from_slice(b",\"More\":1}");
    let unclosed = format!("{}\"abc", String::from_utf8_lossy(&KEYS[0]));
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![br#"{"event":"license.created","data":{}}"#],
        vec![head, &swapped, tail],
        vec![head, &extra, tail],
        vec![head, &info[..info.len() - 1], tail],
        vec![head, &info[..first_key_len], tail],
        vec![head, unclosed.as_bytes(), tail],
        vec![head, b"", tail],
        vec![head, &info],
        vec![],
    ];
    for pieces in cases {
        let body = pieces.concat();
        let stored = packed(&pieces);
        assert_eq!(stored, body, "{}", String::from_utf8_lossy(&body));
        assert!(matches!(unpack_body(&stored), Ok(Cow::Borrowed(same)) if same == body));
    }
}

#[test]
fn a_damaged_packed_body_is_an_error_never_other_bytes() {
    let mut info = Vec::new();
    info_with("x", false).write_json(&mut info);
    let envelope = Envelope::new("t", "u");
    let stored = packed(&envelope.parts(&info));
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
}

#[test]
fn sql_reads_the_length_of_a_body_as_it_is_sent() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE b (body BLOB)").unwrap();
    let mut info = Vec::new();
    info_with("length", true).write_json(&mut info);
    let envelope = Envelope::new("t", "u");
    let body = envelope.parts(&info).concat();
    for stored in [packed(&envelope.parts(&info)), body.clone()] {
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
        assert_eq!(length, body.len() as i64);
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
