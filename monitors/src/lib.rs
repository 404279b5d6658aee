//! Monitors as code (TODO).
