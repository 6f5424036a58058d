//! The flow table: 4-tuple → session, with reuse, orientation, timeouts and eviction.
