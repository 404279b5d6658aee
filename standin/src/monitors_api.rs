//! Monitors API stand-in (TODO).
