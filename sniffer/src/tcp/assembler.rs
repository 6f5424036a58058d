//! Reassembly of one direction of a TCP session.
