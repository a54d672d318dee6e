//! Rotating a file-based secret without breaking receivers: the new secret replaces the
//! `secret_file`, and the secrets it held move to `<secret_file>.previous`, one line each,
//! `<expiry, RFC 3339> <secret>`, for [`OVERLAP`]. Until then requests carry a Standard
//! Webhooks signature for each (and receivers may accept either); after it, only the new one.
//!
//! The sidecar is written first: a crash between the two writes leaves the old secret both
//! current and previous, never lost. Both files are written atomically (a temporary file in
//! the same folder, fsync, rename, fsync of the folder) with mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use super::secret::{SecretError, SecretSource};
use crate::secret::Secret;

/// How long a replaced secret still signs.
pub const OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Why a rotation or the sidecar failed. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("could not read {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} line {line}: not `<expiry, RFC 3339> <secret>`", .path.display())]
    Line { path: PathBuf, line: usize },
    #[error("could not write {}: {error}", .path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// `<secret_file>.previous`.
pub fn sidecar(secret_file: &Path) -> PathBuf {
    let mut name = secret_file.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

/// The previous secrets of `secret_file` still in their window at `now`; no sidecar, none.
pub fn previous(secret_file: &Path, now: DateTime<Utc>) -> Result<Vec<Secret>, RotationError> {
    Ok(entries(secret_file)?
        .into_iter()
        .filter(|(expiry, _)| *expiry > now)
        .map(|(_, secret)| secret)
        .collect())
}

/// What a rotation did, for the message.
#[derive(Debug)]
pub struct Rotated {
    pub sidecar: PathBuf,
    /// Until when the replaced secrets still sign.
    pub until: DateTime<Utc>,
    /// How many replaced secrets are kept.
    pub kept: usize,
}

/// Writes `new` to `secret_file` and keeps what it held (and the sidecar's unexpired
/// secrets) in the sidecar until `now` + [`OVERLAP`].
pub fn rotate(
    secret_file: &Path,
    new: &Secret,
    now: DateTime<Utc>,
) -> Result<Rotated, RotationError> {
    let current = SecretSource::File(secret_file.to_path_buf()).resolve_all()?;
    let until = now + chrono::Duration::from_std(OVERLAP).unwrap_or_default();
    let mut kept: Vec<(DateTime<Utc>, Secret)> = entries(secret_file)?
        .into_iter()
        .filter(|(expiry, secret)| *expiry > now && !current.contains(secret))
        .collect();
    kept.extend(current.into_iter().map(|secret| (until, secret)));
    let text: String = kept
        .iter()
        .map(|(expiry, secret)| {
            let expiry = expiry.to_rfc3339_opts(SecondsFormat::Secs, true);
            format!("{expiry} {}\n", secret.expose())
        })
        .collect();
    let sidecar = sidecar(secret_file);
    write_atomically(&sidecar, text.as_bytes())?;
    write_atomically(secret_file, format!("{}\n", new.expose()).as_bytes())?;
    Ok(Rotated {
        sidecar,
        until,
        kept: kept.len(),
    })
}

/// The sidecar's lines; a line that does not parse is an error naming the file and line
/// (never the secret).
fn entries(secret_file: &Path) -> Result<Vec<(DateTime<Utc>, Secret)>, RotationError> {
    let path = sidecar(secret_file);
    let text =
        match crate::file_access::read_regular_text(&path, crate::file_access::MAX_SECRET_BYTES) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(RotationError::Read { path, error }),
        };
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(expiry, secret)| {
            let expiry = DateTime::parse_from_rfc3339(expiry).ok()?;
            (!secret.is_empty()).then(|| (expiry.with_timezone(&Utc), Secret::new(secret)))
        });
        match parsed {
            Some(entry) => entries.push(entry),
            None => {
                return Err(RotationError::Line {
                    path,
                    line: index + 1,
                });
            }
        }
    }
    Ok(entries)
}

/// Temporary file beside `path`, mode 0600, fsync, rename over `path`, fsync the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RotationError> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(folder)?.sync_all()
    };
    write().map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        RotationError::Write {
            path: path.to_path_buf(),
            error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn exposed(secrets: &[Secret]) -> Vec<&str> {
        secrets.iter().map(Secret::expose).collect()
    }

    #[test]
    fn the_old_secret_signs_for_the_overlap_then_stops() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crm.secret");
        std::fs::write(&file, "old\n").unwrap();
        let now = at("2026-11-23T10:00:00Z");
        let rotated = rotate(&file, &Secret::new("new"), now).unwrap();
        assert_eq!(rotated.until, at("2026-11-24T10:00:00Z"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(sidecar(&file)).unwrap(),
            "2026-11-24T10:00:00Z old\n"
        );
        for path in [file.clone(), sidecar(&file)] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        assert_eq!(exposed(&previous(&file, now).unwrap()), ["old"]);
        let later = at("2026-11-24T10:00:00Z");
        assert!(previous(&file, later).unwrap().is_empty());
        // A second rotation within the window keeps both replaced secrets.
        let soon = at("2026-11-23T12:00:00Z");
        rotate(&file, &Secret::new("newer"), soon).unwrap();
        assert_eq!(exposed(&previous(&file, soon).unwrap()), ["old", "new"]);
        assert_eq!(
            exposed(&previous(&file, at("2026-11-24T11:00:00Z")).unwrap()),
            ["new"]
        );
    }

    #[test]
    fn a_damaged_sidecar_is_named_without_its_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crm.secret");
        std::fs::write(sidecar(&file), "tomorrow hunter2\n").unwrap();
        let error = previous(&file, Utc::now()).unwrap_err().to_string();
        assert!(error.contains("crm.secret.previous line 1"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }
}
