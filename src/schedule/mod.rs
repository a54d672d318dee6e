//! Time: the injectable clock and time zones (scheduling itself builds on these).

pub mod clock;
pub mod zone;
