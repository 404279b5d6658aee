//! Docker and ECS collection (TODO).
