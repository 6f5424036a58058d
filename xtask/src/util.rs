//! Helpers shared by the tasks.
