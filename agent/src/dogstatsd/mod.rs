//! DogStatsD input: the line parser and the UDP / Unix socket listeners.
//!
//! The listeners ([`listen`]) read datagrams and stream frames on plain OS threads and hand each batch of
//! raw payloads to a [`listen::DatagramSink`]; the sink splits them into lines with [`parse::for_each_line`],
//! which parses each line without allocating ([`parse::parse_line`]) and keeps the `dogstatsd` counters.
//! Numbers are read by [`number`] (once, by the parser) and the origin-cardinality rules are in
//! [`cardinality`].

pub mod cardinality;
pub mod listen;
pub mod number;
pub mod parse;
pub mod queue;

// The input as the agent runs it: origin enrichment and the workers.
pub mod enrich;
pub mod workers;

pub use listen::{
    DatagramSink, LentPacket, ListenError, ListenerConfig, Listeners, Received, Transport,
};
pub use parse::{for_each_line, parse_line, LineArena, LineSink, ParseError};
