//! Where a webhook's TLS files are (`ca_file`, `client_cert`, `client_key`), resolved against
//! the folder of the file naming them, and read into what delivery needs.

use std::path::{Path, PathBuf};

use crate::delivery::tls::{self, ClientError, TlsOptions};

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
    ) -> Result<TlsFiles, String> {
        let client = match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some(ClientFiles {
                cert: dir.join(cert),
                key: dir.join(key),
            }),
            (None, None) => None,
            (Some(_), None) => return Err("`client_cert` is set without `client_key`".into()),
            (None, Some(_)) => return Err("`client_key` is set without `client_cert`".into()),
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
    pub fn load(&self) -> Result<TlsOptions, String> {
        let extra = match &self.ca_file {
            Some(path) => tls::parse_ca(&read(path, "ca_file")?)
                .map_err(|error| format!("ca_file {}: {error}", path.display()))?,
            None => Vec::new(),
        };
        let client = match &self.client {
            Some(files) => Some(client(files)?),
            None => None,
        };
        Ok(TlsOptions::new(extra, client))
    }
}

fn client(files: &ClientFiles) -> Result<ureq::tls::ClientCert, String> {
    let (cert, key) = (
        read(&files.cert, "client_cert")?,
        read(&files.key, "client_key")?,
    );
    tls::client_identity(&cert, &key).map_err(|error| match error {
        ClientError::Cert(why) => format!("client_cert {}: {why}", files.cert.display()),
        ClientError::Key(why) => format!("client_key {}: {why}", files.key.display()),
        ClientError::Mismatch(why) => format!(
            "client_key {} does not fit client_cert {}: {why}",
            files.key.display(),
            files.cert.display()
        ),
    })
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("could not read {key} {}: {error}", path.display()))
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
        let half = TlsFiles::from_fields(None, some("c.pem"), None, dir).unwrap_err();
        assert!(half.contains("without `client_key`"), "{half}");
        let half = TlsFiles::from_fields(None, None, some("k.pem"), dir).unwrap_err();
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
        let error = missing.load().unwrap_err();
        assert!(error.starts_with("could not read ca_file ") && error.contains("nope.pem"));
        std::fs::write(dir.path().join("key.pem"), "SECRET-KEY-TEXT").unwrap();
        std::fs::write(dir.path().join("cert.pem"), "not pem").unwrap();
        let client =
            TlsFiles::from_fields(None, some("cert.pem"), some("key.pem"), dir.path()).unwrap();
        let error = client.load().unwrap_err();
        assert!(error.starts_with("client_cert "), "{error}");
        assert!(!error.contains("SECRET-KEY-TEXT"), "{error}");
    }
}
