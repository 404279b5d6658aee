//! Intake stand-in (TODO).
