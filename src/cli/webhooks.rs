//! Arguments of `webhooks` and `secret`: the event webhooks of the registry and their secrets.

use clap::{Args, Subcommand};

/// `secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a fresh `whsec_` secret: 32 random bytes from the OS, base64.
    New,

    /// Write a new `whsec_` secret to a webhook's `secret_file`, keeping the old one as a
    /// previous secret for 24 hours (in `<secret_file>.previous`): requests are signed with
    /// both meanwhile, so receivers can switch without losing any.
    Rotate(RotateArgs),
}

/// Arguments of `secret rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The webhook: file stem (`crm-activations`) or name.
    pub webhook: String,
}

/// `webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// One line per webhook: name, URL, environment, events, status.
    List(WebhooksListArgs),

    /// Send a sample event, marked as a test, to each URL of a webhook, through the real
    /// delivery path (recorded, signed, same headers), one attempt with no retry; show the
    /// response. Exit 0 when every URL answered 2xx, 1 otherwise.
    Test(WebhooksTestArgs),
}

/// Arguments of `webhooks test`.
#[derive(Debug, Args)]
pub struct WebhooksTestArgs {
    /// The webhook: file stem (`crm-activations`) or name.
    pub name: String,

    /// The event type to send, in either naming style [default: the first the webhook
    /// subscribes to].
    #[arg(long, value_name = "TYPE")]
    pub event: Option<String>,
}

/// Whether a webhook is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    Active,
    Inactive,
}

/// Arguments of `webhooks list`.
#[derive(Debug, Args)]
pub struct WebhooksListArgs {
    /// Only active (enabled) or inactive webhooks.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,

    /// Only webhooks whose name or URL contains this text (case-insensitively).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,

    /// One JSON array.
    #[arg(long)]
    pub json: bool,
}
