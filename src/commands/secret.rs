//! `keyhook secret new`: a fresh Standard Webhooks secret.

use std::io::Write;

use anyhow::anyhow;

use super::success;
use crate::delivery::standard;
use crate::error::{Error, Result};

pub fn new(out: &mut impl Write) -> Result {
    let secret = standard::new_secret()
        .map_err(|error| Error::runtime(anyhow!("the OS gave no random bytes: {error}")))?;
    writeln!(out, "{secret}")?;
    success()
}
