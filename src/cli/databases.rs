//! Arguments of the commands that create or move databases: `db`, `state`, `demo`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::values::license_count;

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create an empty license database with QLM's LicenseKeys, Customers and Products tables
    /// (no change to those that exist).
    Init,

    /// Write a demo license database with licenses spread around today.
    Demo(DbDemoArgs),
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy a SQLite state (tasks, runs, deliveries with their bodies and ids, attempts, bad
    /// rows) into a PostgreSQL state, in one transaction; refused when the target already
    /// holds runs or deliveries, so it never duplicates. Event webhook state is not moved.
    Migrate(StateMigrateArgs),
}

/// Arguments of `state migrate`.
#[derive(Debug, Args)]
pub struct StateMigrateArgs {
    /// The SQLite state file to read (left as it is).
    #[arg(long, value_name = "PATH")]
    pub from: PathBuf,

    /// The PostgreSQL state to fill: `postgres://user@host/db?schema=keyhook`.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Arguments of `db demo`.
#[derive(Debug, Args)]
pub struct DbDemoArgs {
    /// How many licenses to write (at most 100,000,000).
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = license_count)]
    pub licenses: usize,

    /// Seed for the generated data; the same seed and day give the same database.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Replace the database if it already exists.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many licenses the demo database holds (at most 100,000,000).
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = license_count)]
    pub licenses: usize,
}
