//! Event capture: which license-database changes are events ([`catalog`]), the triggers and
//! outbox table that record them in the writer's own transaction ([`outbox`]), whether the
//! installed triggers still fit ([`drift`]), and time-based expiry ([`expiry`]); what a
//! webhook's `events` list means ([`names`]) and an event's request body ([`payload`]).
//!
//! Dispatch (outbox rows to deliveries) builds on [`outbox::read_after`] and
//! [`expiry::expired_between`]; it is not here yet.

pub mod catalog;
pub mod drift;
pub mod expiry;
pub mod names;
pub mod outbox;
pub mod payload;
