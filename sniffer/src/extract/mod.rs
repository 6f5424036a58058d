//! Saving HTTP bodies as files: MIME filter, safe names, streaming writes, index.jsonl.
