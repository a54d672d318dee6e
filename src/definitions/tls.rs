//! Where a webhook's TLS files are (`ca_file`, `client_cert`, `client_key`), resolved against
//! the folder of the file naming them, and read into what delivery needs.

use std::path::{Path, PathBuf};

use crate::delivery::tls::{self, CertificatesError, ClientError, TlsOptions};

/// Why TLS files were rejected or could not be used. Names the key and the file, never the
/// content of a key file.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    #[error("`client_cert` is set without `client_key`")]
    CertWithoutKey,
    #[error("`client_key` is set without `client_cert`")]
    KeyWithoutCert,
    #[error("could not read {key} {}: {error}", .path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("ca_file {}: {why}", .path.display())]
    Ca {
        path: PathBuf,
        why: CertificatesError,
    },
    #[error("client_cert {}: {why}", .path.display())]
    Cert { path: PathBuf, why: String },
    #[error("client_key {}: {why}", .path.display())]
    Key { path: PathBuf, why: String },
    #[error(
        "client_key {} does not fit client_cert {}: {why}",
        .key.display(),
        .cert.display()
    )]
    Mismatch {
        key: PathBuf,
        cert: PathBuf,
        why: String,
    },
}

/// The TLS files of a `[webhook]` table, or the defaults of `keyhook.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of private CAs, trusted beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for receivers that require mutual TLS.
    pub client: Option<ClientFiles>,
}

/// `client_cert` and `client_key`, always set together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The keys as written; relative paths are taken from `dir`, like `secret_file`.
    pub fn from_fields(
        ca_file: Option<String>,
        client_cert: Option<String>,
        client_key: Option<String>,
        dir: &Path,
    ) -> Result<TlsFiles, TlsFilesError> {
        let client = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(ClientFiles {
                cert: dir.join(cert),
                key: dir.join(key),
            }),
            (None, None) => None,
            (Some(_), None) => return Err(TlsFilesError::CertWithoutKey),
            (None, Some(_)) => return Err(TlsFilesError::KeyWithoutCert),
        };
        Ok(TlsFiles {
            ca_file: ca_file.map(|path| dir.join(path)),
            client,
        })
    }

    /// These files over `defaults`: a task's own `ca_file` takes the place of the global one.
    pub fn over(&self, defaults: &TlsFiles) -> TlsFiles {
        TlsFiles {
            ca_file: self.ca_file.clone().or_else(|| defaults.ca_file.clone()),
            client: self.client.clone().or_else(|| defaults.client.clone()),
        }
    }

    /// Reads and parses the files. Errors name the key and the file, never the key's content.
    pub fn load(&self) -> Result<TlsOptions, TlsFilesError> {
        let extra = match &self.ca_file {
            Some(path) => {
                tls::parse_ca(&read(path, "ca_file")?).map_err(|why| TlsFilesError::Ca {
                    path: path.clone(),
                    why,
                })?
            }
            None => Vec::new(),
        };
        let client = match &self.client {
            Some(files) => Some(client(files)?),
            None => None,
        };
        Ok(TlsOptions::new(extra, client))
    }
}

fn client(files: &ClientFiles) -> Result<ureq::tls::ClientCert, TlsFilesError> {
    let (cert, key) = (
        read(&files.cert, "client_cert")?,
        read(&files.key, "client_key")?,
    );
    tls::client_identity(&cert, &key).map_err(|error| match error {
        ClientError::Cert(why) => TlsFilesError::Cert {
            path: files.cert.clone(),
            why,
        },
        ClientError::Key(why) => TlsFilesError::Key {
            path: files.key.clone(),
            why,
        },
        ClientError::Mismatch(why) => TlsFilesError::Mismatch {
            key: files.key.clone(),
            cert: files.cert.clone(),
            why,
        },
    })
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsFilesError> {
    crate::file_access::read_regular(path, crate::file_access::MAX_PEM_BYTES).map_err(|error| {
        TlsFilesError::Read {
            key,
            path: path.to_path_buf(),
            error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<String> {
        Some(text.to_string())
    }

    #[test]
    fn paths_are_relative_to_the_file_and_client_keys_come_in_pairs() {
        let dir = Path::new("/etc/keyhook/tasks");
        let files = TlsFiles::from_fields(some("ca.pem"), some("c.pem"), some("/k.pem"), dir);
        let files = files.unwrap();
        assert_eq!(files.ca_file, Some(dir.join("ca.pem")));
        let client = files.client.unwrap();
        assert_eq!(
            (client.cert, client.key),
            (dir.join("c.pem"), "/k.pem".into())
        );
        let half = TlsFiles::from_fields(None, some("c.pem"), None, dir)
            .unwrap_err()
            .to_string();
        assert!(half.contains("without `client_key`"), "{half}");
        let half = TlsFiles::from_fields(None, None, some("k.pem"), dir)
            .unwrap_err()
            .to_string();
        assert!(half.contains("without `client_cert`"), "{half}");
    }

    #[test]
    fn a_task_ca_file_replaces_the_global_one() {
        let global = TlsFiles {
            ca_file: Some("global.pem".into()),
            client: None,
        };
        assert_eq!(TlsFiles::default().over(&global), global);
        let own = TlsFiles {
            ca_file: Some("own.pem".into()),
            client: None,
        };
        assert_eq!(own.over(&global), own);
    }

    #[test]
    fn load_errors_name_the_key_and_file_but_not_the_key_text() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsFiles::from_fields(some("nope.pem"), None, None, dir.path()).unwrap();
        let error = missing.load().unwrap_err().to_string();
        assert!(error.starts_with("could not read ca_file ") && error.contains("nope.pem"));
        std::fs::write(dir.path().join("key.pem"), "SECRET-KEY-TEXT").unwrap();
        std::fs::write(dir.path().join("cert.pem"), "not pem").unwrap();
        let client =
            TlsFiles::from_fields(None, some("cert.pem"), some("key.pem"), dir.path()).unwrap();
        let error = client.load().unwrap_err().to_string();
        assert!(error.starts_with("client_cert "), "{error}");
        assert!(!error.contains("SECRET-KEY-TEXT"), "{error}");
    }
}
