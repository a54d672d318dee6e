//! Where a webhook's secret comes from, and a type that never prints it.

use std::path::{Path, PathBuf};

/// A secret key. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One of the ways a task file can give its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret = "..."` in the task file.
    Literal(Secret),
    /// `secret_env = "NAME"`.
    Env(String),
    /// `secret_file = "path"`, relative to the task file's folder.
    File(PathBuf),
}

impl SecretSource {
    /// Picks the one source a `[webhook]` table sets; none or several is an error.
    pub fn from_fields(
        literal: Option<String>,
        env: Option<String>,
        file: Option<String>,
        task_dir: &Path,
    ) -> Result<SecretSource, String> {
        match (literal, env, file) {
            (Some(value), None, None) => Ok(SecretSource::Literal(Secret(value))),
            (None, Some(name), None) => Ok(SecretSource::Env(name)),
            (None, None, Some(path)) => Ok(SecretSource::File(task_dir.join(path))),
            (None, None, None) => Err(
                "no secret: set one of `secret`, `secret_env` or `secret_file` \
                 (keyhook never sends an unsigned request)"
                    .into(),
            ),
            _ => Err("set only one of `secret`, `secret_env` and `secret_file`".into()),
        }
    }

    /// Reads the secret now. A missing or empty secret is an error naming where it was sought.
    pub fn resolve(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::Literal(secret) => secret.0.clone(),
            SecretSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} (secret_env) is not set"))?,
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|error| format!("could not read secret_file {}: {error}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        };
        if value.is_empty() {
            return Err(format!("the secret from {} is empty", self.describe()));
        }
        Ok(Secret(value))
    }

    /// Where the secret comes from, for messages: never the value.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Literal(_) => "`secret` in the task file".into(),
            SecretSource::Env(name) => format!("environment variable {name}"),
            SecretSource::File(path) => format!("file {}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?}"),
            "<redacted> Secret(<redacted>)"
        );
        let source = SecretSource::Literal(secret);
        assert!(!format!("{source:?} {}", source.describe()).contains("hunter2"));
    }

    #[test]
    fn exactly_one_source() {
        let dir = Path::new("/etc/keyhook/tasks");
        let some = |s: &str| Some(s.to_string());
        assert!(
            SecretSource::from_fields(None, None, None, dir)
                .unwrap_err()
                .contains("no secret")
        );
        assert!(SecretSource::from_fields(some("a"), some("B"), None, dir).is_err());
        assert_eq!(
            SecretSource::from_fields(None, None, some("s.txt"), dir),
            Ok(SecretSource::File(dir.join("s.txt")))
        );
    }

    #[test]
    fn files_lose_their_trailing_newline_and_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(source.resolve().unwrap().expose(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(source.resolve().unwrap_err().contains("is empty"));
        let missing = SecretSource::Env("KEYHOOK_TEST_SURELY_UNSET".into());
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .contains("KEYHOOK_TEST_SURELY_UNSET")
        );
    }
}
