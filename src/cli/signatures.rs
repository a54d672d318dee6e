//! Arguments of the signature tools outside a run: `sign`, `verify` and the local receiver
//! `listen`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::values::duration;

/// Which signature scheme to sign or check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemeArg {
    /// `X-QLM-Signature`: SHA-256 of body + secret.
    Qlm,
    /// Standard Webhooks: `webhook-signature` over id, timestamp and body.
    Standard,
}

/// Arguments of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[arg(long, value_enum, default_value = "standard")]
    pub scheme: SchemeArg,

    /// Environment variable holding the secret.
    #[arg(long, value_name = "NAME", required_unless_present = "webhook")]
    pub secret_env: Option<String>,

    /// Sign as this webhook signs now (`--now`): its current secret, and for `standard` every
    /// previous secret still in its rotation window, one `v1,` signature each.
    #[arg(long, value_name = "WEBHOOK", conflicts_with = "secret_env")]
    pub webhook: Option<String>,

    /// The message (delivery) id; needed by `standard`.
    #[arg(long)]
    pub id: Option<String>,

    /// Unix seconds; needed by `standard`.
    #[arg(long, allow_negative_numbers = true)]
    pub timestamp: Option<i64>,

    /// The body file (`-` for standard input), signed byte for byte.
    #[arg(long, value_name = "FILE")]
    pub body: PathBuf,
}

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Environment variable holding the secret (one per line to accept several).
    #[arg(long, value_name = "NAME")]
    pub secret_env: String,

    /// The scheme to check [default: the one the request's headers use].
    #[arg(long, value_enum)]
    pub scheme: Option<SchemeArg>,

    /// A file of `Name: value` header lines; with --body. Without both, a raw HTTP request is
    /// read from standard input.
    #[arg(long, value_name = "FILE", requires = "body")]
    pub headers: Option<PathBuf>,

    /// The body file, byte for byte; with --headers.
    #[arg(long, value_name = "FILE", requires = "headers")]
    pub body: Option<PathBuf>,

    /// How old (or new) a Standard Webhooks timestamp may be, e.g. 5m.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub tolerance: Duration,
}

/// Arguments of `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "KEYHOOK_LISTEN_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Secret to check `X-QLM-Signature` with. Prefer --secret-env: this one shows in `ps`.
    #[arg(long, conflicts_with = "secret_env", hide_env_values = true)]
    pub secret: Option<String>,

    /// Environment variable holding the secret to check `X-QLM-Signature` with.
    #[arg(long, value_name = "NAME")]
    pub secret_env: Option<String>,

    /// One line per request, without the body.
    #[arg(long)]
    pub compact: bool,

    /// Speak HTTPS with this PEM certificate (then any intermediates); needs --tls-key.
    #[arg(
        long,
        value_name = "PEM",
        env = "KEYHOOK_LISTEN_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(
        long,
        value_name = "PEM",
        env = "KEYHOOK_LISTEN_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
}
