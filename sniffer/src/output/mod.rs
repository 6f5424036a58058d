//! What the user sees: flow tables, followed streams, JSON lines.
