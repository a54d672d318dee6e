//! How to reach and sign for a receiver: the keys a task's `[webhook]` table and a
//! `webhooks/<stem>.toml` file share (secret, signature, timeout, retries, TLS files),
//! declared once and validated by one function.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::retry::{self, RetryError, RetryFields, ScheduleField};
use super::rotation::{self, RotationError};
use super::secret::{SecretError, SecretFields, SecretSource};
use super::settings::{DurationError, Settings, parse_duration};
use super::tls::{TlsFiles, TlsFilesError};
use crate::delivery::retry::RetryPolicy;
use crate::delivery::signature::{Scheme, Signer, SignerError};
use crate::delivery::tls::TlsOptions;
use crate::secret::Secret;

/// The request timeout when a file sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Declares a TOML-facing struct: its own fields, then the shared endpoint keys. A macro
/// rather than `#[serde(flatten)]`, which cannot be combined with `deny_unknown_fields` and
/// loses toml's line numbers: a typo in either file must stay an error naming its line.
macro_rules! with_endpoint_keys {
    (
        $(#[$meta:meta])*
        struct $name:ident {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        struct $name {
            $($(#[$field_meta])* $field: $ty,)*
            /// The secret key, written in the file (prefer `secret_env` or `secret_file`).
            #[serde(default)]
            secret: Option<String>,
            /// Name of an environment variable holding the secret key.
            #[serde(default)]
            secret_env: Option<String>,
            /// Path of a file holding the secret key (relative to this file).
            #[serde(default)]
            secret_file: Option<String>,
            /// Name of a systemd credential (`LoadCredential=`) holding the secret key.
            #[serde(default)]
            secret_credential: Option<String>,
            /// Older secrets still accepted by receivers during a rotation: one more Standard
            /// Webhooks signature each.
            #[serde(default)]
            previous_secrets: Vec<String>,
            /// "qlm" (default), "standard", or ["qlm", "standard"] to send both header sets.
            #[serde(default)]
            signature: Option<$crate::definitions::endpoint::SchemeField>,
            /// How long one request may take, e.g. "30s".
            #[serde(default)]
            timeout: Option<String>,
            /// Retries after the first attempt; default from keyhook.toml.
            #[serde(default)]
            max_retries: Option<u32>,
            /// A fixed wait between attempts (QLM's behaviour), e.g. "10m".
            #[serde(default)]
            retry_interval: Option<String>,
            /// "standard" or a list of waits such as ["30s", "5m", "1h"].
            #[serde(default)]
            retry_schedule: Option<$crate::definitions::retry::ScheduleField>,
            /// A delivery older than this is not retried again, e.g. "3d".
            #[serde(default)]
            give_up_after: Option<String>,
            /// Retry 4xx answers other than 408 and 429 too.
            #[serde(default)]
            retry_4xx: Option<bool>,
            /// PEM file of private CA certificates trusted beside the system's (relative to
            /// this file); default the one in keyhook.toml.
            #[serde(default)]
            ca_file: Option<String>,
            /// PEM client certificate (chain) for receivers that require mutual TLS.
            #[serde(default)]
            client_cert: Option<String>,
            /// PEM private key of `client_cert`; keep it readable by keyhook's user only.
            #[serde(default)]
            client_key: Option<String>,
        }

        impl $name {
            /// Moves the shared keys out, for [`Endpoint::from_keys`].
            fn take_endpoint_keys(&mut self) -> $crate::definitions::endpoint::EndpointKeys {
                $crate::definitions::endpoint::EndpointKeys {
                    secret: self.secret.take(),
                    secret_env: self.secret_env.take(),
                    secret_file: self.secret_file.take(),
                    secret_credential: self.secret_credential.take(),
                    previous_secrets: std::mem::take(&mut self.previous_secrets),
                    signature: self.signature.take(),
                    timeout: self.timeout.take(),
                    max_retries: self.max_retries.take(),
                    retry_interval: self.retry_interval.take(),
                    retry_schedule: self.retry_schedule.take(),
                    give_up_after: self.give_up_after.take(),
                    retry_4xx: self.retry_4xx.take(),
                    ca_file: self.ca_file.take(),
                    client_cert: self.client_cert.take(),
                    client_key: self.client_key.take(),
                }
            }
        }
    };
}
pub(crate) use with_endpoint_keys;

/// `signature`: one scheme or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "`signature` is \"qlm\" or \"standard\", or a list of them such as \
                 [\"qlm\", \"standard\"]"
)]
pub enum SchemeField {
    One(Scheme),
    Many(Vec<Scheme>),
}

/// The shared keys as written.
#[derive(Debug, Default)]
pub struct EndpointKeys {
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub secret_credential: Option<String>,
    pub previous_secrets: Vec<String>,
    pub signature: Option<SchemeField>,
    pub timeout: Option<String>,
    pub max_retries: Option<u32>,
    pub retry_interval: Option<String>,
    pub retry_schedule: Option<ScheduleField>,
    pub give_up_after: Option<String>,
    pub retry_4xx: Option<bool>,
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
}

/// Why the shared keys were rejected, or could not be resolved into what sending needs.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Rotation(#[from] RotationError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Tls(#[from] TlsFilesError),
    #[error(transparent)]
    Retry(#[from] RetryError),
    #[error("field `timeout`: {0}")]
    Timeout(DurationError),
    #[error("field `signature`: the list is empty")]
    NoScheme,
}

/// The shared keys, validated.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub secret: SecretSource,
    pub previous_secrets: Vec<Secret>,
    pub schemes: Vec<Scheme>,
    pub timeout: Duration,
    /// The file's own retry keys; `Settings::retry` fills in the rest.
    pub retry: RetryFields,
    /// The file's own TLS files; `Settings::tls` fills in `ca_file`.
    pub tls: TlsFiles,
}

impl Endpoint {
    /// Validates the keys; relative paths are taken from `dir`, the folder of the file. Every
    /// key's problem is returned, not only the first.
    pub fn from_keys(keys: EndpointKeys, dir: &Path) -> Result<Endpoint, Vec<EndpointError>> {
        let mut problems = Vec::new();
        let mut keep = |error: EndpointError| problems.push(error);
        let fields = SecretFields {
            literal: keys.secret,
            env: keys.secret_env,
            file: keys.secret_file,
            credential: keys.secret_credential,
        };
        let secret = SecretSource::from_fields(fields, dir)
            .map_err(|e| keep(e.into()))
            .ok();
        let tls = TlsFiles::from_fields(keys.ca_file, keys.client_cert, keys.client_key, dir)
            .map_err(|e| keep(e.into()))
            .ok();
        let timeout = match keys.timeout {
            Some(text) => parse_duration(&text)
                .map_err(|e| keep(EndpointError::Timeout(e)))
                .ok(),
            None => Some(DEFAULT_TIMEOUT),
        };
        let retry = RetryFields {
            max_retries: keys.max_retries,
            retry_interval: keys.retry_interval,
            retry_schedule: keys.retry_schedule,
            give_up_after: keys.give_up_after,
            retry_4xx: keys.retry_4xx,
        };
        retry::problems(&retry)
            .into_iter()
            .for_each(|e| keep(e.into()));
        let schemes = schemes(keys.signature).map_err(&mut keep).ok();
        match (secret, tls, timeout, schemes) {
            (Some(secret), Some(tls), Some(timeout), Some(schemes)) if problems.is_empty() => {
                Ok(Endpoint {
                    secret,
                    previous_secrets: keys.previous_secrets.into_iter().map(Secret::new).collect(),
                    schemes,
                    timeout,
                    retry,
                    tls,
                })
            }
            _ => Err(problems),
        }
    }
}

/// What sending needs, resolved now: the signer, the retry policy, the TLS options.
pub struct Resolved {
    pub signer: Signer,
    pub policy: RetryPolicy,
    pub tls: TlsOptions,
    pub timeout: Duration,
}

impl Endpoint {
    /// Every secret to sign with at `now`: the source's (current first), `previous_secrets`,
    /// then those a rotation of a `secret_file` keeps until their overlap ends.
    pub fn secrets(&self, now: DateTime<Utc>) -> Result<Vec<Secret>, EndpointError> {
        let mut secrets = self.secret.resolve_all()?;
        secrets.extend(self.previous_secrets.iter().cloned());
        if let SecretSource::File(path) = &self.secret {
            secrets.extend(rotation::previous(path, now)?);
        }
        Ok(secrets)
    }

    /// Resolves the secrets, signer, retry policy (over `settings`' keys) and TLS files (over
    /// `settings`' `ca_file`): what a send needs and what `check` validates.
    pub fn resolve(
        &self,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<Resolved, EndpointError> {
        let signer = Signer::new(&self.schemes, &self.secrets(now)?)?;
        let policy = retry::policy(&self.retry, &settings.retry)?;
        let tls = self.tls.over(&settings.tls).load()?;
        Ok(Resolved {
            signer,
            policy,
            tls,
            timeout: self.timeout,
        })
    }
}

/// `signature` as a list without repeats; QLM's scheme when it is not set.
fn schemes(field: Option<SchemeField>) -> Result<Vec<Scheme>, EndpointError> {
    match field {
        None => Ok(vec![Scheme::Qlm]),
        Some(SchemeField::One(scheme)) => Ok(vec![scheme]),
        Some(SchemeField::Many(list)) if list.is_empty() => Err(EndpointError::NoScheme),
        Some(SchemeField::Many(list)) => {
            let mut unique = Vec::with_capacity(list.len());
            for scheme in list {
                if !unique.contains(&scheme) {
                    unique.push(scheme);
                }
            }
            Ok(unique)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_mistakes() {
        let keys = EndpointKeys {
            secret_env: Some("S".into()),
            ..EndpointKeys::default()
        };
        let endpoint = Endpoint::from_keys(keys, Path::new("/etc/keyhook")).unwrap();
        assert_eq!(endpoint.schemes, [Scheme::Qlm]);
        assert_eq!(endpoint.timeout, DEFAULT_TIMEOUT);
        let both = Some(SchemeField::Many(vec![
            Scheme::Standard,
            Scheme::Qlm,
            Scheme::Standard,
        ]));
        assert_eq!(
            schemes(both).unwrap(),
            [Scheme::Standard, Scheme::Qlm],
            "order kept, repeats dropped"
        );
        let empty = schemes(Some(SchemeField::Many(Vec::new())))
            .unwrap_err()
            .to_string();
        assert!(empty.contains("field `signature`"), "{empty}");
        let no_secret = Endpoint::from_keys(EndpointKeys::default(), Path::new("/"))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        assert!(
            no_secret.len() == 1 && no_secret[0].contains("no secret"),
            "{no_secret:?}"
        );
    }

    #[test]
    fn every_keys_problem_is_said_not_only_the_first() {
        let keys = EndpointKeys {
            timeout: Some("soon".into()),
            signature: Some(SchemeField::Many(Vec::new())),
            retry_interval: Some("often".into()),
            give_up_after: Some("never".into()),
            ..EndpointKeys::default()
        };
        let said: Vec<String> = Endpoint::from_keys(keys, Path::new("/"))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        for field in [
            "no secret",
            "field `timeout`",
            "field `signature`",
            "retry_interval",
        ] {
            assert!(said.iter().any(|s| s.contains(field)), "{field}: {said:?}");
        }
    }
}
