//! Event capture: which license-database changes are events ([`catalog`]), the triggers and
//! outbox table that record them in the writer's own transaction ([`outbox`]), whether the
//! installed triggers still fit ([`drift`]), and time-based expiry ([`expiry`]); what a
//! webhook's `events` list means ([`names`]) and an event's request body ([`payload`]).
//!
//! On a PostgreSQL license database, [`postgres`] makes the same outbox with PL/pgSQL
//! triggers; a reader takes no row an open transaction could still commit a lower seq than.
//!
//! [`dispatch`] turns outbox rows after the state database's cursor into deliveries, one per
//! subscribed webhook source, recorded with the cursor in one transaction.

pub mod catalog;
pub mod dispatch;
pub mod drift;
pub mod expired;
pub mod expiry;
pub mod names;
pub mod outbox;
pub mod payload;
pub mod postgres;
pub mod sample;
