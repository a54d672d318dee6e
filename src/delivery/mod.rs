//! Delivery: the exact payload bytes, their signature, the HTTP POST, and the loop that runs
//! a task's search and sends one request per match.

pub mod http;
pub mod id;
pub mod payload;
pub mod retry;
pub mod run;
pub mod signature;
pub mod standard;
pub mod tls;
mod tls_errors;
mod transport;
pub mod verify;
