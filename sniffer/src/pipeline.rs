//! Drives a packet source through decode, the flow table and reassembly into a listener.
