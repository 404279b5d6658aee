//! A Datadog API stand-in for kelpie's tests: it plays Datadog's intake (series, sketches, events, service checks,
//! profiles) and its Monitors API closely enough that kelpie can be tested end to end without an account.

pub mod intake;
pub mod monitors_api;
