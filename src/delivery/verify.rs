//! Receiver-side checks with reasons: which scheme a request uses, whether its signature
//! holds, and when it does not, whether the body was re-serialized on the way.

use super::signature::{QLM_HEADER, verify_qlm};
use super::standard::{self, Key};
use crate::licenses::schema::LICENSE_INFO;
use crate::secret::Secret;

/// Why a request does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("no {0} header")]
    MissingHeader(&'static str),
    #[error(
        "the body was re-serialized ({0}): the signature covers the exact bytes sent, so \
         verify the raw body before any JSON parsing"
    )]
    Reserialized(&'static str),
    #[error("the signature does not match: wrong secret, or the body's bytes were changed")]
    WrongSecret,
    #[error(transparent)]
    Standard(standard::VerifyError),
}

/// Checks `X-QLM-Signature`.
pub fn qlm(header: Option<&str>, body: &[u8], secret: &Secret) -> Result<(), Invalid> {
    let header = header
        .filter(|value| !value.trim().is_empty())
        .ok_or(Invalid::MissingHeader(QLM_HEADER))?;
    if verify_qlm(body, secret, header) {
        return Ok(());
    }
    Err(diagnose(body, |candidate| {
        verify_qlm(candidate, secret, header)
    }))
}

/// Checks the Standard Webhooks headers.
pub fn standard(
    headers: &StandardHeaders,
    body: &[u8],
    keys: &[Key],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), Invalid> {
    let check = |candidate: &[u8]| {
        standard::verify(
            keys,
            headers.id,
            headers.timestamp,
            headers.signature,
            candidate,
            now,
            tolerance_secs,
        )
    };
    match check(body) {
        Ok(()) => Ok(()),
        Err(standard::VerifyError::NoMatch) => {
            Err(diagnose(body, |candidate| check(candidate).is_ok()))
        }
        Err(other) => Err(Invalid::Standard(other)),
    }
}

/// The three Standard Webhooks header values of a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A failed check: if the compact form of the JSON (in its own key order, then in QLM's)
/// would have verified, the body was re-serialized; otherwise the secret is wrong.
fn diagnose(body: &[u8], verifies: impl Fn(&[u8]) -> bool) -> Invalid {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Invalid::WrongSecret;
    };
    if let Ok(compact) = serde_json::to_vec(&json)
        && compact != body
        && verifies(&compact)
    {
        return Invalid::Reserialized("whitespace changed");
    }
    if let Some(canonical) = qlm_order(&json)
        && verifies(&canonical)
    {
        return Invalid::Reserialized("key order changed");
    }
    Invalid::WrongSecret
}

/// A QLM payload with its keys put back in QLM's order, compact.
fn qlm_order(json: &serde_json::Value) -> Option<Vec<u8>> {
    let object = json.as_object()?;
    let info = object.get("LicenseInfo")?.as_object()?;
    let mut ordered_info = serde_json::Map::new();
    for (name, _) in LICENSE_INFO {
        ordered_info.insert(name.to_string(), info.get(name)?.clone());
    }
    let mut ordered = serde_json::Map::new();
    ordered.insert("Name".into(), object.get("Name")?.clone());
    ordered.insert(
        "WebHookUserData".into(),
        object.get("WebHookUserData")?.clone(),
    );
    ordered.insert(
        "LicenseInfo".into(),
        serde_json::Value::Object(ordered_info),
    );
    serde_json::to_vec(&serde_json::Value::Object(ordered)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::signature;

    const BODY: &[u8] = include_bytes!("../../tests/fixtures/qlm-example-body.json");

    #[test]
    fn qlm_reasons() {
        let secret = Secret::new("my-secret-key");
        let good = signature::qlm(BODY, &secret);
        assert_eq!(qlm(Some(&good), BODY, &secret), Ok(()));
        assert_eq!(
            qlm(None, BODY, &secret),
            Err(Invalid::MissingHeader(QLM_HEADER))
        );
        assert_eq!(
            qlm(Some(&good), BODY, &Secret::new("other")),
            Err(Invalid::WrongSecret)
        );
        let json: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let pretty = serde_json::to_vec_pretty(&json).unwrap();
        assert_eq!(
            qlm(Some(&good), &pretty, &secret),
            Err(Invalid::Reserialized("whitespace changed"))
        );
        // Keys sorted alphabetically, as many JSON libraries do.
        let sorted: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(BODY).unwrap();
        let sorted = serde_json::to_vec(&sorted).unwrap();
        assert_ne!(sorted, BODY);
        assert_eq!(
            qlm(Some(&good), &sorted, &secret),
            Err(Invalid::Reserialized("key order changed"))
        );
    }

    #[test]
    fn standard_reasons() {
        let key = Key::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = standard::header(std::slice::from_ref(&key), "msg_1", 1000, BODY);
        let headers = StandardHeaders {
            id: Some("msg_1"),
            timestamp: Some("1000"),
            signature: Some(&signature),
        };
        let keys = [key];
        assert_eq!(standard(&headers, BODY, &keys, 1010, 300), Ok(()));
        assert!(matches!(
            standard(&headers, BODY, &keys, 5000, 300),
            Err(Invalid::Standard(standard::VerifyError::TooOld { .. }))
        ));
        let missing = StandardHeaders {
            signature: None,
            ..headers
        };
        assert!(matches!(
            standard(&missing, BODY, &keys, 1010, 300),
            Err(Invalid::Standard(standard::VerifyError::MissingHeader(_)))
        ));
        let json: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let pretty = serde_json::to_vec_pretty(&json).unwrap();
        assert_eq!(
            standard(&headers, &pretty, &keys, 1010, 300),
            Err(Invalid::Reserialized("whitespace changed"))
        );
        let other = [Key::from_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap()];
        assert_eq!(
            standard(&headers, BODY, &other, 1010, 300),
            Err(Invalid::WrongSecret)
        );
    }
}
