use super::*;

/// (secret, id, timestamp, body, signature) from the Standard Webhooks spec and its
/// reference libraries' tests.
const SPEC_VECTORS: [(&str, &str, i64, &str, &str); 2] = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        r#"{"test": 2432232314}"#,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        1649367553,
        r#"{"email":"test@example.com","username":"test_user"}"#,
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
];

fn key(secret: &str) -> Key {
    Key::from_secret(secret).expect("test secret decodes")
}

#[test]
fn signs_the_spec_vectors() {
    for (secret, id, timestamp, body, expected) in SPEC_VECTORS {
        assert_eq!(sign(&key(secret), id, timestamp, body.as_bytes()), expected);
        let unprefixed = secret.strip_prefix("whsec_").unwrap();
        assert_eq!(
            sign(&key(unprefixed), id, timestamp, body.as_bytes()),
            expected,
            "a secret without `whsec_` is decoded whole"
        );
    }
}

#[test]
fn verifies_the_spec_vectors() {
    for (secret, id, timestamp, body, signature) in SPEC_VECTORS {
        let result = verify(
            &[key(secret)],
            Some(id),
            Some(&timestamp.to_string()),
            Some(signature),
            body.as_bytes(),
            timestamp,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(result, Ok(()), "{id}");
    }
}

#[test]
fn secrets_decode_or_fail_without_showing_themselves() {
    let table: [(&str, Result<usize, KeyError>); 7] = [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", Ok(24)),
        // 32 bytes: with and without the trailing `=`.
        ("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", Ok(32)),
        ("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", Ok(32)),
        ("whsec_", Err(KeyError::Empty)),
        ("", Err(KeyError::Empty)),
        ("whsec_not base64!", Err(KeyError::PrefixedNotBase64)),
        ("hunter2-passphrase!", Err(KeyError::NotBase64)),
    ];
    for (secret, expected) in table {
        let result = Key::from_secret(secret).map(|key| key.0.len());
        assert_eq!(result, expected, "{secret:?}");
        if let Err(error) = result {
            let message = error.to_string();
            assert!(secret.is_empty() || !message.contains(secret), "{message}");
        }
    }
}

#[test]
fn key_debug_does_not_leak() {
    let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let debug = format!("{key:?}");
    assert_eq!(debug, "Key(<redacted>)");
    assert!(!debug.contains("MfKQ"));
}

#[test]
fn rotation_header_verifies_with_either_key() {
    let (old, new) = (key(SPEC_VECTORS[0].0), key(SPEC_VECTORS[1].0));
    let value = header(&[old.clone(), new.clone()], "msg_1", 1_700_000_000, b"{}");
    assert_eq!(value.split(' ').count(), 2);
    assert!(value.split(' ').all(|entry| entry.starts_with("v1,")));
    for keys in [vec![old], vec![new]] {
        let result = verify(
            &keys,
            Some("msg_1"),
            Some("1700000000"),
            Some(&value),
            b"{}",
            1_700_000_000,
            DEFAULT_TOLERANCE_SECS,
        );
        assert_eq!(result, Ok(()));
    }
}

/// A received request: the first spec vector, as sent.
struct Request {
    id: Option<&'static str>,
    timestamp: Option<String>,
    signature: Option<String>,
    body: &'static str,
    now: i64,
}

impl Request {
    fn spec() -> Request {
        let (_, id, timestamp, body, signature) = SPEC_VECTORS[0];
        Request {
            id: Some(id),
            timestamp: Some(timestamp.to_string()),
            signature: Some(signature.to_string()),
            body,
            now: timestamp,
        }
    }

    fn verify(&self) -> Result<(), VerifyError> {
        let keys = [key(SPEC_VECTORS[0].0)];
        let (timestamp, signature) = (self.timestamp.as_deref(), self.signature.as_deref());
        let body = self.body.as_bytes();
        verify(&keys, self.id, timestamp, signature, body, self.now, 300)
    }
}

type Change = fn(&mut Request);

/// The spec vector verified with one thing changed at a time.
#[test]
fn verification_outcomes() {
    let table: [(&str, Change, Result<(), VerifyError>); 17] = [
        ("as sent", |_| {}, Ok(())),
        ("300 s old", |r| r.now += 300, Ok(())),
        ("300 s ahead", |r| r.now -= 300, Ok(())),
        (
            "unknown v2 entry before a valid v1",
            |r| prepend(r, "v2,c29tZSBmdXR1cmUgc2NoZW1l"),
            Ok(()),
        ),
        (
            "v1 entry that is not base64",
            |r| prepend(r, "v1,!!"),
            Ok(()),
        ),
        (
            "no id",
            |r| r.id = None,
            Err(VerifyError::MissingHeader(ID_HEADER)),
        ),
        (
            "blank id",
            |r| r.id = Some(" "),
            Err(VerifyError::MissingHeader(ID_HEADER)),
        ),
        (
            "no timestamp",
            |r| r.timestamp = None,
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER)),
        ),
        (
            "no signature",
            |r| r.signature = None,
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER)),
        ),
        (
            "timestamp not a number",
            |r| r.timestamp = Some("abc".into()),
            Err(VerifyError::BadTimestamp("abc".into())),
        ),
        (
            "612 s old",
            |r| r.now += 612,
            Err(VerifyError::TooOld {
                age_secs: 612,
                tolerance_secs: 300,
            }),
        ),
        (
            "612 s ahead",
            |r| r.now -= 612,
            Err(VerifyError::TooNew {
                ahead_secs: 612,
                tolerance_secs: 300,
            }),
        ),
        (
            "body re-serialized",
            |r| r.body = r#"{"test":2432232314}"#,
            Err(VerifyError::NoMatch),
        ),
        (
            "other id",
            |r| r.id = Some("msg_other"),
            Err(VerifyError::NoMatch),
        ),
        (
            "timestamp changed",
            |r| r.timestamp = Some("1614265331".into()),
            Err(VerifyError::NoMatch),
        ),
        (
            "signed with another key",
            |r| r.signature = Some(SPEC_VECTORS[1].4.into()),
            Err(VerifyError::NoMatch),
        ),
        (
            "right bytes under v2",
            |r| r.signature = r.signature.as_ref().map(|s| s.replace("v1,", "v2,")),
            Err(VerifyError::NoMatch),
        ),
    ];
    for (what, change, expected) in table {
        let mut request = Request::spec();
        change(&mut request);
        assert_eq!(request.verify(), expected, "{what}");
    }
}

fn prepend(request: &mut Request, entry: &str) {
    let signature = request.signature.take().unwrap_or_default();
    request.signature = Some(format!("{entry} {signature}"));
}

#[test]
fn error_messages_are_specific() {
    let table = [
        (
            VerifyError::MissingHeader(SIGNATURE_HEADER),
            "no webhook-signature header",
        ),
        (
            VerifyError::BadTimestamp("abc".into()),
            "webhook-timestamp `abc` is not a number",
        ),
        (
            VerifyError::TooOld {
                age_secs: 612,
                tolerance_secs: 300,
            },
            "timestamp is 612 s old, outside the 300 s tolerance",
        ),
        (
            VerifyError::TooNew {
                ahead_secs: 612,
                tolerance_secs: 300,
            },
            "timestamp is 612 s in the future, outside the 300 s tolerance (is the sender's clock right?)",
        ),
    ];
    for (error, expected) in table {
        assert_eq!(error.to_string(), expected);
    }
    assert!(
        VerifyError::NoMatch
            .to_string()
            .starts_with("no signature matches: wrong secret")
    );
}

#[test]
fn new_secrets_round_trip_and_differ() {
    let first = new_secret().expect("the OS gives randomness");
    let second = new_secret().expect("the OS gives randomness");
    assert_ne!(first, second);
    assert!(first.starts_with("whsec_"));
    assert_eq!(key(&first).0.len(), 32);
    let key = key(&second);
    let signature = sign(&key, "msg_1", 10, b"body");
    let result = verify(
        &[key],
        Some("msg_1"),
        Some("10"),
        Some(&signature),
        b"body",
        10,
        0,
    );
    assert_eq!(result, Ok(()));
}
