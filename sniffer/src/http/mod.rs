//! HTTP/1.x transactions parsed from reassembled streams.
