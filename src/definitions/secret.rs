//! Where a webhook's secret comes from (the task file, the environment, a file, a systemd
//! credential), and reading it; the value itself is a [`Secret`].

use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// Why a secret source was rejected or could not be read. Never holds the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Not quoted: a value in the wrong key may be the secret itself.
    #[error("`secret_credential` must be a plain credential name (no `/`)")]
    CredentialName(String),
    /// Not quoted, for the same reason.
    #[error(
        "`secret_env` must be the name of an environment variable (letters, digits and `_`, \
         not starting with a digit), not the secret itself: put a secret in `secret`, or the \
         name of the variable that holds it here"
    )]
    EnvName,
    #[error(
        "no secret: set one of `secret`, `secret_env`, `secret_file` or `secret_credential` \
         (keyhook never sends an unsigned request)"
    )]
    NoSource,
    #[error("set only one of `secret`, `secret_env`, `secret_file` and `secret_credential`")]
    SeveralSources,
    #[error("environment variable {0} (secret_env) is not set")]
    EnvUnset(String),
    /// `secret_env = ""` or `secret_file = ""`.
    #[error("`{0}` is empty: name the {1} that holds the secret")]
    EmptyName(&'static str, &'static str),
    #[error(
        "secret_credential `{0}`: $CREDENTIALS_DIRECTORY is not set \
         (run under systemd with LoadCredential={0}:/path/to/secret)"
    )]
    NoCredentialsDirectory(String),
    /// `from` is [`SecretSource::describe`].
    #[error("the secret from {from} is empty")]
    Empty { from: String },
    #[error("could not read {key} {}: {error}", .path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
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
    /// `secret_credential = "name"`: systemd's `LoadCredential=`, read from
    /// `$CREDENTIALS_DIRECTORY/name`.
    Credential(String),
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what a shell, cron and systemd's `Environment=` can set.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SecretSource {
    /// Picks the one source a `[webhook]` table sets; none or several is an error.
    pub fn from_fields(fields: SecretFields, task_dir: &Path) -> Result<SecretSource, SecretError> {
        let SecretFields {
            literal,
            env,
            file,
            credential,
        } = fields;
        match (literal, env, file, credential) {
            (Some(value), None, None, None) => Ok(SecretSource::Literal(Secret::new(value))),
            (None, Some(name), None, None) if name.trim().is_empty() => {
                Err(SecretError::EmptyName("secret_env", "environment variable"))
            }
            (None, Some(name), None, None) if !is_env_name(&name) => Err(SecretError::EnvName),
            (None, Some(name), None, None) => Ok(SecretSource::Env(name)),
            (None, None, Some(path), None) if path.trim().is_empty() => {
                Err(SecretError::EmptyName("secret_file", "file"))
            }
            (None, None, Some(path), None) => Ok(SecretSource::File(task_dir.join(path))),
            (None, None, None, Some(name)) if name.contains('/') || name.is_empty() => {
                Err(SecretError::CredentialName(name))
            }
            (None, None, None, Some(name)) => Ok(SecretSource::Credential(name)),
            (None, None, None, None) => Err(SecretError::NoSource),
            _ => Err(SecretError::SeveralSources),
        }
    }

    /// Reads the current secret now (the first line of a source holding several). A missing
    /// or empty secret is an error naming where it was sought.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        Ok(self.resolve_all()?.swap_remove(0))
    }

    /// Every secret the source holds, one per line: the current one first, then previous ones
    /// still in a rotation window.
    pub fn resolve_all(&self) -> Result<Vec<Secret>, SecretError> {
        let text = match self {
            SecretSource::Literal(secret) => secret.expose().to_string(),
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::EnvUnset(name.clone()))?
            }
            SecretSource::File(path) => read_secret_file(path, "secret_file")?,
            SecretSource::Credential(name) => {
                let folder = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
                read_secret_file(&Path::new(&folder).join(name), "secret_credential")?
            }
        };
        let secrets: Vec<Secret> = text
            .lines()
            .map(|line| line.trim_end_matches('\r'))
            // A line of blanks is no secret (an editor's, or a value never filled in).
            .filter(|line| !line.trim().is_empty())
            .map(Secret::new)
            .collect();
        if secrets.is_empty() {
            return Err(SecretError::Empty {
                from: self.describe(),
            });
        }
        Ok(secrets)
    }

    /// Where the secret comes from, for messages: never the value.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Literal(_) => "`secret` in the task file".into(),
            SecretSource::Env(name) => format!("environment variable {name}"),
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Credential(name) => format!("systemd credential {name}"),
        }
    }
}

/// The secret keys of a `[webhook]` table, as written.
#[derive(Debug, Default)]
pub struct SecretFields {
    pub literal: Option<String>,
    pub env: Option<String>,
    pub file: Option<String>,
    pub credential: Option<String>,
}

/// A secret held in a file: its text without the trailing newline editors add.
fn read_secret_file(path: &Path, key: &'static str) -> Result<String, SecretError> {
    crate::file_access::read_regular_text(path, crate::file_access::MAX_SECRET_BYTES)
        .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|error| SecretError::Read {
            key,
            path: path.to_path_buf(),
            error,
        })
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
        let fields = |literal, env, file, credential| SecretFields {
            literal,
            env,
            file,
            credential,
        };
        let none = fields(None, None, None, None);
        assert!(
            SecretSource::from_fields(none, dir)
                .unwrap_err()
                .to_string()
                .contains("no secret")
        );
        let two = fields(some("a"), some("B"), None, None);
        assert!(SecretSource::from_fields(two, dir).is_err());
        let file = fields(None, None, some("s.txt"), None);
        assert_eq!(
            SecretSource::from_fields(file, dir).unwrap(),
            SecretSource::File(dir.join("s.txt"))
        );
        let credential = fields(None, None, None, some("renewals"));
        assert_eq!(
            SecretSource::from_fields(credential, dir).unwrap(),
            SecretSource::Credential("renewals".into())
        );
        let escape = fields(None, None, None, some("../etc/passwd"));
        assert!(SecretSource::from_fields(escape, dir).is_err());
        // A secret put where a name goes is refused without being quoted.
        let value = "whsec_MzJiYWQ/c2VjcmV0+aGVyZQ==";
        for wrong in [
            fields(None, some(value), None, None),
            fields(None, None, None, some(value)),
        ] {
            let error = SecretSource::from_fields(wrong, dir)
                .unwrap_err()
                .to_string();
            assert!(!error.contains("whsec_"), "{error}");
        }
        for name in ["RENEWALS_SECRET", "_x1"] {
            let env = fields(None, some(name), None, None);
            assert_eq!(
                SecretSource::from_fields(env, dir).unwrap(),
                SecretSource::Env(name.into())
            );
        }
        let digit = fields(None, some("1ABC"), None, None);
        assert!(SecretSource::from_fields(digit, dir).is_err());
    }

    #[test]
    fn files_lose_their_trailing_newline_and_empty_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(source.resolve().unwrap().expose(), "s3cret");
        for blank in ["\n", "   \n", " \t \r\n\n"] {
            std::fs::write(&path, blank).unwrap();
            let error = source.resolve().unwrap_err().to_string();
            assert!(error.contains("is empty"), "{blank:?}: {error}");
        }
        // Blank lines between a rotation's secrets are skipped, not taken as one.
        std::fs::write(&path, "new\n  \nold\n").unwrap();
        let all = source.resolve_all().unwrap();
        let all: Vec<&str> = all.iter().map(|s| s.expose()).collect();
        assert_eq!(all, ["new", "old"]);
        let named = |env: Option<&str>, file: Option<&str>| SecretFields {
            env: env.map(String::from),
            file: file.map(String::from),
            ..SecretFields::default()
        };
        for (fields, says) in [
            (named(Some(""), None), "`secret_env` is empty"),
            (named(None, Some(" ")), "`secret_file` is empty"),
        ] {
            let error = SecretSource::from_fields(fields, dir.path())
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{error}");
        }
        let missing = SecretSource::Env("KEYHOOK_TEST_SURELY_UNSET".into());
        assert!(
            missing
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("KEYHOOK_TEST_SURELY_UNSET")
        );
    }
}
