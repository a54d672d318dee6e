//! The Standard Webhooks signature scheme: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers, an HMAC-SHA256 over `id.timestamp.body` with a `whsec_` key.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the message (delivery) id, the same on every retry.
pub const ID_HEADER: &str = "webhook-id";
/// The header carrying the signing time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header carrying the space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// The spec's suggested clock tolerance for receivers: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

const SECRET_PREFIX: &str = "whsec_";
const KEY_BYTES: usize = 32;

/// Secrets are copied by hand, so accept them with or without their `=` padding, as the
/// reference libraries do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// A decoded signing key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

/// Why a secret can't be used as a Standard Webhooks key. Never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("webhook secret is empty")]
    Empty,
    #[error("webhook secret is not valid base64 after its `whsec_` prefix")]
    PrefixedNotBase64,
    #[error(
        "webhook secret is not valid base64: a standard webhooks secret is `whsec_` then base64, \
         and one without the prefix is decoded whole"
    )]
    NotBase64,
}

impl Key {
    /// Decodes a `whsec_...` secret. A secret without the prefix is base64-decoded whole, as
    /// the reference libraries do (checked against Python's `standardwebhooks` 1.1.0), so a
    /// secret pasted without its prefix still signs the same way. A raw passphrase is rejected
    /// rather than used as bytes: a receiver using a reference library could never verify it.
    pub fn from_secret(secret: &str) -> Result<Key, KeyError> {
        let (encoded, prefixed) = match secret.strip_prefix(SECRET_PREFIX) {
            Some(rest) => (rest, true),
            None => (secret, false),
        };
        // The decode error is dropped on purpose: it quotes the offending byte of the secret.
        let bytes = LENIENT.decode(encoded).map_err(|_| match prefixed {
            true => KeyError::PrefixedNotBase64,
            false => KeyError::NotBase64,
        })?;
        if bytes.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Key(bytes))
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The HMAC state after `id.timestamp.body`, ready to finalize or to verify a tag.
fn mac(key: &Key, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(&key.0).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One `v1,<base64>` signature of `body` sent as message `id` at `timestamp`.
pub fn sign(key: &Key, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(tag))
}

/// The header value for several keys (rotation): one "v1,..." per key, space-separated.
pub fn header(keys: &[Key], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no {0} header")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp `{0}` is not a number")]
    BadTimestamp(String),
    #[error("timestamp is {age_secs} s old, outside the {tolerance_secs} s tolerance")]
    TooOld { age_secs: i64, tolerance_secs: i64 },
    #[error(
        "timestamp is {ahead_secs} s in the future, outside the {tolerance_secs} s tolerance \
         (is the sender's clock right?)"
    )]
    TooNew {
        ahead_secs: i64,
        tolerance_secs: i64,
    },
    #[error(
        "no signature matches: wrong secret, or the body was changed after signing \
         (re-serialized JSON, whitespace or key order)"
    )]
    NoMatch,
}

/// Verifies headers against body: any of the space-separated v1 signatures matching any key
/// passes, compared in constant time. Entries of other versions, or that aren't base64, are
/// skipped, so a sender can add schemes later. The timestamp must be within `tolerance_secs`
/// of `now`, both directions. An empty header counts as missing; no keys matches nothing.
pub fn verify(
    keys: &[Key],
    id: Option<&str>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let id = present(id, ID_HEADER)?;
    let timestamp = present(timestamp, TIMESTAMP_HEADER)?;
    let signature = present(signature, SIGNATURE_HEADER)?;
    let timestamp = check_timestamp(timestamp, now, tolerance_secs)?;
    let tags: Vec<Vec<u8>> = signature
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    let matches = keys.iter().any(|key| {
        let mac = mac(key, id, timestamp, body);
        tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, VerifyError> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// Parses `webhook-timestamp` and checks it against `now`, returning it for the HMAC.
fn check_timestamp(value: &str, now: i64, tolerance_secs: i64) -> Result<i64, VerifyError> {
    let timestamp: i64 = value
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(value.to_string()))?;
    let age_secs = now.saturating_sub(timestamp);
    if age_secs > tolerance_secs {
        return Err(VerifyError::TooOld {
            age_secs,
            tolerance_secs,
        });
    }
    if -age_secs > tolerance_secs {
        let ahead_secs = timestamp.saturating_sub(now);
        return Err(VerifyError::TooNew {
            ahead_secs,
            tolerance_secs,
        });
    }
    Ok(timestamp)
}

/// A fresh secret: "whsec_" + base64 of 32 random bytes from the OS.
pub fn new_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; KEY_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
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
}
