//! Request signatures. QLM's `X-QLM-Signature` is the lowercase hex SHA-256 of the body bytes
//! followed by the secret's UTF-8 bytes (a plain hash, not an HMAC: QLM's scheme, kept as is).
//! The Standard Webhooks scheme lives in [`super::standard`]; a [`Signer`] sends either or both.

use sha2::{Digest, Sha256};

use super::standard;
use crate::schedule::clock;
use crate::secret::Secret;

/// A signature scheme a webhook can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `X-QLM-Signature`, what QLM's receivers check.
    Qlm,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (Standard Webhooks).
    Standard,
}

/// Why a signer could not be built. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error("no secret")]
    NoSecret,
    /// `previous`: a secret after the current one, still in its rotation window.
    #[error("{} is not a Standard Webhooks key: {error}", which_secret(.previous))]
    NotAKey {
        previous: bool,
        error: standard::KeyError,
    },
}

fn which_secret(previous: &bool) -> &'static str {
    if *previous {
        "a previous secret"
    } else {
        "the secret"
    }
}

/// Signs each request with the webhook's schemes and secrets.
pub struct Signer {
    /// The current secret, for `X-QLM-Signature` (one value: QLM has no rotation).
    qlm: Option<Secret>,
    /// The current key first, then previous ones still in their rotation window.
    standard: Vec<standard::Key>,
}

impl Signer {
    /// A signer for `schemes`; `secrets` holds the current secret first, then previous ones.
    pub fn new(schemes: &[Scheme], secrets: &[Secret]) -> Result<Signer, SignerError> {
        let current = secrets.first().ok_or(SignerError::NoSecret)?;
        let qlm = schemes.contains(&Scheme::Qlm).then(|| current.clone());
        let standard = match schemes.contains(&Scheme::Standard) {
            true => secrets
                .iter()
                .enumerate()
                .map(|(index, secret)| {
                    standard::Key::from_secret(secret.expose()).map_err(|error| {
                        SignerError::NotAKey {
                            previous: index > 0,
                            error,
                        }
                    })
                })
                .collect::<Result<_, _>>()?,
            false => Vec::new(),
        };
        Ok(Signer { qlm, standard })
    }

    /// The signature headers for one attempt. The Standard Webhooks timestamp is the real time
    /// of sending, fresh on every attempt (never `--now`), since receivers reject stale ones.
    pub fn headers(&self, delivery_id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let mut headers = Vec::with_capacity(4);
        if let Some(secret) = &self.qlm {
            headers.push((QLM_HEADER, qlm(body, secret)));
        }
        if !self.standard.is_empty() {
            let timestamp = clock::real_now().timestamp();
            let signature = standard::header(&self.standard, delivery_id, timestamp, body);
            headers.push((standard::ID_HEADER, delivery_id.to_string()));
            headers.push((standard::TIMESTAMP_HEADER, timestamp.to_string()));
            headers.push((standard::SIGNATURE_HEADER, signature));
        }
        headers
    }
}

/// The header QLM's receivers read.
pub const QLM_HEADER: &str = "X-QLM-Signature";

/// `X-QLM-Signature` for `body`.
pub fn qlm(body: &[u8], secret: &Secret) -> String {
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(secret.expose().as_bytes());
    // Into a buffer, not `hex::encode`, which collects a String a char at a time (as much as a
    // fifth of signing a body).
    let mut text = [0u8; 64];
    hex::encode_to_slice(hasher.finalize(), &mut text).expect("64 hex digits for 32 bytes");
    // Checked, not taken lossily: `from_utf8_lossy` walks even ASCII in chunks (500
    // instructions a signature, against ~50).
    std::str::from_utf8(&text)
        .expect("hex digits are ASCII")
        .to_owned()
}

/// Checks a received `X-QLM-Signature` in constant time (case-insensitively, as hex is).
pub fn verify_qlm(body: &[u8], secret: &Secret, header: &str) -> bool {
    let expected = qlm(body, secret);
    let given = header.trim().to_ascii_lowercase();
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // (body, secret, signature), the signatures computed by `sha256sum` of body || secret.
        let table = [
            (
                "",
                "k",
                "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a",
            ),
            (
                "{}",
                "secret",
                "6826e169e270a699d36407a3e3f9c9bba4778bb9b27c99e99a0bf47762093d46",
            ),
        ];
        for (body, secret, expected) in table {
            assert_eq!(qlm(body.as_bytes(), &Secret::new(secret)), expected);
        }
    }

    #[test]
    fn verification_is_exact() {
        let secret = Secret::new("my-secret-key");
        let signature = qlm(b"{\"a\":1}", &secret);
        assert!(verify_qlm(b"{\"a\":1}", &secret, &signature));
        assert!(verify_qlm(b"{\"a\":1}", &secret, &signature.to_uppercase()));
        assert!(!verify_qlm(b"{\"a\": 1}", &secret, &signature));
        assert!(!verify_qlm(b"{\"a\":1}", &Secret::new("other"), &signature));
        assert!(!verify_qlm(b"{\"a\":1}", &secret, ""));
    }
}
