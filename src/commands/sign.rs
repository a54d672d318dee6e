//! `keyhook sign`: the signature of a body, as keyhook would send it.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context as _, anyhow};

use super::{Context, success};
use crate::cli::{SchemeArg, SignArgs};
use crate::definitions::secret::SecretSource;
use crate::delivery::{signature, standard};
use crate::error::{Error, Result};
use crate::secret::Secret;

pub fn run(context: &Context, args: &SignArgs, out: &mut impl Write) -> Result {
    let (secrets, from) = secrets(context, args)?;
    let body = read_body(&args.body)?;
    match args.scheme {
        SchemeArg::Qlm => writeln!(out, "{}", signature::qlm(&body, &secrets[0]))?,
        SchemeArg::Standard => {
            let (Some(id), Some(timestamp)) = (&args.id, args.timestamp) else {
                return Err(Error::config(anyhow!(
                    "--scheme standard needs --id and --timestamp"
                )));
            };
            let keys = secrets
                .iter()
                .map(|secret| standard::Key::from_secret(secret.expose()))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|error| Error::config(anyhow!("{from}: {error}")))?;
            writeln!(out, "{}", standard::header(&keys, id, timestamp, &body))?;
        }
    }
    success()
}

/// The secrets to sign with (current first) and where they come from, for messages:
/// `--secret-env`'s one, or every secret `--webhook` signs with at `--now`.
fn secrets(context: &Context, args: &SignArgs) -> Result<(Vec<Secret>, String)> {
    if let Some(name) = &args.webhook {
        let webhook = super::webhooks::find(context, name)?;
        let from = format!("webhook `{}` ({})", webhook.name, webhook.path.display());
        let secrets = webhook
            .endpoint
            .secrets(context.clock.now())
            .map_err(|error| Error::config(anyhow!("{from}: {error}")))?;
        return Ok((secrets, from));
    }
    let name = args.secret_env.clone().unwrap_or_default();
    let secret = SecretSource::Env(name)
        .resolve()
        .map_err(|error| Error::config(anyhow!("--secret-env: {error}")))?;
    Ok((vec![secret], "--secret-env".into()))
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
