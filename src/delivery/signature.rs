//! Request signatures. QLM's `X-QLM-Signature` is the lowercase hex SHA-256 of the body bytes
//! followed by the secret's UTF-8 bytes (a plain hash, not an HMAC: QLM's scheme, kept as is).

use sha2::{Digest, Sha256};

use crate::definitions::secret::Secret;

/// The header QLM's receivers read.
pub const QLM_HEADER: &str = "X-QLM-Signature";

/// `X-QLM-Signature` for `body`.
pub fn qlm(body: &[u8], secret: &Secret) -> String {
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(secret.expose().as_bytes());
    hex::encode(hasher.finalize())
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
