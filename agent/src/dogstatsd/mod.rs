//! DogStatsD input: the line parser and the UDP / Unix socket listeners.

pub mod listen;
pub mod parse;
