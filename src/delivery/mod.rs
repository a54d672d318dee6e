//! Delivery: the engine every source feeds. It takes plain values (a [`target::Target`]:
//! endpoint, signer, retry policy; and items to record) and never reads a definition file, a
//! search or a task. Recording (`record.rs`) puts every item in the state database before the
//! first POST; the dispatcher (`dispatch.rs`) claims, signs, sends and commits.

pub mod dispatch;
mod head_watch;
pub mod http;
pub mod id;
mod pace;
pub mod payload;
mod plain;
pub mod record;
pub mod retry;
pub mod signature;
pub mod standard;
pub mod target;
pub mod tls;
mod tls_errors;
pub mod verify;
