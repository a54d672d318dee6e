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
mod tests;
