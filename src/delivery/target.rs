//! Where and how a source's deliveries are sent: plain values, every file read and every
//! secret resolved before anything is sent.

use std::time::Duration;

use super::retry::RetryPolicy;
use super::signature::Signer;
use super::tls::TlsOptions;

/// The receiver of a webhook.
pub struct Endpoint {
    pub url: String,
    /// How long one request may take.
    pub timeout: Duration,
    /// What an `https://` receiver must prove, and what keyhook proves to it (files loaded).
    pub tls: TlsOptions,
}

/// Where and how one source's deliveries are sent.
pub struct Target {
    /// The source the deliveries belong to (a task's stem): whose queue is sent, and whose
    /// webhook a 410 Gone disables.
    pub source: String,
    pub endpoint: Endpoint,
    /// The schemes and keys, already resolved.
    pub signer: Signer,
    pub policy: RetryPolicy,
    /// Requests in flight at once, each on its own keep-alive connection.
    pub concurrency: usize,
}
