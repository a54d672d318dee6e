//! The integration tests, one module per feature, built as one test binary: one link instead
//! of one per file, and one process whose test threads share the machine.

mod support;

mod answers;
mod bad_rows;
mod db;
mod demo;
mod dispatch;
mod dry_run;
mod durable;
mod durations;
mod events;
mod events_chaos;
mod events_more;
mod events_pg_both;
mod events_postgres;
mod future_slot;
mod hostile;
mod https;
mod install;
mod license_db;
mod machine_zone;
mod misconfig;
mod payload;
mod pg_state;
mod postgres;
mod receivers;
mod retries;
mod run_task;
mod schedule;
mod signatures;
mod state_paths;
mod watch_reload;
mod webhooks;
