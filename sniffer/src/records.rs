//! The JSON vocabulary: every record sniffer writes as a JSON line, in one place.
//!
//! `--json` ([`TransactionRecord`]), `index.jsonl` ([`FileRecord`]), `flows --json`
//! ([`FlowRecord`]) and `follow --format json` ([`DataRecord`], [`GapRecord`]) speak the
//! same language, documented field by field in `docs/json.md`, with a JSON Schema per
//! record in `docs/schema/`:
//!
//! - every record starts with `"v": 1` (the schema version, [`VERSION`]) and `"type"` (the
//!   record kind, [`Record::KIND`]);
//! - times (`ts`, `*_ts`) are seconds since the Unix epoch as a number with microsecond
//!   precision, as Zeek writes them; durations (`duration`) are seconds as a number;
//! - the two ends of a session are `orig_ip`/`orig_port` (the client, which opened it) and
//!   `resp_ip`/`resp_port` (the server); per-direction counters are prefixed `orig_` and
//!   `resp_`, and a direction is the string `"orig"` or `"resp"`;
//! - a body's or file's length in bytes is `size`; other byte counts are `*_bytes`;
//! - flow, transaction and file records carry the flow's Community ID v1
//!   (`community_id`), so they join with other tools' records of the same flow;
//! - a record sent to an event sink carries, third, the `sensor` that saw it
//!   ([`Record::to_json_from`]).
//!
//! The records here are plain data; the layer that knows the source builds them
//! (`extract` the file record, `output` the others).

use std::{
    io,
    net::{IpAddr, SocketAddr},
};

use serde::{Serialize, Serializer};

use crate::wire::{Direction, Timestamp};

/// The schema version every record carries as `"v"`. Raised when a field changes meaning
/// or goes away; adding a field does not raise it.
pub const VERSION: u8 = 1;

/// A JSON-lines record: its kind, and how it is written.
pub trait Record: Serialize {
    /// The value of its `"type"` field.
    const KIND: &'static str;

    /// The record as one JSON line, without the newline: `{"v":1,"type":KIND,…}`.
    fn to_json(&self) -> String {
        serde_json::to_string(&Envelope::new(self)).expect("plain data serializes")
    }

    /// The record as one JSON line from a named sensor: `{"v":1,"type":KIND,"sensor":…,…}`
    /// (without `sensor` when it is `None`).
    fn to_json_from(&self, sensor: Option<&str>) -> String {
        let mut envelope = Envelope::new(self);
        envelope.sensor = sensor;
        serde_json::to_string(&envelope).expect("plain data serializes")
    }

    /// Write the record and a newline.
    ///
    /// # Errors
    /// The writer's.
    fn write_line(&self, out: &mut impl io::Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, &Envelope::new(self)).map_err(io::Error::from)?;
        out.write_all(b"\n")
    }
}

/// `{"v": 1, "type": KIND, ["sensor": NAME,] …the record's fields}`.
#[derive(Serialize)]
struct Envelope<'a, R: ?Sized> {
    v: u8,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensor: Option<&'a str>,
    #[serde(flatten)]
    record: &'a R,
}

impl<'a, R: Record + ?Sized> Envelope<'a, R> {
    const fn new(record: &'a R) -> Self {
        Self {
            v: VERSION,
            kind: R::KIND,
            sensor: None,
            record,
        }
    }
}

/// Seconds since the epoch, rounded down to the microsecond, as the JSON number
/// `SECONDS.MICROS` (the f64 nearest that decimal, so it prints as written).
pub fn seconds(ts: Timestamp) -> f64 {
    format!("{}.{:06}", ts.secs(), ts.subsec_nanos() / 1000)
        .parse()
        .expect("a decimal number")
}

/// Serialize a [`Timestamp`] as [`seconds`].
///
/// # Errors
/// The serializer's.
pub fn ts<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(seconds(*ts))
}

/// The two ends of a session, flattened into the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// The client's address (it opened the session).
    pub orig_ip: IpAddr,
    /// The client's port.
    pub orig_port: u16,
    /// The server's address.
    pub resp_ip: IpAddr,
    /// The server's port.
    pub resp_port: u16,
}

impl Endpoints {
    /// From the client and server endpoints.
    pub const fn new(client: SocketAddr, server: SocketAddr) -> Self {
        Self {
            orig_ip: client.ip(),
            orig_port: client.port(),
            resp_ip: server.ip(),
            resp_port: server.port(),
        }
    }

    /// The client, `ADDR:PORT`.
    pub const fn client(&self) -> SocketAddr {
        SocketAddr::new(self.orig_ip, self.orig_port)
    }

    /// The server, `ADDR:PORT`.
    pub const fn server(&self) -> SocketAddr {
        SocketAddr::new(self.resp_ip, self.resp_port)
    }
}

/// One HTTP transaction (`--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransactionRecord {
    /// The response head's time (the request's when there was no response).
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// Stream index of the session (Wireshark's `tcp.stream`).
    pub stream: u64,
    /// Number of the transaction within the session, from 0.
    pub transaction: u64,
    /// The session's ends.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// The flow's Community ID v1 (`1:` + base64 of SHA-1 over the 4-tuple and seed).
    pub community_id: String,
    /// Request method, `-` when the request was not seen.
    pub method: String,
    /// Request URL, null when the request was not seen.
    pub url: Option<String>,
    /// HTTP version (`1.1`, `1.0`, `0.9`): the request's, else the response's.
    pub version: Option<String>,
    /// Response status, null when no response (or no status line: HTTP/0.9) was seen.
    pub status: Option<u16>,
    /// Media type of the response, lower case without parameters.
    pub content_type: Option<String>,
    /// `Content-Encoding` as sent.
    pub content_encoding: Option<String>,
    /// Body bytes: decoded when decoded, else as sent.
    pub size: u64,
    /// The body arrived whole.
    pub complete: bool,
    /// Media type of the request body, lower case without parameters.
    pub request_content_type: Option<String>,
    /// Request body bytes: decoded when decoded, else as sent (0 without a body).
    pub request_size: u64,
    /// Why the framing was refused, the response's or else the request's, if it was.
    pub malformed: Option<String>,
    /// Another reading of an ambiguous request before this one would not see this
    /// request where this one is read (request smuggling); the notes say which.
    pub smuggled: bool,
    /// The saved file's name inside the output directory, if the body was saved.
    pub file: Option<String>,
    /// Why the saved file could not be written whole, if it could not.
    pub file_error: Option<String>,
    /// Files saved from the request body (a multipart form gives one per part).
    pub request_files: Vec<String>,
    /// Notes from parsing and saving.
    pub notes: Vec<String>,
}

impl Record for TransactionRecord {
    const KIND: &'static str = "transaction";
}

/// One saved file (a line of `index.jsonl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    /// The response head's time.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// Stream index of the session.
    pub stream: u64,
    /// Number of the transaction within the session.
    pub transaction: u64,
    /// The session's ends.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// The flow's Community ID v1 (`1:` + base64 of SHA-1 over the 4-tuple and seed).
    pub community_id: String,
    /// Request method (`-` when the request was not seen).
    pub method: String,
    /// Request URL (null when the request was not seen).
    pub url: Option<String>,
    /// Which body the file holds: `resp` (the response's), or `orig` (the request's: an
    /// upload, a form's part).
    pub dir: Direction,
    /// Response status (null for a request body, saved before the response is known,
    /// and for HTTP/0.9, whose response has no status line).
    pub status: Option<u16>,
    /// Media type, lower case without parameters.
    pub content_type: Option<String>,
    /// The media type recognised from the file's first bytes (null when not recognised).
    pub detected_type: Option<String>,
    /// `Content-Encoding` as sent.
    pub content_encoding: Option<String>,
    /// The request's `Range` header.
    pub range: Option<String>,
    /// The response's `Content-Range` header.
    pub content_range: Option<String>,
    /// Bytes in the file.
    pub size: u64,
    /// sha256 of the file, lower-case hex.
    pub sha256: String,
    /// File name inside the output directory.
    pub file: String,
    /// The file holds the whole body, exactly as sent (decoded if it was content-coded).
    pub complete: bool,
    /// `[start, end)` byte ranges of the file that are zero padding for lost bytes; `end`
    /// is null when the true end is unknown.
    pub gaps: Vec<(u64, Option<u64>)>,
    /// Anything else worth knowing (decoding failures, truncation, merges).
    pub notes: Vec<String>,
    /// For a part of a multipart body (a form's file, a byteranges part): its number
    /// within the body, from 0.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub part: Option<PartOf>,
    /// For a file merged from 206 parts: the part files, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
    /// Why the file could not be written whole (the OS error), if it could not; `size`
    /// and `sha256` then describe the bytes that are on disk.
    pub error: Option<String>,
    /// For a radio stream (a response with `icy-*` headers): the station and the track.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub icy: Option<IcyTrack>,
    /// For a file joined from the segments of an HLS playlist.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub hls: Option<HlsJoin>,
}

/// Where a file came from inside a multipart body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PartOf {
    /// Its number within the body, from 1, counting every part the body opens (as the
    /// notes do).
    pub part: u64,
    /// The form field's name (`Content-Disposition: form-data; name=…`).
    pub form_field: Option<String>,
    /// The file name the client gave, as sent (the saved file's name is made safe from
    /// it; this one is not).
    pub filename: Option<String>,
}

/// A radio station, from the `icy-*` response headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Station {
    /// `icy-name`.
    pub name: Option<String>,
    /// `icy-genre`.
    pub genre: Option<String>,
    /// `icy-url`: the station's home page.
    pub url: Option<String>,
    /// `icy-br`, kbit/s.
    pub bitrate: Option<u32>,
}

/// A file of a radio stream: one track (or, unsplit, the whole stream), metadata removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IcyTrack {
    /// The station.
    pub station: Station,
    /// `StreamTitle` of the track (null when the stream sent none).
    pub title: Option<String>,
    /// `StreamUrl` sent with the title.
    pub stream_url: Option<String>,
    /// Number of the track in the stream, from 1; null for a stream kept whole.
    pub track: Option<u64>,
    /// Byte offset of the file's first byte in the stream's audio (metadata removed).
    pub offset: u64,
}

/// A file joined from the segments of one HLS media playlist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HlsJoin {
    /// The media playlist's URL.
    pub playlist: String,
    /// Segments joined into the file.
    pub segments: u64,
    /// Media sequence numbers `[first, last]` (inclusive) missing between the first and
    /// the last segment joined.
    pub holes: Vec<(u64, u64)>,
}

impl Record for FileRecord {
    const KIND: &'static str = "file";
}

/// A saved file deleted to stay within the disk budget (a line of `index.jsonl`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EvictedRecord {
    /// When it was deleted (wall clock).
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// The deleted file's name inside the output directory.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256, when known (null for files found in the directory at start).
    pub sha256: Option<String>,
    /// Why it was deleted.
    pub reason: String,
}

impl Record for EvictedRecord {
    const KIND: &'static str = "evicted";
}

/// One TCP session (`flows --json`), written when it leaves the session table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowRecord {
    /// Its first packet.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// Last packet minus first, in seconds.
    pub duration: f64,
    /// Stream index (Wireshark's `tcp.stream`).
    pub stream: u64,
    /// The session's ends.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// The flow's Community ID v1 (`1:` + base64 of SHA-1 over the 4-tuple and seed).
    pub community_id: String,
    /// Packets client → server.
    pub orig_packets: u64,
    /// TCP payload bytes client → server, as on the wire (retransmissions included).
    pub orig_bytes: u64,
    /// Packets server → client.
    pub resp_packets: u64,
    /// TCP payload bytes server → client, as on the wire.
    pub resp_bytes: u64,
    /// Bytes reassembled client → server, each byte once.
    pub orig_delivered_bytes: u64,
    /// Bytes reassembled server → client.
    pub resp_delivered_bytes: u64,
    /// How the session ended: `fin`, `rst`, `timeout`, `evicted` or `open`.
    pub state: String,
    /// SYN and SYN-ACK were both seen.
    pub handshake: bool,
    /// First seen without its SYN (picked up mid-stream).
    pub midstream: bool,
    /// Bytes declared missing, both ways.
    pub gap_bytes: u64,
    /// Retransmitted bytes that differed from the first copy, both ways (first wins).
    pub conflict_bytes: u64,
    /// Retransmitted bytes, both ways.
    pub retransmitted_bytes: u64,
}

impl Record for FlowRecord {
    const KIND: &'static str = "flow";
}

/// A health line: what a run has counted so far (`--stats-interval` on stderr, and the
/// `stats` events every `--events-stats-interval`). Fields that do not apply to a run
/// (the kernel counters of a file, the files of `flows`, a budget that was not set) are
/// null, so every line has the same keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatsRecord {
    /// When it was taken (wall clock).
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// Seconds since the run started.
    pub duration: f64,
    /// Live capture: packets the kernel filter ran on (null when reading files).
    pub kernel_seen: Option<u64>,
    /// Live capture: packets the kernel filter matched.
    pub kernel_matched: Option<u64>,
    /// Live capture: records the kernel lost because the ring buffer was full.
    pub kernel_ring_full: Option<u64>,
    /// Live capture: packets whose copy into the ring failed.
    pub kernel_copy_failed: Option<u64>,
    /// Live capture: packets matched and not handed over (ring full, failed copies).
    pub dropped_packets: Option<u64>,
    /// Frames read by userspace.
    pub frames: u64,
    /// Captured bytes read by userspace.
    pub captured_bytes: u64,
    /// Frames shorter than on the wire (cut at the snap length).
    pub truncated: u64,
    /// Sessions opened.
    pub sessions: u64,
    /// Sessions in the table now.
    pub sessions_live: u64,
    /// Sessions evicted to stay within the session or memory bounds.
    pub evicted: u64,
    /// Gaps declared, all sessions.
    pub gaps: u64,
    /// Bytes never captured (declared gaps), all sessions.
    pub gap_bytes: u64,
    /// Memory the sessions hold now (table, reassembly, HTTP state, open files).
    pub memory_bytes: u64,
    /// The bound on `memory_bytes` (`--memcap`).
    pub memcap_bytes: u64,
    /// HTTP transactions seen (null for commands that do not parse HTTP).
    pub transactions: Option<u64>,
    /// Files saved (null for commands that save none).
    pub files: Option<u64>,
    /// Of those, marked incomplete.
    pub files_incomplete: Option<u64>,
    /// Files that could not be created or written whole.
    pub files_failed: Option<u64>,
    /// Bytes in saved files.
    pub file_bytes: Option<u64>,
    /// The bound on the output directory (`--max-disk`), when one is set.
    pub disk_budget_bytes: Option<u64>,
    /// Records delivered to every event destination, summed.
    pub events_sent: u64,
    /// Records dropped (queue full, refused, undelivered at exit), summed.
    pub events_dropped: u64,
}

impl Record for StatsRecord {
    const KIND: &'static str = "stats";
}

/// Bytes of one direction of a followed session (`follow --format json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DataRecord {
    /// When the first of these bytes was captured.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// Stream index.
    pub stream: u64,
    /// Which way the bytes went.
    pub dir: Direction,
    /// The session's ends.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Stream offset of the first byte in its direction.
    pub offset: u64,
    /// Number of bytes.
    pub size: u64,
    /// The bytes, lower-case hex.
    pub hex: String,
}

impl Record for DataRecord {
    const KIND: &'static str = "data";
}

/// Bytes of one direction of a followed session that were never captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GapRecord {
    /// When the loss was declared.
    #[serde(serialize_with = "ts")]
    pub ts: Timestamp,
    /// Stream index.
    pub stream: u64,
    /// Which way the bytes went.
    pub dir: Direction,
    /// The session's ends.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Stream offset of the first missing byte.
    pub offset: u64,
    /// Number of missing bytes.
    pub size: u64,
}

impl Record for GapRecord {
    const KIND: &'static str = "gap";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_numbers_with_microseconds() {
        let t = Timestamp::from_parts(1_795_695_540, 62_181_999);
        assert_eq!(seconds(t).to_string(), "1795695540.062181");
        assert_eq!(seconds(Timestamp::from_parts(7, 0)).to_string(), "7");
        let max_micros = Timestamp::from_parts(4_102_444_800, 999_999_000);
        assert_eq!(seconds(max_micros).to_string(), "4102444800.999999");
    }

    #[test]
    fn every_record_starts_with_version_and_type() {
        let ends = Endpoints::new(
            "10.0.0.1:5000".parse().unwrap(),
            "[fd00::2]:80".parse().unwrap(),
        );
        let gap = GapRecord {
            ts: Timestamp::from_parts(1, 500_000_000),
            stream: 3,
            dir: Direction::Resp,
            endpoints: ends,
            offset: 10,
            size: 4,
        };
        assert_eq!(
            gap.to_json(),
            r#"{"v":1,"type":"gap","ts":1.5,"stream":3,"dir":"resp","orig_ip":"10.0.0.1","orig_port":5000,"resp_ip":"fd00::2","resp_port":80,"offset":10,"size":4}"#
        );
        let mut out = Vec::new();
        gap.write_line(&mut out).unwrap();
        assert_eq!(out, format!("{}\n", gap.to_json()).into_bytes());
        assert_eq!(
            gap.to_json_from(Some("h1")),
            gap.to_json()
                .replace(r#""type":"gap","#, r#""type":"gap","sensor":"h1","#)
        );
        assert_eq!(gap.to_json_from(None), gap.to_json());
        assert_eq!(ends.client().to_string(), "10.0.0.1:5000");
        assert_eq!(ends.server().to_string(), "[fd00::2]:80");
    }
}
