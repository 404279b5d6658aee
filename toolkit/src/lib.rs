//! Service toolkit (TODO).
