//! `keyhook secret new`: a fresh Standard Webhooks secret; `secret rotate`: a webhook's
//! `secret_file` replaced, the old secret kept for the overlap (see `definitions::rotation`).

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::RotateArgs;
use crate::definitions::rotation;
use crate::definitions::secret::SecretSource;
use crate::delivery::standard;
use crate::error::{Error, Result};
use crate::secret::Secret;

pub fn new(out: &mut impl Write) -> Result {
    let secret = standard::new_secret()
        .map_err(|error| Error::runtime(anyhow!("the OS gave no random bytes: {error}")))?;
    writeln!(out, "{secret}")?;
    success()
}

/// `keyhook secret rotate <webhook>`: only a `secret_file` can be rewritten by keyhook.
pub fn rotate(context: &Context, args: &RotateArgs, out: &mut impl Write) -> Result {
    let webhook = super::webhooks::find(context, &args.webhook)?;
    let SecretSource::File(path) = &webhook.endpoint.secret else {
        return Err(Error::config(anyhow!(
            "webhook `{}` ({}) takes its secret from {}, which keyhook does not write; \
             `secret rotate` needs `secret_file` (or put `keyhook secret new`'s output where \
             the secret comes from, and the old one in `previous_secrets` for a while)",
            webhook.name,
            webhook.path.display(),
            webhook.endpoint.secret.describe()
        )));
    };
    let secret = standard::new_secret()
        .map_err(|error| Error::runtime(anyhow!("the OS gave no random bytes: {error}")))?;
    let rotated = rotation::rotate(path, &Secret::new(secret), context.clock.now())
        .map_err(|error| Error::runtime(anyhow!("webhook `{}`: {error}", webhook.name)))?;
    writeln!(
        out,
        "webhook `{}`: wrote a new secret to {}; the previous one ({} kept in {}) also signs \
         until {}",
        webhook.name,
        path.display(),
        rotated.kept,
        rotated.sidecar.display(),
        super::sending::local_time(context, rotated.until.timestamp())
    )?;
    success()
}
