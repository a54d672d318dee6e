//! `keyhook sign`: the signature of a body, as keyhook would send it.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context as _, anyhow};

use super::success;
use crate::cli::{SchemeArg, SignArgs};
use crate::definitions::secret::SecretSource;
use crate::delivery::{signature, standard};
use crate::error::{Error, Result};

pub fn run(args: &SignArgs, out: &mut impl Write) -> Result {
    let secret = SecretSource::Env(args.secret_env.clone())
        .resolve()
        .map_err(|error| Error::config(anyhow!("--secret-env: {error}")))?;
    let body = read_body(&args.body)?;
    match args.scheme {
        SchemeArg::Qlm => writeln!(out, "{}", signature::qlm(&body, &secret))?,
        SchemeArg::Standard => {
            let (Some(id), Some(timestamp)) = (&args.id, args.timestamp) else {
                return Err(Error::config(anyhow!(
                    "--scheme standard needs --id and --timestamp"
                )));
            };
            let key = standard::Key::from_secret(secret.expose())
                .map_err(|error| Error::config(anyhow!("--secret-env: {error}")))?;
            writeln!(out, "{}", standard::sign(&key, id, timestamp, &body))?;
        }
    }
    success()
}

/// A file's bytes, or standard input's for `-`.
pub fn read_body(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    std::fs::read(path)
        .with_context(|| format!("could not read {}", path.display()))
        .map_err(Error::config)
}
