//! HTTP/1.x transactions parsed from reassembled streams.
//!
//! [`HttpAnalyzer`] is a [`Listener`]: give it to the pipeline and it parses requests
//! (client → server) and responses (server → client) of every session with httparse,
//! pairs them in order (keep-alive and pipelining), strips the transfer framing,
//! decodes content codings, and reports to an [`HttpListener`]:
//!
//! - [`HttpListener::response_head`] when a response head is parsed: say whether its body
//!   is wanted;
//! - [`HttpListener::body`] with the wanted body as it streams by ([`BodyEvent`]: raw
//!   bytes, decoded bytes, gaps);
//! - [`HttpListener::http_transaction`] once the transaction is complete (request head,
//!   response head, body summary), or when its session ends without a response.
//!
//! [`WholeBodies`] adapts this to one callback per transaction with the whole body (within
//! a bound), the way Perl's Net::Analysis listeners received HTTP transactions.
//!
//! Framing that cannot be trusted (conflicting lengths, length with chunked, bad chunk
//! sizes, endless heads) is never guessed: the message is reported with
//! [`Transaction::malformed`] set, no body is delivered, and parsing resumes at the next
//! line that starts a message.
//!
//! A session's parser state is created by its first byte (or gap), not when the session
//! starts, so sessions that never carry data (a SYN flood) cost nothing here. The
//! analyzer keeps a running count of the memory its sessions hold, and reports it, with
//! its listener's ([`HttpListener::memory_in_use`]), as [`Listener::memory_in_use`]: the
//! flow table's memcap counts it.

mod body;
pub mod icy;
pub mod parser;
pub mod range;
mod smuggle;
pub mod whole;

use std::{collections::VecDeque, net::SocketAddr};

pub use body::Coding;
use body::{Chunked, Decoder};
pub use parser::Version;
use parser::{FirstLine, Framing};
pub use range::ContentRange;
use smuggle::Smuggle;
pub use whole::{Body, WholeBodies};

use crate::{
    listener::{Direction, EndReason, Listener, SessionInfo},
    wire::Timestamp,
};

/// Bounds on what one session may make the parser hold or produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest message head (and chunked trailer section), in bytes.
    pub max_head_bytes: usize,
    /// Transactions per session; beyond it the session is no longer parsed.
    pub max_transactions: u64,
    /// Requests waiting for their response; beyond it requests are no longer parsed.
    pub max_pending_requests: usize,
    /// Largest chunk size accepted.
    pub max_chunk_size: u64,
    /// Content codings stacked on one body.
    pub max_codings: usize,
    /// Decoded bytes per body.
    pub max_decoded_bytes: u64,
    /// Decoded bytes per encoded byte (plus 1 MiB of slack).
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 64 * 1024,
            max_transactions: 100_000,
            max_pending_requests: 4096,
            max_chunk_size: 1 << 32,
            max_codings: 2,
            max_decoded_bytes: 4 << 30,
            max_ratio: 200,
        }
    }
}

/// Why a message's framing was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Two Content-Length values that differ.
    #[error("conflicting Content-Length values {first} and {second}")]
    ConflictingLength {
        /// The first value.
        first: u64,
        /// The value that disagrees.
        second: u64,
    },
    /// A Content-Length that is not a decimal number.
    #[error("Content-Length {0:?} is not a number")]
    BadLength(String),
    /// A chunk-size line that does not parse.
    #[error("bad chunk-size line {0:?}")]
    BadChunkSize(String),
    /// A chunk larger than allowed.
    #[error("chunk size {} over the limit of {max}", size.map_or_else(|| "of more than 15 hex digits".to_owned(), |s| s.to_string()))]
    OversizedChunk {
        /// The size, when it fits in 60 bits.
        size: Option<u64>,
        /// The limit.
        max: u64,
    },
    /// Chunk data not followed by CRLF.
    #[error("chunk data followed by byte {0:#04x} instead of CRLF")]
    BadChunkEnd(u8),
    /// A head (or trailer section) with no end within the limit.
    #[error("head longer than {limit} bytes without an end")]
    HeadTooLong {
        /// The limit.
        limit: usize,
    },
    /// A head httparse refused.
    #[error("head does not parse ({0})")]
    BadHead(String),
    /// A Content-Length or Transfer-Encoding line that does not parse.
    #[error("framing header line {0:?} does not parse")]
    BadFramingHeader(String),
}

/// A request method.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: its response has no body.
    Head,
    /// POST.
    Post,
    /// CONNECT: a 2xx answer turns the session into a tunnel.
    Connect,
    /// Any other token.
    Other(String),
}

impl Method {
    fn from_token(t: &str) -> Self {
        match t {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "CONNECT" => Self::Connect,
            t => Self::Other(t.to_owned()),
        }
    }

    /// The method's token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Connect => "CONNECT",
            Self::Other(t) => t,
        }
    }
}

/// Version and headers of a message, as they were sent (order and case kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageHead {
    /// The version of its start line (HTTP/0.9 has no head: no headers either).
    pub version: Version,
    /// Name and raw value of each header.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Content-Length or Transfer-Encoding lines httparse could not parse (and dropped),
    /// as lossy text: the framing they meant is unknown, so the body is refused.
    pub unparsed_framing: Vec<String>,
}

impl MessageHead {
    /// The first header of this name (case-insensitive), as raw bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// A header as text (lossy).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
    }

    /// Media type in lower case without parameters (`audio/mpeg`), if any.
    pub fn content_type(&self) -> Option<String> {
        let v = self.header_str("content-type")?;
        let t = v.split(';').next().unwrap_or_default().trim();
        (!t.is_empty()).then(|| t.to_ascii_lowercase())
    }
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request target as sent (origin form `/path?q`, or absolute form for proxies).
    pub uri: Vec<u8>,
    /// Version and headers.
    pub head: MessageHead,
    /// When its head was complete.
    pub ts: Timestamp,
    /// Stream offset of its first byte in the client's direction.
    pub offset: u64,
    /// The server's stream offset (bytes seen from it) when this request was complete.
    /// A response can only start at or after it; used to re-pair after a loss.
    pub server_offset: u64,
    /// The number its transaction gets within the session (requests are numbered in the
    /// order they were sent; a response is paired with the oldest unanswered request).
    pub number: u64,
    /// Its body, as far as it was seen by the time the transaction is reported (`framing`
    /// is `None` or `Some(Framing::None)` when it had none).
    pub body: BodyInfo,
    /// What is odd about it: ambiguous framing, folded header lines, HTTP/0.9.
    pub notes: Vec<String>,
    /// Another reading of the stream (the other framing of an ambiguous request before
    /// it) does not see this request, or sees it where this parser does not: a request
    /// smuggled past one of the two readers.
    pub smuggled: bool,
    /// Why its framing was refused, if it was (its body was not delivered, and parsing
    /// looked for the next request).
    pub malformed: Option<Malformed>,
}

impl Request {
    /// `http://HOST/URI` from the Host header (or `server`), or the URI itself when it is
    /// already absolute. Non-UTF-8 bytes are replaced.
    pub fn url(&self, server: SocketAddr) -> String {
        let uri = String::from_utf8_lossy(&self.uri);
        if uri.contains("://") {
            return uri.into_owned();
        }
        let host = self
            .head
            .header_str("host")
            .unwrap_or_else(|| server.to_string());
        format!("http://{host}{uri}")
    }
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Version and headers.
    pub head: MessageHead,
    /// When its head was complete.
    pub ts: Timestamp,
    /// Stream offset of its first byte in the server's direction.
    pub offset: u64,
}

impl Response {
    /// Media type in lower case without parameters (`audio/mpeg`), if any.
    pub fn content_type(&self) -> Option<String> {
        self.head.content_type()
    }
}

/// What is known of a response body; final when [`HttpListener::http_transaction`] runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodyInfo {
    /// How the body is delimited (`None` before the response head).
    pub framing: Option<Framing>,
    /// Content codings as applied (empty: identity).
    pub codings: Vec<Coding>,
    /// Entity bytes seen after transfer decoding (content-coded as sent), gaps included.
    pub raw_len: u64,
    /// Decoded bytes delivered (equal to `raw_len` for identity bodies).
    pub decoded_len: u64,
    /// Byte ranges `[start, end)` of the raw entity that never arrived; `end` is `None`
    /// when the loss also took the framing, so the true end is unknown.
    pub gaps: Vec<(u64, Option<u64>)>,
    /// The body arrived whole: framing reached its end with no gap.
    pub complete: bool,
    /// Why content decoding failed or was not attempted, if it did.
    pub decode_error: Option<String>,
    /// Other facts worth telling (why the body is incomplete, and so on).
    pub notes: Vec<String>,
}

/// One request/response exchange. Updated in place while its body streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Stream index of its session.
    pub stream: u64,
    /// Number within the session, from 0, in response order.
    pub number: u64,
    /// Client endpoint.
    pub client: SocketAddr,
    /// Server endpoint.
    pub server: SocketAddr,
    /// The request, unless it was not seen (mid-stream capture, loss).
    pub request: Option<Request>,
    /// The response, unless the session ended first.
    pub response: Option<Response>,
    /// The response body. (In the request-body calls of [`HttpListener`], where
    /// `response` is `None`, the request's body.)
    pub body: BodyInfo,
    /// Set when the response's framing was refused: no body was delivered.
    pub malformed: Option<Malformed>,
}

impl Transaction {
    /// The request's URL, or `None` when the request was not seen.
    pub fn url(&self) -> Option<String> {
        self.request.as_ref().map(|r| r.url(self.server))
    }

    /// The request method, or `-`.
    pub fn method(&self) -> &str {
        self.request.as_ref().map_or("-", |r| r.method.as_str())
    }

    /// The HTTP version: the request's, else the response's.
    pub fn version(&self) -> Option<Version> {
        self.request
            .as_ref()
            .map(|r| r.head.version)
            .or_else(|| self.response.as_ref().map(|r| r.head.version))
    }

    /// Why the framing was refused, the response's or else the request's.
    pub fn malformed(&self) -> Option<&Malformed> {
        self.malformed
            .as_ref()
            .or_else(|| self.request.as_ref().and_then(|r| r.malformed.as_ref()))
    }
}

/// A piece of a wanted response body, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyEvent<'a> {
    /// Entity bytes after transfer decoding, still content-coded, at this raw offset.
    Raw {
        /// Offset in the raw entity.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Decoded bytes of a content-coded body, at this decoded offset. Not sent for
    /// identity bodies (their `Raw` bytes are the decoded ones).
    Decoded {
        /// Offset in the decoded entity.
        offset: u64,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Raw bytes `[offset, offset + len)` never arrived.
    Gap {
        /// Offset in the raw entity.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// Content decoding stopped here; only `Raw` events follow.
    DecodeFailed {
        /// Why.
        reason: &'a str,
    },
}

/// Receives HTTP transactions: the `http_transaction` part of the event API.
pub trait HttpListener {
    /// A response head was parsed (`tx.response` is set, the body not yet seen). Return
    /// true to receive its body through [`Self::body`].
    fn response_head(&mut self, _tx: &Transaction) -> bool {
        false
    }

    /// A piece of a body asked for in [`Self::response_head`].
    fn body(&mut self, _tx: &Transaction, _event: BodyEvent<'_>) {}

    /// A request with a body was parsed: `tx.request` is set, `tx.response` is `None`,
    /// and `tx.body` is the request's body (its framing and codings; nothing seen yet).
    /// Return true to receive that body through [`Self::request_body`].
    fn request_head(&mut self, _tx: &Transaction) -> bool {
        false
    }

    /// A piece of a request body asked for in [`Self::request_head`] (`tx.body` is the
    /// request's body so far).
    fn request_body(&mut self, _tx: &Transaction, _event: BodyEvent<'_>) {}

    /// As [`Self::wants_more_body`], for a request body.
    fn wants_more_request_body(&mut self, _tx: &Transaction) -> bool {
        true
    }

    /// A request body is over (whether or not it was asked for): `tx.body` is its
    /// summary. Its transaction is reported later, by [`Self::http_transaction`], with
    /// the same summary in `tx.request.body` (unless its response came first).
    fn request_done(&mut self, _tx: &Transaction) {}

    /// Asked after each piece of a body delivered through [`Self::body`]: return false to
    /// receive no more of it (once its first bytes showed it is not wanted after all).
    /// The transaction is still reported by [`Self::http_transaction`].
    fn wants_more_body(&mut self, _tx: &Transaction) -> bool {
        true
    }

    /// The capture time of the bytes about to be parsed; called before the events they
    /// cause, so a listener can tell when something inside a long body happened.
    fn packet_time(&mut self, _ts: Timestamp) {}

    /// A transaction is over: the response body ended, the framing was refused, or the
    /// session ended (then `tx.response` may be `None`).
    fn http_transaction(&mut self, _tx: &Transaction) {}

    /// Ask the capture to stop (as `--once` does after the first saved file).
    fn should_stop(&self) -> bool {
        false
    }

    /// Bytes held for transactions in progress (bodies being gathered or written): the
    /// analyzer adds them to its own for [`Listener::memory_in_use`]. Keep a running count;
    /// this is asked after every packet.
    fn memory_in_use(&self) -> u64 {
        0
    }
}

/// What the analyzer counted, for the closing report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpStats {
    /// Request heads parsed.
    pub requests: u64,
    /// Final response heads parsed (1xx not counted).
    pub responses: u64,
    /// Transactions reported.
    pub transactions: u64,
    /// Interim (1xx) responses skipped.
    pub interim: u64,
    /// Messages whose framing was refused.
    pub malformed: u64,
    /// Response bodies that ended incomplete.
    pub incomplete_bodies: u64,
    /// Bodies whose content decoding failed.
    pub decode_failures: u64,
    /// Times parsing lost its place (gap, refusal) and looked for the next message.
    pub resyncs: u64,
    /// Sessions that stopped being parsed: CONNECT or Upgrade.
    pub tunnels: u64,
    /// Sessions that stopped being parsed at the transaction or queue cap.
    pub capped_sessions: u64,
    /// Sessions whose first bytes were not HTTP.
    pub not_http: u64,
    /// Requests that never got a response.
    pub unanswered: u64,
    /// Request bodies seen (POST, PUT, uploads).
    pub request_bodies: u64,
    /// HTTP/0.9 requests (no version on the request line).
    pub http09: u64,
    /// Messages whose framing was ambiguous (Content-Length with Transfer-Encoding,
    /// differing Content-Lengths, a request Transfer-Encoding not ending in chunked,
    /// framing headers folded over lines): read as RFC 9112 §6.3 says, and noted.
    pub ambiguous_framing: u64,
    /// Requests that another reading of an ambiguous request would see differently:
    /// reported marked `smuggled`.
    pub smuggled: u64,
}

/// Where one direction's parser stands.
#[derive(Debug)]
enum SideState {
    /// Expecting (or inside) a message head.
    Head,
    /// Inside a body with this framing.
    Body(BodyFraming),
    /// Lost its place: waiting for bytes that start a message.
    Resync,
    /// Request side after CONNECT or an Upgrade request: wait for the answer.
    AwaitTunnel,
    /// No longer parsed.
    Closed,
}

#[derive(Debug)]
enum BodyFraming {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// One direction of one session.
///
/// Invariant: `head` holds a partial head only in state `Head`, never more than
/// `max_head_bytes`; `next_offset` is the stream offset of the next byte expected.
#[derive(Debug)]
struct Side {
    state: SideState,
    head: Vec<u8>,
    scanned: usize,
    head_offset: u64,
    next_offset: u64,
    /// No message has been parsed yet on this side.
    fresh: bool,
    /// Parsing resumed after a loss (or a mid-stream start): the next response's
    /// request must be found again.
    after_loss: bool,
}

impl Side {
    fn new(midstream: bool) -> Self {
        Self {
            state: if midstream {
                SideState::Resync
            } else {
                SideState::Head
            },
            head: Vec::new(),
            scanned: 0,
            head_offset: 0,
            next_offset: 0,
            fresh: true,
            after_loss: midstream,
        }
    }
}

/// The response whose body is streaming.
struct Current {
    tx: Transaction,
    wanted: bool,
    decoder: Option<Decoder>,
    /// Heap bytes of `tx`'s request and response heads.
    heads: u64,
    /// [`Decoder::memory`] of `decoder`, while there is one.
    decoder_memory: u64,
}

impl Current {
    /// Heap bytes held, O(1): the heads, the lists that grow while the body streams, and
    /// the decoder.
    fn memory(&self) -> u64 {
        let body = &self.tx.body;
        self.heads
            + (body.gaps.capacity() * size_of::<(u64, Option<u64>)>()) as u64
            + (body.notes.capacity() * size_of::<String>()) as u64
            + if self.decoder.is_some() {
                self.decoder_memory
            } else {
                0
            }
    }
}

/// Heap bytes of a message head.
fn head_heap(h: &MessageHead) -> u64 {
    let headers: usize = h
        .headers
        .iter()
        .map(|(n, v)| n.capacity() + v.capacity())
        .sum();
    let unparsed: usize = h.unparsed_framing.iter().map(String::capacity).sum();
    (headers
        + h.headers.capacity() * size_of::<(String, Vec<u8>)>()
        + unparsed
        + h.unparsed_framing.capacity() * size_of::<String>()) as u64
}

/// Heap bytes of a request.
fn request_heap(r: &Request) -> u64 {
    let method = match &r.method {
        Method::Other(t) => t.capacity(),
        _ => 0,
    };
    let notes: usize = r.notes.iter().map(String::capacity).sum();
    (r.uri.capacity() + method + notes + r.notes.capacity() * size_of::<String>()) as u64
        + head_heap(&r.head)
        + (r.body.gaps.capacity() * size_of::<(u64, Option<u64>)>()
            + r.body.notes.capacity() * size_of::<String>()) as u64
}

/// Requests waiting for their response, with a running count of their heap bytes.
#[derive(Default)]
struct Pending {
    queue: VecDeque<Request>,
    heap: u64,
}

impl Pending {
    fn push_back(&mut self, r: Request) {
        self.heap += request_heap(&r);
        self.queue.push_back(r);
    }

    fn pop_front(&mut self) -> Option<Request> {
        let r = self.queue.pop_front()?;
        self.heap -= request_heap(&r);
        Some(r)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn memory(&self) -> u64 {
        self.heap + (self.queue.capacity() * size_of::<Request>()) as u64
    }
}

impl std::ops::Index<usize> for Pending {
    type Output = Request;
    fn index(&self, i: usize) -> &Request {
        &self.queue[i]
    }
}

/// One session's HTTP state, created by its first data or gap.
struct Session {
    info: SessionInfo,
    sides: [Side; 2],
    pending: Pending,
    /// Boxed: most sessions have no response streaming most of the time.
    current: Option<Box<Current>>,
    /// The request body streaming, if any (boxed, as `current`).
    upload: Option<Box<Current>>,
    /// Transactions reported.
    transactions: u64,
    /// The number the next request (or a response without one) gets.
    next_number: u64,
    /// Only after an ambiguous request: where other readings would find requests.
    smuggle: Option<Box<Smuggle>>,
    /// What [`Self::memory`] was when the analyzer's total last counted it.
    counted: u64,
}

/// What a session costs the analyzer beside its heap: the session (boxed), and its share
/// of the session map (at most two buckets of key and box, with control bytes, per entry).
const SESSION_BYTES: u64 =
    (size_of::<Session>() + 2 * (size_of::<(u64, Box<Session>)>() + 1)) as u64;

impl Session {
    fn new(info: &SessionInfo) -> Self {
        Self {
            info: info.clone(),
            sides: [Side::new(info.midstream), Side::new(info.midstream)],
            pending: Pending::default(),
            current: None,
            upload: None,
            transactions: 0,
            next_number: 0,
            smuggle: None,
            counted: 0,
        }
    }

    /// Memory held for this session, O(1).
    fn memory(&self) -> u64 {
        let side = |s: &Side| {
            let chunk_line = match &s.state {
                SideState::Body(BodyFraming::Chunked(c)) => c.line_capacity(),
                _ => 0,
            };
            (s.head.capacity() + chunk_line) as u64
        };
        SESSION_BYTES
            + side(&self.sides[0])
            + side(&self.sides[1])
            + self.pending.memory()
            + self
                .current
                .as_ref()
                .map_or(0, |c| size_of::<Current>() as u64 + c.memory())
            + self
                .upload
                .as_ref()
                .map_or(0, |c| size_of::<Current>() as u64 + c.memory())
            + self.smuggle.as_ref().map_or(0, |m| m.memory())
    }
}

/// Parses HTTP/1.x from reassembled sessions and reports to an [`HttpListener`].
///
/// Invariant: `memory` is the sum of `counted` over `sessions`.
pub struct HttpAnalyzer<L> {
    core: Core<L>,
    sessions: std::collections::HashMap<u64, Box<Session>, foldhash::fast::RandomState>,
    memory: u64,
}

/// Everything but the session table, so a session and the rest borrow apart.
struct Core<L> {
    listener: L,
    limits: Limits,
    stats: HttpStats,
}

impl<L: HttpListener> HttpAnalyzer<L> {
    /// An analyzer reporting to `listener`.
    pub fn new(listener: L, limits: Limits) -> Self {
        Self {
            core: Core {
                listener,
                limits,
                stats: HttpStats::default(),
            },
            sessions: std::collections::HashMap::default(),
            memory: 0,
        }
    }

    /// The listener.
    pub fn listener(&self) -> &L {
        &self.core.listener
    }

    /// The listener, mutably.
    pub fn listener_mut(&mut self) -> &mut L {
        &mut self.core.listener
    }

    /// Give the listener back.
    pub fn into_listener(self) -> L {
        self.core.listener
    }

    /// What was counted so far.
    pub fn stats(&self) -> &HttpStats {
        &self.core.stats
    }

    /// Sessions being parsed (those that carried data).
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Memory held for the sessions being parsed (the listener's not included).
    pub const fn memory(&self) -> u64 {
        self.memory
    }

    /// End every session still open, as the end of the capture does. Open bodies are
    /// reported incomplete. Safe to call after the pipeline already ended them.
    pub fn finish(&mut self) {
        let mut open: Vec<u64> = self.sessions.keys().copied().collect();
        open.sort_unstable();
        for stream in open {
            if let Some(s) = self.sessions.remove(&stream) {
                self.memory -= s.counted;
                self.core.end_session(s, EndReason::EndOfCapture);
            }
        }
    }
}

/// A body event to the listener: a response's ([`Direction::Resp`]) or a request's.
#[inline]
fn emit<L: HttpListener>(listener: &mut L, dir: Direction, tx: &Transaction, e: BodyEvent<'_>) {
    match dir {
        Direction::Resp => listener.body(tx, e),
        Direction::Orig => listener.request_body(tx, e),
    }
}

/// Whether the listener wants more of a response's or a request's body.
#[inline]
fn wants_more<L: HttpListener>(listener: &mut L, dir: Direction, tx: &Transaction) -> bool {
    match dir {
        Direction::Resp => listener.wants_more_body(tx),
        Direction::Orig => listener.wants_more_request_body(tx),
    }
}

/// Pass raw entity bytes of `dir`'s body to the listener (and through the decoder).
fn body_bytes<L: HttpListener>(
    listener: &mut L,
    stats: &mut HttpStats,
    cur: &mut Current,
    bytes: &[u8],
    dir: Direction,
) {
    let offset = cur.tx.body.raw_len;
    cur.tx.body.raw_len += bytes.len() as u64;
    if !cur.wanted {
        return;
    }
    let tx = &mut cur.tx;
    emit(listener, dir, tx, BodyEvent::Raw { offset, bytes });
    if let Some(dec) = &mut cur.decoder {
        let mut decoded = tx.body.decoded_len;
        let r = dec.feed(bytes, &mut |b| {
            emit(
                listener,
                dir,
                tx,
                BodyEvent::Decoded {
                    offset: decoded,
                    bytes: b,
                },
            );
            decoded += b.len() as u64;
        });
        tx.body.decoded_len = decoded;
        if let Err(e) = r {
            stats.decode_failures += 1;
            let reason = format!("content decoding failed: {e}");
            emit(
                listener,
                dir,
                tx,
                BodyEvent::DecodeFailed { reason: &reason },
            );
            tx.body.decode_error = Some(reason);
            cur.decoder = None;
        }
    }
    if !wants_more(listener, dir, &cur.tx) {
        cur.wanted = false;
        cur.decoder = None;
    }
}

impl<L: HttpListener> Core<L> {
    fn end_session(&mut self, mut s: Box<Session>, reason: EndReason) {
        if let Some(up) = s.upload.as_mut() {
            let how = match &s.sides[0].state {
                SideState::Body(BodyFraming::Length(rem)) => {
                    let at = up.tx.body.raw_len;
                    up.tx.body.gaps.push((at, Some(at + rem)));
                    format!("{rem} bytes of it never came")
                }
                _ => {
                    up.tx.body.gaps.push((up.tx.body.raw_len, None));
                    "the chunked body did not reach its last chunk".to_owned()
                }
            };
            up.tx.body.notes.push(format!(
                "session ended ({reason}) inside the request body: {how}"
            ));
            self.finish_upload(&mut s, false);
        }
        if let Some(mut cur) = s.current.take() {
            let until_close = matches!(s.sides[1].state, SideState::Body(BodyFraming::UntilClose));
            let complete = until_close && reason == EndReason::Fin;
            if !complete {
                let how = match &s.sides[1].state {
                    SideState::Body(BodyFraming::Length(rem)) => {
                        let at = cur.tx.body.raw_len;
                        cur.tx.body.gaps.push((at, Some(at + rem)));
                        format!("{rem} bytes of the body never came")
                    }
                    SideState::Body(BodyFraming::Chunked(_)) => {
                        cur.tx.body.gaps.push((cur.tx.body.raw_len, None));
                        "the chunked body did not reach its last chunk".to_owned()
                    }
                    _ => "read until close, but the connection did not close with FIN".to_owned(),
                };
                cur.tx
                    .body
                    .notes
                    .push(format!("session ended ({reason}) inside the body: {how}"));
            }
            self.finish_body(&mut cur, complete);
        }
        while let Some(req) = s.pending.pop_front() {
            self.report_unanswered(&mut s, req, Vec::new());
        }
    }

    /// Bytes lost inside the request body being read.
    fn upload_gap(&mut self, s: &mut Session, len: u64, framing_lost: bool) {
        if let Some(mut up) = s.upload.take() {
            self.body_gap(&mut up, len, framing_lost, Direction::Orig);
            s.upload = Some(up);
        }
    }

    /// Report a request whose response never came; `notes` say why, if known.
    fn report_unanswered(&mut self, s: &mut Session, req: Request, notes: Vec<String>) {
        self.stats.unanswered += 1;
        self.stats.transactions += 1;
        let tx = Transaction {
            stream: s.info.stream,
            number: req.number,
            client: s.info.client,
            server: s.info.server,
            request: Some(req),
            response: None,
            body: BodyInfo {
                notes,
                ..BodyInfo::default()
            },
            malformed: None,
        };
        s.transactions += 1;
        self.listener.http_transaction(&tx);
    }

    /// A body is over: flush the decoder and fill in the summary.
    fn close_body(&mut self, cur: &mut Current, complete: bool, dir: Direction) {
        cur.tx.body.complete = complete && cur.tx.body.gaps.is_empty();
        if let Some(mut dec) = cur.decoder.take() {
            let (listener, tx) = (&mut self.listener, &mut cur.tx);
            let mut pending: Vec<u8> = Vec::new();
            let r = dec.finish(&mut |b| pending.extend_from_slice(b));
            if !pending.is_empty() {
                emit(
                    listener,
                    dir,
                    tx,
                    BodyEvent::Decoded {
                        offset: tx.body.decoded_len,
                        bytes: &pending,
                    },
                );
                tx.body.decoded_len += pending.len() as u64;
            }
            if let Err(e) = r {
                self.stats.decode_failures += 1;
                let reason = format!("content decoding failed: {e}");
                emit(
                    listener,
                    dir,
                    tx,
                    BodyEvent::DecodeFailed { reason: &reason },
                );
                tx.body.decode_error = Some(reason);
            }
        } else if cur.tx.body.codings.is_empty() {
            cur.tx.body.decoded_len = cur.tx.body.raw_len;
        }
        if !cur.tx.body.complete {
            self.stats.incomplete_bodies += 1;
        }
    }

    /// The response body is over: summary, report.
    fn finish_body(&mut self, cur: &mut Current, complete: bool) {
        self.close_body(cur, complete, Direction::Resp);
        self.stats.transactions += 1;
        self.listener.http_transaction(&cur.tx);
    }

    /// The request body is over: summary, told to the listener, and kept with its
    /// request for the transaction (unless the response came first).
    fn finish_upload(&mut self, s: &mut Session, complete: bool) {
        let Some(mut cur) = s.upload.take() else {
            return;
        };
        self.close_body(&mut cur, complete, Direction::Orig);
        self.listener.request_done(&cur.tx);
        let number = cur.tx.number;
        if let Some(r) = s
            .pending
            .queue
            .iter_mut()
            .rev()
            .find(|r| r.number == number)
        {
            let before = request_heap(r);
            r.body = std::mem::take(&mut cur.tx.body);
            s.pending.heap = s.pending.heap - before + request_heap(r);
        }
    }

    /// Raw bytes lost inside `dir`'s body.
    fn body_gap(&mut self, cur: &mut Current, len: u64, framing_lost: bool, dir: Direction) {
        let offset = cur.tx.body.raw_len;
        cur.tx.body.raw_len += len;
        cur.tx
            .body
            .gaps
            .push((offset, (!framing_lost).then_some(offset + len)));
        if !cur.wanted {
            return;
        }
        emit(
            &mut self.listener,
            dir,
            &cur.tx,
            BodyEvent::Gap { offset, len },
        );
        if !wants_more(&mut self.listener, dir, &cur.tx) {
            cur.wanted = false;
        }
        if cur.decoder.take().is_some() {
            self.stats.decode_failures += 1;
            let reason = format!("content decoding stopped at a gap at raw offset {offset}");
            emit(
                &mut self.listener,
                dir,
                &cur.tx,
                BodyEvent::DecodeFailed { reason: &reason },
            );
            cur.tx.body.decode_error = Some(reason);
        }
    }

    fn data(
        &mut self,
        s: &mut Session,
        dir: Direction,
        offset: u64,
        mut bytes: &[u8],
        ts: Timestamp,
    ) {
        let expected = s.sides[dir.index()].next_offset;
        if offset > expected {
            // The reassembler should have said so; treat the hole as a gap.
            self.gap(s, dir, expected, offset - expected);
        } else if offset < expected {
            let skip = (expected - offset).min(bytes.len() as u64) as usize;
            bytes = &bytes[skip..];
        }
        let side = &mut s.sides[dir.index()];
        let mut at = side.next_offset;
        side.next_offset += bytes.len() as u64;
        let all = (at, bytes);
        // A step may consume nothing when it only changed state (a refusal at the first
        // byte); two such steps in a row would be a bug, not progress.
        let mut stalled = false;
        while !bytes.is_empty() {
            let consumed = match dir {
                Direction::Orig => self.orig_step(s, at, bytes, ts),
                Direction::Resp => self.resp_step(s, at, bytes, ts),
            };
            if consumed == 0 {
                debug_assert!(!stalled, "a step must make progress");
                if stalled {
                    break;
                }
                stalled = true;
                continue;
            }
            stalled = false;
            at += consumed as u64;
            bytes = &bytes[consumed..];
        }
        if dir == Direction::Orig && s.smuggle.is_some() {
            self.probe(s, all.0, all.1, ts);
        }
    }

    /// Fill the smuggling probes with the client's bytes at `start`, and report the
    /// requests they find.
    fn probe(&mut self, s: &mut Session, start: u64, bytes: &[u8], ts: Timestamp) {
        let Some(m) = s.smuggle.as_mut() else {
            return;
        };
        let found = m.feed(start, bytes, self.limits.max_head_bytes);
        if m.is_idle(s.sides[0].next_offset) {
            s.smuggle = None;
        }
        for f in found {
            let Ok(p) = parser::parse_request(&f.head) else {
                continue;
            };
            self.stats.smuggled += 1;
            self.stats.transactions += 1;
            let number = s.next_number;
            s.next_number += 1;
            s.transactions += 1;
            let tx = Transaction {
                stream: s.info.stream,
                number,
                client: s.info.client,
                server: s.info.server,
                request: Some(Request {
                    method: p.method,
                    uri: p.uri,
                    head: p.head,
                    ts,
                    offset: f.at,
                    server_offset: s.sides[1].next_offset,
                    number,
                    body: BodyInfo::default(),
                    notes: vec![format!(
                        "smuggled: request {} read with Content-Length {} ends where this \
                         request starts; read as RFC 9112 says, this is inside that \
                         request's body",
                        f.number, f.length
                    )],
                    smuggled: true,
                    malformed: None,
                }),
                response: None,
                body: BodyInfo::default(),
                malformed: None,
            };
            self.listener.http_transaction(&tx);
        }
    }

    /// Accumulate head bytes into `side.head`; returns the bytes consumed and whether the
    /// head is complete (then `side.head` holds exactly the head).
    fn take_head(&self, side: &mut Side, at: u64, bytes: &[u8]) -> (usize, HeadStep) {
        let mut skip = 0;
        if side.head.is_empty() {
            // Blank lines between messages (after a POST body, say) are allowed.
            skip = bytes
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(bytes.len());
            if skip == bytes.len() {
                return (skip, HeadStep::Partial);
            }
            side.head_offset = at + skip as u64;
            side.scanned = 0;
        }
        let bytes = &bytes[skip..];
        let max = self.limits.max_head_bytes;
        let old = side.head.len();
        let take = bytes.len().min(max + 1 - old.min(max));
        side.head.extend_from_slice(&bytes[..take]);
        match parser::find_head_end(&side.head, &mut side.scanned) {
            Some(end) if end <= max => {
                side.head.truncate(end);
                (skip + end - old, HeadStep::Complete)
            }
            _ if side.head.len() > max => (
                skip + take,
                HeadStep::TooLong(Malformed::HeadTooLong { limit: max }),
            ),
            _ => (skip + take, HeadStep::Partial),
        }
    }

    fn orig_step(&mut self, s: &mut Session, at: u64, bytes: &[u8], ts: Timestamp) -> usize {
        let Session { sides, upload, .. } = s;
        let side = &mut sides[0];
        match &mut side.state {
            SideState::Closed | SideState::AwaitTunnel => bytes.len(),
            SideState::Resync => resync(side, Direction::Orig, at, bytes),
            SideState::Body(f) => {
                let (listener, stats) = (&mut self.listener, &mut self.stats);
                let (n, done) = match f {
                    BodyFraming::Length(rem) => {
                        let n = (*rem).min(bytes.len() as u64);
                        *rem -= n;
                        if let Some(cur) = upload {
                            let piece = &bytes[..n as usize];
                            body_bytes(listener, stats, cur, piece, Direction::Orig);
                        }
                        (n as usize, *rem == 0)
                    }
                    BodyFraming::Chunked(c) => match c.feed(bytes, &self.limits, &mut |d| {
                        if let Some(cur) = upload.as_mut() {
                            body_bytes(listener, stats, cur, d, Direction::Orig);
                        }
                    }) {
                        Ok(n) => (n, c.is_done()),
                        Err((n, e)) => {
                            log::debug!("stream {}: request body refused: {e}", s.info.stream);
                            self.stats.malformed += 1;
                            self.stats.resyncs += 1;
                            side.enter_resync();
                            if let Some(up) = upload {
                                up.tx.body.notes.push(format!("chunked framing broke: {e}"));
                                up.tx.body.gaps.push((up.tx.body.raw_len, None));
                            }
                            self.finish_upload(s, false);
                            return n;
                        }
                    },
                    BodyFraming::UntilClose => (bytes.len(), false),
                };
                if done {
                    side.state = SideState::Head;
                    self.finish_upload(s, true);
                }
                n
            }
            SideState::Head => {
                let (mut n, step) = self.take_head(side, at, bytes);
                if !matches!(step, HeadStep::TooLong(_)) {
                    // A request line without a version is a whole HTTP/0.9 request.
                    match parser::first_line(&side.head) {
                        FirstLine::Http1 => {}
                        FirstLine::Http09(len) => {
                            n -= side.head.len() - len;
                            side.head.truncate(len);
                            self.on_http09_request(s, ts);
                            return n;
                        }
                        FirstLine::Garbage(len) => {
                            n -= side.head.len() - len;
                            let head = std::mem::take(&mut side.head);
                            let m = Malformed::BadHead(
                                "`GET ` followed by bytes that are not a request target \
                                 (not HTTP/0.9)"
                                    .into(),
                            );
                            self.refuse_request(s, &m, &head[..len]);
                            return n;
                        }
                    }
                }
                match step {
                    HeadStep::Partial => {}
                    HeadStep::TooLong(m) => {
                        let head = std::mem::take(&mut s.sides[0].head);
                        self.refuse_side(s, Direction::Orig, &m, &head);
                    }
                    HeadStep::Complete => self.on_request_head(s, ts),
                }
                n
            }
        }
    }

    /// A request head that is not HTTP at all but starts like one (`GET ` and binary
    /// bytes): reported as a malformed transaction, so it is seen, and the client side
    /// looks for the next request.
    fn refuse_request(&mut self, s: &mut Session, m: &Malformed, head: &[u8]) {
        let side = &mut s.sides[0];
        side.head.clear();
        side.fresh = false;
        side.enter_resync();
        self.stats.malformed += 1;
        self.stats.resyncs += 1;
        self.stats.transactions += 1;
        let number = s.next_number;
        s.next_number += 1;
        s.transactions += 1;
        let shown = &head[..head.len().min(64)];
        let tx = Transaction {
            stream: s.info.stream,
            number,
            client: s.info.client,
            server: s.info.server,
            request: None,
            response: None,
            body: BodyInfo {
                notes: vec![format!(
                    "the client sent {} bytes that are no request: {}",
                    head.len(),
                    shown.escape_ascii()
                )],
                ..BodyInfo::default()
            },
            malformed: Some(m.clone()),
        };
        self.listener.http_transaction(&tx);
    }

    /// `GET target` and nothing more: the response is the server's bytes until it closes.
    fn on_http09_request(&mut self, s: &mut Session, ts: Timestamp) {
        let side = &mut s.sides[0];
        let head = std::mem::take(&mut side.head);
        let offset = side.head_offset;
        let line = head.strip_suffix(b"\n").unwrap_or(&head);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let uri = line[4..].to_vec();
        side.fresh = false;
        // An HTTP/0.9 connection carries one request.
        side.state = SideState::Closed;
        side.head = head;
        side.head.clear();
        self.stats.requests += 1;
        self.stats.http09 += 1;
        let number = s.next_number;
        s.next_number += 1;
        let server_offset = s.sides[1].next_offset;
        s.pending.push_back(Request {
            method: Method::Get,
            uri,
            head: MessageHead {
                version: Version::Http09,
                ..MessageHead::default()
            },
            ts,
            offset,
            server_offset,
            number,
            body: BodyInfo::default(),
            notes: vec![
                "HTTP/0.9 request: no version, no headers; the response is the server's \
                 bytes until it closes"
                    .into(),
            ],
            smuggled: false,
            malformed: None,
        });
    }

    /// Refuse what `dir` said (its head, or its framing) and look for the next message.
    /// `head` is the refused head, when there was one.
    fn refuse_side(&mut self, s: &mut Session, dir: Direction, m: &Malformed, head: &[u8]) {
        let side = &mut s.sides[dir.index()];
        side.head.clear();
        let looks_http = match dir {
            Direction::Orig => {
                let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
                memchr::memmem::find(&head[..line_end], b" HTTP/1.").is_some()
            }
            Direction::Resp => head.starts_with(b"HTTP/") || head.starts_with(parser::ICY_STATUS),
        };
        if side.fresh && !looks_http {
            // The first thing this side said was not HTTP: leave the session alone.
            self.stats.not_http += 1;
            log::debug!("stream {}: not HTTP ({dir}): {m}", s.info.stream);
            s.sides[0].state = SideState::Closed;
            s.sides[1].state = SideState::Closed;
            return;
        }
        log::debug!("stream {}: {dir} refused: {m}", s.info.stream);
        self.stats.malformed += 1;
        self.stats.resyncs += 1;
        side.enter_resync();
    }

    fn on_request_head(&mut self, s: &mut Session, ts: Timestamp) {
        let side = &mut s.sides[0];
        let head = std::mem::take(&mut side.head);
        let offset = side.head_offset;
        let body_start = offset + head.len() as u64;
        let p = match parser::parse_request(&head) {
            Ok(p) => p,
            Err(m) => {
                self.refuse_side(s, Direction::Orig, &m, &head);
                return;
            }
        };
        let mut notes = Vec::new();
        let (framing, mut other_lengths, malformed) = match parser::framing(&p.head, true, false) {
            Ok(v) => {
                notes.extend(v.notes);
                (v.framing, v.other_lengths, None)
            }
            Err(m) => {
                notes.push(format!("request body not read: {m}"));
                (Framing::None, Vec::new(), Some(m))
            }
        };
        if let Some(unfolded) = &p.without_folds {
            notes.push(
                "obs-fold: header lines continued on the next line were unfolded \
                 (RFC 9112 §5.2)"
                    .into(),
            );
            if let Ok(v) = parser::framing(unfolded, true, false)
                && v.framing != framing
            {
                notes.push(format!(
                    "ambiguous framing: read without its folded lines, the request has {}, \
                     not {}",
                    describe(v.framing),
                    describe(framing)
                ));
                match v.framing {
                    Framing::None => other_lengths.push(0),
                    Framing::Length(n) => other_lengths.push(n),
                    Framing::Chunked | Framing::UntilClose => {}
                }
            }
        }
        if notes.iter().any(|n| n.starts_with("ambiguous framing")) {
            self.stats.ambiguous_framing += 1;
        }
        let side = &mut s.sides[0];
        side.fresh = false;
        side.head = head;
        side.head.clear();
        self.stats.requests += 1;
        let number = s.next_number;
        s.next_number += 1;
        let mut smuggled = false;
        if let Some(m) = s.smuggle.as_mut()
            && let Some(h) = m.parsed_head(offset)
        {
            smuggled = true;
            self.stats.smuggled += 1;
            notes.push(format!(
                "smuggled: inside the body of request {} when that request is read with \
                 Content-Length {}",
                h.number, h.length
            ));
        }
        if !other_lengths.is_empty() {
            s.smuggle.get_or_insert_with(Box::default).other_readings(
                number,
                body_start,
                &other_lengths,
            );
        }
        let tunnel = p.method == Method::Connect
            || p.head
                .header("upgrade")
                .is_some_and(|v| !v.trim_ascii().is_empty());
        let side = &mut s.sides[0];
        side.state = if malformed.is_some() {
            self.stats.malformed += 1;
            self.stats.resyncs += 1;
            SideState::Resync
        } else if tunnel {
            SideState::AwaitTunnel
        } else {
            match framing {
                Framing::None => SideState::Head,
                Framing::Length(n) => SideState::Body(BodyFraming::Length(n)),
                Framing::Chunked => SideState::Body(BodyFraming::Chunked(Chunked::default())),
                Framing::UntilClose => SideState::Body(BodyFraming::UntilClose),
            }
        };
        if s.pending.len() >= self.limits.max_pending_requests {
            self.stats.capped_sessions += 1;
            s.sides[0].state = SideState::Closed;
            return;
        }
        let req = Request {
            method: p.method,
            uri: p.uri,
            head: p.head,
            ts,
            offset,
            server_offset: s.sides[1].next_offset,
            number,
            body: BodyInfo {
                framing: Some(framing),
                ..BodyInfo::default()
            },
            notes,
            smuggled,
            malformed,
        };
        if matches!(s.sides[0].state, SideState::Body(_)) {
            self.start_upload(s, &req);
        }
        s.pending.push_back(req);
    }

    /// A request with a body: ask the listener whether it wants it.
    fn start_upload(&mut self, s: &mut Session, req: &Request) {
        self.stats.request_bodies += 1;
        // (The previous body always ended before this head; should it not have, it ends.)
        self.finish_upload(s, false);
        let mut body = BodyInfo {
            framing: req.body.framing,
            ..BodyInfo::default()
        };
        match req.head.header("content-encoding").map(body::parse_codings) {
            Some(Ok(c)) => body.codings = c,
            Some(Err(unknown)) => {
                body.decode_error = Some(format!(
                    "unknown content coding {unknown:?}: body kept as sent"
                ));
            }
            None => {}
        }
        let tx = Transaction {
            stream: s.info.stream,
            number: req.number,
            client: s.info.client,
            server: s.info.server,
            request: Some(req.clone()),
            response: None,
            body,
            malformed: None,
        };
        let wanted = self.listener.request_head(&tx);
        let mut cur = Current {
            heads: request_heap(req),
            decoder: None,
            decoder_memory: 0,
            wanted,
            tx,
        };
        if wanted && !cur.tx.body.codings.is_empty() {
            match Decoder::new(&cur.tx.body.codings, &self.limits) {
                Ok(d) => {
                    cur.decoder_memory = d.memory();
                    cur.decoder = Some(d);
                }
                Err(e) => cur.tx.body.decode_error = Some(format!("{e}: body kept as sent")),
            }
        }
        s.upload = Some(Box::new(cur));
    }

    fn resp_step(&mut self, s: &mut Session, at: u64, bytes: &[u8], ts: Timestamp) -> usize {
        if matches!(s.sides[1].state, SideState::Head)
            && s.sides[1].head.is_empty()
            && s.pending
                .queue
                .front()
                .is_some_and(|r| r.head.version == Version::Http09)
            && !bytes.starts_with(b"HTTP/")
        {
            // No status line: the answer to an HTTP/0.9 request. (Consumes nothing.)
            self.on_http09_response(s, at, ts);
            return 0;
        }
        let Session { sides, current, .. } = s;
        let side = &mut sides[1];
        match &mut side.state {
            SideState::Closed | SideState::AwaitTunnel => bytes.len(),
            SideState::Resync => resync(side, Direction::Resp, at, bytes),
            SideState::Head => {
                let (n, step) = self.take_head(side, at, bytes);
                match step {
                    HeadStep::Partial => {}
                    HeadStep::TooLong(m) => {
                        let head = std::mem::take(&mut s.sides[1].head);
                        self.refuse_response(s, None, m, &head);
                    }
                    HeadStep::Complete => self.on_response_head(s, ts),
                }
                n
            }
            SideState::Body(f) => {
                let Some(cur) = current.as_mut() else {
                    side.enter_resync();
                    return bytes.len();
                };
                let (n, done) = match f {
                    BodyFraming::Length(rem) => {
                        let n = (*rem).min(bytes.len() as u64);
                        *rem -= n;
                        body_bytes(
                            &mut self.listener,
                            &mut self.stats,
                            cur,
                            &bytes[..n as usize],
                            Direction::Resp,
                        );
                        (n as usize, *rem == 0)
                    }
                    BodyFraming::UntilClose => {
                        body_bytes(
                            &mut self.listener,
                            &mut self.stats,
                            cur,
                            bytes,
                            Direction::Resp,
                        );
                        (bytes.len(), false)
                    }
                    BodyFraming::Chunked(c) => {
                        let (listener, stats) = (&mut self.listener, &mut self.stats);
                        // Chunk data goes straight to the listener, no copy.
                        match c.feed(bytes, &self.limits, &mut |d| {
                            body_bytes(listener, stats, cur, d, Direction::Resp);
                        }) {
                            Ok(n) => (n, c.is_done()),
                            Err((n, m)) => {
                                let mut cur = current.take().expect("checked above");
                                cur.tx
                                    .body
                                    .notes
                                    .push(format!("chunked framing broke: {m}"));
                                cur.tx.body.gaps.push((cur.tx.body.raw_len, None));
                                self.stats.malformed += 1;
                                self.stats.resyncs += 1;
                                side.enter_resync();
                                self.finish_body(&mut cur, false);
                                return n;
                            }
                        }
                    }
                };
                if done {
                    side.state = SideState::Head;
                    let mut cur = current.take().expect("checked above");
                    self.finish_body(&mut cur, true);
                }
                n
            }
        }
    }

    /// A response whose head or framing was refused: report it without a body.
    fn refuse_response(
        &mut self,
        s: &mut Session,
        tx: Option<Transaction>,
        m: Malformed,
        head: &[u8],
    ) {
        self.refuse_side(s, Direction::Resp, &m, head);
        if let Some(mut tx) = tx {
            tx.body.notes.push(format!("not extracted: {m}"));
            tx.malformed = Some(m);
            self.stats.transactions += 1;
            self.listener.http_transaction(&tx);
        }
    }

    fn on_response_head(&mut self, s: &mut Session, ts: Timestamp) {
        let side = &mut s.sides[1];
        let head = std::mem::take(&mut side.head);
        let offset = side.head_offset;
        let (status, reason, mh, icy) = match parser::parse_response(&head) {
            Ok(p) => (p.status, p.reason, p.head, p.icy),
            Err(m) => {
                self.refuse_response(s, None, m, &head);
                return;
            }
        };
        let side = &mut s.sides[1];
        side.head = head;
        side.head.clear();
        side.fresh = false;
        if (100..200).contains(&status) && status != 101 {
            // Interim (100 Continue, 103 Early Hints): the final response follows.
            self.stats.interim += 1;
            side.state = SideState::Head;
            return;
        }
        self.stats.responses += 1;
        if s.transactions >= self.limits.max_transactions {
            self.stats.capped_sessions += 1;
            s.sides[0].state = SideState::Closed;
            s.sides[1].state = SideState::Closed;
            return;
        }
        if std::mem::take(&mut s.sides[1].after_loss) {
            self.drop_answered_in_loss(s, offset);
        }
        let request = s.pending.pop_front();
        let number = request.as_ref().map_or_else(
            || {
                s.next_number += 1;
                s.next_number - 1
            },
            |r| r.number,
        );
        s.transactions += 1;
        let method = request.as_ref().map(|r| r.method.clone());
        let mut tx = Transaction {
            stream: s.info.stream,
            number,
            client: s.info.client,
            server: s.info.server,
            request,
            response: Some(Response {
                status,
                reason,
                head: mh,
                ts,
                offset,
            }),
            body: BodyInfo::default(),
            malformed: None,
        };
        let tunnel =
            status == 101 || (method == Some(Method::Connect) && (200..300).contains(&status));
        let bodiless = tunnel || method == Some(Method::Head) || status == 204 || status == 304;
        let resp_head = &tx.response.as_ref().expect("set above").head;
        let framing = match parser::framing(resp_head, false, bodiless) {
            // SHOUTcast's `ICY 200 OK`: HTTP/1.0 whose body runs until close.
            Ok(_) if icy && !bodiless => Framing::UntilClose,
            Ok(v) => {
                if !v.notes.is_empty() {
                    self.stats.ambiguous_framing += 1;
                    tx.body.notes.extend(v.notes);
                }
                v.framing
            }
            Err(m) => {
                self.refuse_response(s, Some(tx), m, b"HTTP/");
                return;
            }
        };
        let encoding = resp_head
            .header("content-encoding")
            .map(body::parse_codings);
        tx.body.framing = Some(framing);
        if icy {
            tx.body
                .notes
                .push("SHOUTcast status line (ICY), read as HTTP/1.0".into());
        }
        if matches!(s.sides[0].state, SideState::AwaitTunnel) && !tunnel {
            // The upgrade or CONNECT was refused: the client keeps talking HTTP.
            s.sides[0].enter_resync();
        }
        if tunnel {
            self.stats.tunnels += 1;
            tx.body
                .notes
                .push("the session switched protocols; no longer parsed".into());
            s.sides[0].state = SideState::Closed;
            s.sides[1].state = SideState::Closed;
            tx.body.complete = true;
            self.stats.transactions += 1;
            self.listener.http_transaction(&tx);
            return;
        }
        match encoding {
            Some(Ok(c)) => tx.body.codings = c,
            Some(Err(unknown)) => {
                tx.body.decode_error = Some(format!(
                    "unknown content coding {unknown:?}: body kept as sent"
                ));
            }
            None => {}
        }
        let wanted = self.listener.response_head(&tx);
        let decoder = if wanted && !tx.body.codings.is_empty() {
            match Decoder::new(&tx.body.codings, &self.limits) {
                Ok(d) => Some(d),
                Err(e) => {
                    tx.body.decode_error = Some(format!("{e}: body kept as sent"));
                    None
                }
            }
        } else {
            None
        };
        let heads = tx.request.as_ref().map_or(0, request_heap)
            + tx.response
                .as_ref()
                .map_or(0, |r| head_heap(&r.head) + r.reason.capacity() as u64);
        let decoder_memory = decoder.as_ref().map_or(0, Decoder::memory);
        let mut cur = Current {
            tx,
            wanted,
            decoder,
            heads,
            decoder_memory,
        };
        s.sides[1].state = match framing {
            Framing::None => {
                s.sides[1].state = SideState::Head;
                self.finish_body(&mut cur, true);
                return;
            }
            Framing::Length(n) => SideState::Body(BodyFraming::Length(n)),
            Framing::Chunked => SideState::Body(BodyFraming::Chunked(Chunked::default())),
            Framing::UntilClose => SideState::Body(BodyFraming::UntilClose),
        };
        s.current = Some(Box::new(cur));
    }

    /// The server's bytes after an HTTP/0.9 request: its body, until the connection
    /// closes.
    fn on_http09_response(&mut self, s: &mut Session, at: u64, ts: Timestamp) {
        let Some(request) = s.pending.pop_front() else {
            return;
        };
        self.stats.responses += 1;
        s.transactions += 1;
        let tx = Transaction {
            stream: s.info.stream,
            number: request.number,
            client: s.info.client,
            server: s.info.server,
            request: Some(request),
            response: Some(Response {
                status: 0,
                reason: String::new(),
                head: MessageHead {
                    version: Version::Http09,
                    ..MessageHead::default()
                },
                ts,
                offset: at,
            }),
            body: BodyInfo {
                framing: Some(Framing::UntilClose),
                notes: vec![
                    "HTTP/0.9 response: no status line, no headers; the body runs until \
                     the connection closes"
                        .into(),
                ],
                ..BodyInfo::default()
            },
            malformed: None,
        };
        let wanted = self.listener.response_head(&tx);
        let heads = tx.request.as_ref().map_or(0, request_heap);
        let side = &mut s.sides[1];
        side.fresh = false;
        side.state = SideState::Body(BodyFraming::UntilClose);
        s.current = Some(Box::new(Current {
            tx,
            wanted,
            decoder: None,
            heads,
            decoder_memory: 0,
        }));
    }

    /// After a loss in the server's direction, a response found at server offset `at`
    /// cannot answer a request if the server already spoke between that request and the
    /// next one, and that next one was complete before `at`: that request's response was
    /// the lost (or unparsable) bytes. Such requests are reported unanswered. Pipelined
    /// requests (sent with no server bytes between them) are left in order: nothing in
    /// the stream tells them apart.
    fn drop_answered_in_loss(&mut self, s: &mut Session, at: u64) {
        while s.pending.len() >= 2 {
            let (first, next) = (&s.pending[0], &s.pending[1]);
            if !(next.server_offset > first.server_offset && next.server_offset <= at) {
                break;
            }
            let req = s.pending.pop_front().expect("len checked");
            let notes = vec!["its response was lost in a capture gap".into()];
            self.report_unanswered(s, req, notes);
        }
    }

    fn gap(&mut self, s: &mut Session, dir: Direction, offset: u64, len: u64) {
        let side = &mut s.sides[dir.index()];
        if offset.saturating_add(len) <= side.next_offset {
            return;
        }
        if matches!(side.state, SideState::Resync) {
            // The line being gathered lost its middle: start a new one after the gap.
            side.head.clear();
        }
        let len = len - side.next_offset.saturating_sub(offset);
        side.next_offset += len;
        match dir {
            Direction::Orig => match &mut side.state {
                SideState::Body(BodyFraming::Length(rem)) if *rem >= len => {
                    *rem -= len;
                    let done = *rem == 0;
                    if done {
                        side.state = SideState::Head;
                    }
                    self.upload_gap(s, len, false);
                    if done {
                        self.finish_upload(s, false);
                    }
                }
                SideState::Body(BodyFraming::Chunked(Chunked::Data { remaining }))
                    if *remaining > len =>
                {
                    *remaining -= len;
                    self.upload_gap(s, len, false);
                }
                SideState::Body(BodyFraming::UntilClose)
                | SideState::Closed
                | SideState::AwaitTunnel
                | SideState::Resync => {}
                SideState::Head | SideState::Body(_) => {
                    // A request head (or a body's end and what followed) was lost. One
                    // placeholder keeps the next response from pairing with a later request.
                    let in_body = matches!(side.state, SideState::Body(_));
                    side.enter_resync();
                    self.stats.resyncs += 1;
                    if in_body {
                        self.upload_gap(s, len, true);
                        if let Some(up) = s.upload.as_mut() {
                            up.tx
                                .body
                                .notes
                                .push("the request body's end was lost in a capture gap".into());
                        }
                        self.finish_upload(s, false);
                    }
                    let number = s.next_number;
                    s.next_number += 1;
                    s.pending.push_back(Request {
                        method: Method::Other("-".into()),
                        uri: b"(request lost in a capture gap)".to_vec(),
                        head: MessageHead::default(),
                        ts: Timestamp::default(),
                        offset,
                        server_offset: s.sides[1].next_offset,
                        number,
                        body: BodyInfo::default(),
                        notes: Vec::new(),
                        smuggled: false,
                        malformed: None,
                    });
                }
            },
            Direction::Resp => {
                let Some(mut cur) = s.current.take() else {
                    if !matches!(side.state, SideState::Closed | SideState::Resync) {
                        side.enter_resync();
                        self.stats.resyncs += 1;
                    }
                    return;
                };
                match &mut side.state {
                    SideState::Body(BodyFraming::Length(rem)) => {
                        let n = len.min(*rem);
                        *rem -= n;
                        self.body_gap(&mut cur, n, false, Direction::Resp);
                        if *rem == 0 {
                            side.state = if n < len {
                                self.stats.resyncs += 1;
                                SideState::Resync
                            } else {
                                SideState::Head
                            };
                            self.finish_body(&mut cur, false);
                            return;
                        }
                    }
                    SideState::Body(BodyFraming::UntilClose) => {
                        self.body_gap(&mut cur, len, false, Direction::Resp);
                    }
                    SideState::Body(BodyFraming::Chunked(Chunked::Data { remaining }))
                        if *remaining > len =>
                    {
                        *remaining -= len;
                        self.body_gap(&mut cur, len, false, Direction::Resp);
                    }
                    _ => {
                        side.enter_resync();
                        self.stats.resyncs += 1;
                        self.body_gap(&mut cur, len, true, Direction::Resp);
                        cur.tx
                            .body
                            .notes
                            .push("the chunked framing was lost in a gap".into());
                        self.finish_body(&mut cur, false);
                        return;
                    }
                }
                s.current = Some(cur);
            }
        }
    }
}

enum HeadStep {
    Partial,
    Complete,
    TooLong(Malformed),
}

/// A framing in words, for notes.
fn describe(f: Framing) -> String {
    match f {
        Framing::None => "no body".into(),
        Framing::Length(n) => format!("a body of {n} bytes"),
        Framing::Chunked => "a chunked body".into(),
        Framing::UntilClose => "a body until the connection closes".into(),
    }
}

/// Longest line `Resync` looks at: a start line longer than this is not believed.
const MAX_RESYNC_LINE: usize = 8 * 1024;

impl Side {
    /// Lost the place: look for the next line that starts a message.
    fn enter_resync(&mut self) {
        self.state = SideState::Resync;
        self.head.clear();
    }
}

/// `Resync`: gather the current line (its last [`MAX_RESYNC_LINE`] bytes); when it ends,
/// switch to `Head` if a message starts in it: a status line (`HTTP/1.x NNN`), or
/// `METHOD target HTTP/1.x`. The start may follow other bytes on the line (the tail of an
/// unframed body has no line end). Working on whole lines makes the result the same
/// however the stream was cut into segments. Returns bytes consumed.
fn resync(side: &mut Side, dir: Direction, at: u64, bytes: &[u8]) -> usize {
    let (n, ended) = match memchr::memchr(b'\n', bytes) {
        Some(i) => (i + 1, true),
        None => (bytes.len(), false),
    };
    let piece = &bytes[..n];
    let line_start = at + n as u64;
    if piece.len() >= MAX_RESYNC_LINE {
        side.head.clear();
        side.head
            .extend_from_slice(&piece[piece.len() - MAX_RESYNC_LINE..]);
    } else {
        side.head.extend_from_slice(piece);
        if side.head.len() > MAX_RESYNC_LINE {
            let excess = side.head.len() - MAX_RESYNC_LINE;
            side.head.drain(..excess);
        }
    }
    if !ended {
        return n;
    }
    let line = &side.head;
    let start = match dir {
        Direction::Resp => {
            let http = memchr::memmem::find_iter(line, b"HTTP/1.").find(|&k| {
                let l = &line[k..];
                l.len() >= 12
                    && l[7].is_ascii_digit()
                    && l[8] == b' '
                    && l[9..12].iter().all(u8::is_ascii_digit)
            });
            // SHOUTcast's `ICY NNN`, only at the start of a line (the word is too short to
            // be believed inside one).
            let icy = || {
                (line.len() >= 7
                    && line.starts_with(parser::ICY_STATUS)
                    && line[4..7].iter().all(u8::is_ascii_digit))
                .then_some(0)
            };
            http.or_else(icy)
        }
        Direction::Orig => memchr::memmem::find(line, b" HTTP/1.").and_then(|p| {
            let target_start = memchr::memrchr(b' ', &line[..p])?;
            let method = &line[..target_start];
            let run = method
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_uppercase())
                .count();
            (run >= 3).then(|| target_start - run)
        }),
    };
    match start {
        Some(k) => {
            side.head.drain(..k);
            side.head_offset = line_start - side.head.len() as u64;
            side.state = SideState::Head;
            side.scanned = 0;
            side.after_loss |= dir == Direction::Resp;
        }
        None => side.head.clear(),
    }
    n
}

/// Bring the running `total` up to date with what `s` holds now.
#[inline]
fn recount(total: &mut u64, s: &mut Session) {
    let now = s.memory();
    *total = *total - s.counted + now;
    s.counted = now;
}

impl<L: HttpListener> Listener for HttpAnalyzer<L> {
    fn session_start(&mut self, session: &SessionInfo, _ts: Timestamp) {
        // Nothing yet: the parser state waits for the first byte. A stream index is never
        // reused, but should an old state be left over, it ends here.
        if let Some(old) = self.sessions.remove(&session.stream) {
            self.memory -= old.counted;
            self.core.end_session(old, EndReason::Reused);
        }
    }

    fn data(
        &mut self,
        session: &SessionInfo,
        dir: Direction,
        offset: u64,
        bytes: &[u8],
        ts: Timestamp,
    ) {
        let s = self
            .sessions
            .entry(session.stream)
            .or_insert_with(|| Box::new(Session::new(session)));
        self.core.listener.packet_time(ts);
        self.core.data(s, dir, offset, bytes, ts);
        recount(&mut self.memory, s);
    }

    fn gap(&mut self, session: &SessionInfo, dir: Direction, offset: u64, len: u64, ts: Timestamp) {
        let s = self
            .sessions
            .entry(session.stream)
            .or_insert_with(|| Box::new(Session::new(session)));
        self.core.listener.packet_time(ts);
        self.core.gap(s, dir, offset, len);
        recount(&mut self.memory, s);
    }

    fn session_end(&mut self, session: &SessionInfo, reason: EndReason, ts: Timestamp) {
        if let Some(s) = self.sessions.remove(&session.stream) {
            self.core.listener.packet_time(ts);
            self.memory -= s.counted;
            self.core.end_session(s, reason);
        }
    }

    fn should_stop(&self) -> bool {
        self.core.listener.should_stop()
    }

    fn memory_in_use(&self) -> u64 {
        self.memory + self.core.listener.memory_in_use()
    }
}

#[cfg(test)]
mod tests;
