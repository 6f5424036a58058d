//! Helpers for sniffer's integration tests: network namespaces, veth pairs and servers
//! that clean up on drop. The tests themselves are in `tests/tests/`.
