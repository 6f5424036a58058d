//! Message heads: finding where a head ends, parsing it with httparse, and deciding how
//! the body that follows is framed (RFC 9112 §6.3).

use super::{Malformed, MessageHead, Method};

/// The HTTP version of a message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/0.9: a request line without a version, answered by the raw body.
    Http09,
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    #[default]
    Http11,
}

impl Version {
    /// From httparse's minor version (1 for HTTP/1.1).
    const fn from_minor(minor: Option<u8>) -> Self {
        match minor {
            Some(0) => Self::Http10,
            _ => Self::Http11,
        }
    }

    /// `0.9`, `1.0` or `1.1`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http09 => "0.9",
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
        }
    }
}

/// Most headers one head may carry; more is refused as malformed.
const MAX_HEADERS: usize = 256;

/// Where the head in `buf` ends (the index just after its blank line), searching from
/// `*scanned`. Bare LF line ends count, as httparse accepts them. On `None`, `*scanned`
/// is where the next search may resume without missing an end that straddles the edge.
pub(crate) fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let mut from = *scanned;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]).map(|i| i + from) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') => match buf.get(i + 2) {
                Some(b'\n') => return Some(i + 3),
                Some(_) => from = i + 1,
                None => {
                    *scanned = i;
                    return None;
                }
            },
            Some(_) => from = i + 1,
            None => {
                *scanned = i;
                return None;
            }
        }
    }
    *scanned = buf.len();
    None
}

fn config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    // Real servers and clients are sloppy; the framing headers are checked strictly below.
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_responses(true)
        .ignore_invalid_headers_in_requests(true);
    c
}

fn copy_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

/// Framing header lines in `raw` that httparse dropped as invalid (it is told to skip
/// invalid lines, as browsers do, but a framing header must not silently vanish).
fn unparsed_framing(raw: &[u8], parsed: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["content-length", "transfer-encoding"] {
        let lines: Vec<&[u8]> = raw
            .split(|&b| b == b'\n')
            .skip(1)
            .filter(|l| {
                l.len() > name.len()
                    && l[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                    && l[name.len()..].trim_ascii_start().first() != Some(&b'-')
                    && !l[name.len()].is_ascii_alphanumeric()
            })
            .collect();
        let kept = parsed
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count();
        if lines.len() > kept {
            out.extend(lines.iter().map(|l| {
                String::from_utf8_lossy(&l[..l.len().min(100)])
                    .trim_end()
                    .to_owned()
            }));
        }
    }
    out
}

/// What the first line of a request head says about HTTP/0.9.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FirstLine {
    /// Not complete yet, or it has a version: an HTTP/1.x head.
    Http1,
    /// `GET target` with no version: an HTTP/0.9 request, this many bytes long (line end
    /// included).
    Http09(usize),
    /// `GET ` followed by bytes that are not a request target (binary bytes, spaces): not
    /// HTTP/0.9, and nothing else either. This many bytes long.
    Garbage(usize),
}

/// Looks at the first line of a request head gathered so far (`head` starts at the
/// message's first byte): a request without a version is HTTP/0.9 (RFC 1945 §4.1: only
/// `GET` and a target, then the line end).
pub(crate) fn first_line(head: &[u8]) -> FirstLine {
    let Some(nl) = memchr::memchr(b'\n', head) else {
        return FirstLine::Http1;
    };
    let line = head[..nl].strip_suffix(b"\r").unwrap_or(&head[..nl]);
    let Some(target) = line.strip_prefix(b"GET ") else {
        return FirstLine::Http1;
    };
    if memchr::memmem::find(target, b" HTTP/").is_some() {
        return FirstLine::Http1;
    }
    let printable = !target.is_empty() && target.iter().all(|b| (0x21..0x7f).contains(b));
    if printable && (target[0] == b'/' || target.starts_with(b"http://")) {
        FirstLine::Http09(nl + 1)
    } else {
        FirstLine::Garbage(nl + 1)
    }
}

/// A head whose header lines are continued on the next line (obs-fold, RFC 9112 §5.2):
/// the head with each fold replaced by one space (as a recipient must), and with the
/// continuation lines dropped (as a parser that ignores them would read it). `None` when
/// the head has no fold.
pub(crate) fn unfold(head: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let first_end = memchr::memchr(b'\n', head)? + 1;
    let mut joined = head[..first_end].to_vec();
    let mut dropped = joined.clone();
    let mut folded = false;
    let mut rest = &head[first_end..];
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        let blank = line == b"\r\n" || line == b"\n";
        if !blank && matches!(line.first(), Some(b' ' | b'\t')) && joined.len() > first_end {
            folded = true;
            // The previous line's end and this line's leading whitespace become one space.
            while matches!(joined.last(), Some(b'\n' | b'\r')) {
                joined.pop();
            }
            joined.push(b' ');
            joined.extend_from_slice(line.trim_ascii_start());
        } else {
            joined.extend_from_slice(line);
            dropped.extend_from_slice(line);
        }
        rest = &rest[end..];
    }
    folded.then_some((joined, dropped))
}

/// A parsed request line and headers.
#[derive(Debug)]
pub(crate) struct ParsedRequest {
    pub(crate) method: Method,
    pub(crate) uri: Vec<u8>,
    pub(crate) head: MessageHead,
    /// The head had obs-fold lines: the headers as a reader that drops them sees them.
    pub(crate) without_folds: Option<MessageHead>,
}

/// A request line and headers: `head` is exactly one head, blank line included. Folded
/// header lines are unfolded (and the head as read without them is kept, for framing).
pub(crate) fn parse_request(head: &[u8]) -> Result<ParsedRequest, Malformed> {
    let Some((joined, dropped)) = unfold(head) else {
        let (method, uri, head) = parse_request_latin1(head)?;
        return Ok(ParsedRequest {
            method,
            uri,
            head,
            without_folds: None,
        });
    };
    let (method, uri, head) = parse_request_latin1(&joined)?;
    let without_folds = parse_request_latin1(&dropped).ok().map(|(_, _, h)| h);
    Ok(ParsedRequest {
        method,
        uri,
        head,
        without_folds,
    })
}

/// A request target with bytes that are not UTF-8 (old clients send Latin-1) is kept with
/// those bytes percent-encoded, as httparse only hands out UTF-8 targets.
fn parse_request_latin1(head: &[u8]) -> Result<(Method, Vec<u8>, MessageHead), Malformed> {
    match parse_request_exact(head) {
        Err(e) if !head.is_ascii() => {
            let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
            if head[..line_end].is_ascii() {
                return Err(e);
            }
            let mut fixed = Vec::with_capacity(head.len() + 64);
            for &b in &head[..line_end] {
                if b >= 0x80 {
                    fixed.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    fixed.push(b);
                }
            }
            fixed.extend_from_slice(&head[line_end..]);
            parse_request_exact(&fixed)
        }
        r => r,
    }
}

fn parse_request_exact(head: &[u8]) -> Result<(Method, Vec<u8>, MessageHead), Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match config().parse_request(&mut req, head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(Malformed::BadHead("request head ends early".into()));
        }
        Err(e) => return Err(Malformed::BadHead(format!("request: {e}"))),
    }
    let method = Method::from_token(req.method.unwrap_or_default());
    let uri = req.path.unwrap_or_default().as_bytes().to_vec();
    let version = Version::from_minor(req.version);
    let headers = copy_headers(req.headers);
    Ok((
        method,
        uri,
        MessageHead {
            version,
            unparsed_framing: unparsed_framing(head, &headers),
            headers,
        },
    ))
}

/// The status line of a SHOUTcast v1 server, `ICY 200 OK`: an HTTP/1.0 response whose
/// body runs until the connection closes.
pub(crate) const ICY_STATUS: &[u8] = b"ICY ";

/// A parsed status line and headers, and whether the status line was `ICY NNN`.
pub(crate) struct ParsedResponse {
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) head: MessageHead,
    pub(crate) icy: bool,
}

/// A status line and headers: `head` is exactly one head, blank line included.
///
/// `ICY NNN reason` (SHOUTcast v1), which httparse refuses, is read as `HTTP/1.0 NNN
/// reason`: a copy of the head with the version rewritten is parsed.
pub(crate) fn parse_response(head: &[u8]) -> Result<ParsedResponse, Malformed> {
    if let Some(rest) = head.strip_prefix(ICY_STATUS) {
        let copy = [b"HTTP/1.0 ".as_slice(), rest].concat();
        let (status, reason, head) = parse_response_exact(&copy)?;
        return Ok(ParsedResponse {
            status,
            reason,
            head,
            icy: true,
        });
    }
    let (status, reason, head) = parse_response_exact(head)?;
    Ok(ParsedResponse {
        status,
        reason,
        head,
        icy: false,
    })
}

fn parse_response_exact(head: &[u8]) -> Result<(u16, String, MessageHead), Malformed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match config().parse_response(&mut resp, head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(Malformed::BadHead("response head ends early".into()));
        }
        Err(e) => return Err(Malformed::BadHead(format!("response: {e}"))),
    }
    let headers = copy_headers(resp.headers);
    Ok((
        resp.code.unwrap_or_default(),
        resp.reason.unwrap_or_default().to_owned(),
        MessageHead {
            version: Version::from_minor(resp.version),
            unparsed_framing: unparsed_framing(head, &headers),
            headers,
        },
    ))
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// The framing a head announces: what this parser follows, and what other readers might
/// follow instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// The framing followed (RFC 9112 §6.3).
    pub(crate) framing: Framing,
    /// Why the framing is ambiguous, worded for a user (empty when it is not).
    pub(crate) notes: Vec<String>,
    /// Body lengths another reading of the same head gives (a request's Content-Length
    /// under a Transfer-Encoding, the other values of differing Content-Lengths): where
    /// such a reader would look for the next request.
    pub(crate) other_lengths: Vec<u64>,
}

impl Verdict {
    const fn plain(framing: Framing) -> Self {
        Self {
            framing,
            notes: Vec::new(),
            other_lengths: Vec::new(),
        }
    }
}

/// The framing a head announces (RFC 9112 §6.3), or why it cannot be trusted.
///
/// `bodiless` is true where the protocol says there is no body whatever the headers say
/// (responses to HEAD, 1xx, 204, 304). For requests, no length means no body.
///
/// Ambiguous heads are read as the RFC says and noted: Transfer-Encoding overrides
/// Content-Length; a request whose Transfer-Encoding does not end in chunked has no length
/// a reader can trust (its Content-Length is used, if any; else no body); a request with
/// differing Content-Lengths is read with the first. A response with differing
/// Content-Lengths, and any length that is not a number, are refused.
pub(crate) fn framing(
    head: &MessageHead,
    is_request: bool,
    bodiless: bool,
) -> Result<Verdict, Malformed> {
    if bodiless {
        return Ok(Verdict::plain(Framing::None));
    }
    if let Some(line) = head.unparsed_framing.first() {
        return Err(Malformed::BadFramingHeader(line.clone()));
    }
    // Distinct values, in order: "5, 5" and repeated equal headers are one length.
    let mut lengths: Vec<u64> = Vec::new();
    let mut te: Option<Vec<u8>> = None;
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("content-length") {
            for part in value.split(|&b| b == b',') {
                let text = String::from_utf8_lossy(part.trim_ascii());
                let n: u64 = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                    text.parse()
                        .map_err(|_| Malformed::BadLength(text.clone().into_owned()))?
                } else {
                    return Err(Malformed::BadLength(text.into_owned()));
                };
                if !lengths.contains(&n) {
                    lengths.push(n);
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let t = te.get_or_insert_with(Vec::new);
            if !t.is_empty() {
                t.push(b',');
            }
            t.extend_from_slice(value);
        }
    }
    let lengths_text = || {
        lengths
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(te) = te {
        let te_text = String::from_utf8_lossy(&te).trim().to_owned();
        let last = te
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .rfind(|c| !c.is_empty())
            .unwrap_or_default();
        let chunked = last.eq_ignore_ascii_case(b"chunked");
        let mut v = Verdict::plain(Framing::None);
        if chunked {
            v.framing = Framing::Chunked;
            if !lengths.is_empty() {
                v.notes.push(format!(
                    "ambiguous framing: Content-Length {} together with Transfer-Encoding \
                     {te_text:?}; read as chunked (RFC 9112 §6.3)",
                    lengths_text()
                ));
                v.other_lengths.clone_from(&lengths);
            }
        } else if is_request {
            v.framing = lengths
                .first()
                .map_or(Framing::None, |&n| Framing::length(n));
            v.notes.push(format!(
                "ambiguous framing: request Transfer-Encoding {te_text:?} does not end in \
                 chunked, so its length cannot be known (RFC 9112 §6.3); read {}",
                lengths.first().map_or_else(
                    || "as having no body".to_owned(),
                    |n| format!("with Content-Length {n}")
                )
            ));
        } else {
            v.framing = Framing::UntilClose;
            if !lengths.is_empty() {
                v.notes.push(format!(
                    "ambiguous framing: Content-Length {} together with Transfer-Encoding \
                     {te_text:?}; read until the connection closes (RFC 9112 §6.3)",
                    lengths_text()
                ));
            }
        }
        return Ok(v);
    }
    match lengths.as_slice() {
        [] if is_request => Ok(Verdict::plain(Framing::None)),
        [] => Ok(Verdict::plain(Framing::UntilClose)),
        [n] => Ok(Verdict::plain(Framing::length(*n))),
        [first, rest @ ..] if is_request => Ok(Verdict {
            framing: Framing::length(*first),
            notes: vec![format!(
                "ambiguous framing: differing Content-Length values {}; read with the first",
                lengths_text()
            )],
            other_lengths: rest.to_vec(),
        }),
        [first, second, ..] => Err(Malformed::ConflictingLength {
            first: *first,
            second: *second,
        }),
    }
}

impl Framing {
    /// `Length(n)`, or `None` for 0.
    const fn length(n: u64) -> Self {
        if n == 0 { Self::None } else { Self::Length(n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> MessageHead {
        MessageHead {
            version: Version::Http11,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            unparsed_framing: Vec::new(),
        }
    }

    #[test]
    fn head_end_found_across_calls() {
        let mut scanned = 0;
        let mut buf = b"HTTP/1.1 200 OK\r\nA: b\r\n\r".to_vec();
        assert_eq!(find_head_end(&buf, &mut scanned), None);
        buf.push(b'\n');
        assert_eq!(find_head_end(&buf, &mut scanned), Some(buf.len()));
        let mut s = 0;
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\nrest", &mut s), Some(16));
    }

    /// suricata-verify http-evader-311: `Transfer-Encoding:\x7fchunked` is dropped by
    /// httparse; the body's framing is then unknown and must be refused, not guessed.
    #[test]
    fn unparsable_framing_header_refused() {
        let head =
            parse_response(b"HTTP/1.1 200 ok\r\nTransfer-Encoding:\x7fchunked\r\nX: y\r\n\r\n")
                .unwrap()
                .head;
        assert_eq!(head.unparsed_framing, ["Transfer-Encoding:\u{7f}chunked"]);
        assert!(matches!(
            framing(&head, false, false).map(|v| v.framing),
            Err(Malformed::BadFramingHeader(_))
        ));
        let ok = parse_response(
            b"HTTP/1.1 200 ok\r\nTransfer-Encoding : chunked\r\nContent-Length-X: 1\r\n\r\n",
        )
        .unwrap()
        .head;
        assert!(ok.unparsed_framing.is_empty());
        assert_eq!(
            framing(&ok, false, false).map(|v| v.framing),
            Ok(Framing::Chunked)
        );
    }

    #[test]
    fn issue11_icy_status_line_reads_as_http_1_0() {
        let r = parse_response(b"ICY 200 OK\r\nicy-name: Test Radio\r\nicy-metaint: 16000\r\n\r\n")
            .unwrap();
        assert!(r.icy);
        assert_eq!(
            (r.status, r.reason.as_str(), r.head.version),
            (200, "OK", Version::Http10)
        );
        assert_eq!(r.head.header_str("icy-metaint").as_deref(), Some("16000"));
        assert_eq!(
            framing(&r.head, false, false).map(|v| v.framing),
            Ok(Framing::UntilClose)
        );
        let plain = parse_response(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert!(!plain.icy);
        assert!(parse_response(b"ICY two hundred\r\n\r\n").is_err());
    }

    #[test]
    fn non_utf8_target_kept_percent_encoded() {
        let r = parse_request(b"GET /caf\xe9.mp3 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.uri, b"/caf%E9.mp3");
        assert_eq!(r.head.headers.len(), 1);
    }

    fn f(headers: &[(&str, &str)], is_request: bool) -> Result<Framing, Malformed> {
        framing(&head(headers), is_request, false).map(|v| v.framing)
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            f(&[("Content-Length", "10")], false),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            f(&[("Content-Length", "10"), ("content-length", "10")], false),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            f(&[("Content-Length", "10, 10")], false),
            Ok(Framing::Length(10))
        );
        assert_eq!(f(&[("Content-Length", "0")], false), Ok(Framing::None));
        assert_eq!(
            f(&[("Content-Length", "10"), ("Content-Length", "11")], false),
            Err(Malformed::ConflictingLength {
                first: 10,
                second: 11
            })
        );
        assert!(matches!(
            f(&[("Content-Length", "-1")], false),
            Err(Malformed::BadLength(_))
        ));
        assert_eq!(
            f(&[("Transfer-Encoding", "gzip, Chunked")], false),
            Ok(Framing::Chunked)
        );
        assert_eq!(f(&[], false), Ok(Framing::UntilClose));
        assert_eq!(f(&[], true), Ok(Framing::None));
        assert_eq!(
            framing(&head(&[("Content-Length", "10")]), false, true).map(|v| v.framing),
            Ok(Framing::None)
        );
    }

    /// Issue 14: RFC 9112 §6.3 on ambiguous heads, each noted, with the lengths another
    /// reader would use.
    #[test]
    fn issue14_ambiguous_framing_is_read_as_the_rfc_says_and_noted() {
        let v = framing(
            &head(&[("Content-Length", "13"), ("Transfer-Encoding", "chunked")]),
            true,
            false,
        )
        .unwrap();
        assert_eq!(v.framing, Framing::Chunked);
        assert_eq!(v.other_lengths, [13]);
        assert!(v.notes[0].contains("Content-Length 13 together with Transfer-Encoding"));
        // A response too follows the Transfer-Encoding.
        let v = framing(
            &head(&[("Content-Length", "13"), ("Transfer-Encoding", "chunked")]),
            false,
            false,
        )
        .unwrap();
        assert_eq!((v.framing, v.notes.len()), (Framing::Chunked, 1));
        // Differing lengths: a request is read with the first, a response refused.
        let v = framing(
            &head(&[("Content-Length", "5"), ("Content-Length", "40")]),
            true,
            false,
        )
        .unwrap();
        assert_eq!(
            (v.framing, v.other_lengths.as_slice()),
            (Framing::Length(5), &[40][..])
        );
        assert!(
            v.notes[0].contains("differing Content-Length values 5, 40"),
            "{v:?}"
        );
        // A request Transfer-Encoding that does not end in chunked.
        let v = framing(
            &head(&[("Transfer-Encoding", "chunked, gzip")]),
            true,
            false,
        )
        .unwrap();
        assert_eq!(v.framing, Framing::None);
        assert!(v.notes[0].contains("does not end in chunked"), "{v:?}");
        let v = framing(
            &head(&[("Transfer-Encoding", "gzip"), ("Content-Length", "7")]),
            true,
            false,
        )
        .unwrap();
        assert_eq!(v.framing, Framing::Length(7));
        // Nothing ambiguous, nothing noted.
        let v = framing(&head(&[("Content-Length", "7")]), true, false).unwrap();
        assert!(v.notes.is_empty() && v.other_lengths.is_empty());
    }

    #[test]
    fn issue14_obs_fold_is_unfolded_and_the_dropped_reading_kept() {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n";
        let (joined, dropped) = unfold(raw).unwrap();
        assert_eq!(
            joined,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        );
        assert_eq!(
            dropped,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\nContent-Length: 4\r\n\r\n"
        );
        let r = parse_request(raw).unwrap();
        assert_eq!(
            r.head.header_str("transfer-encoding").as_deref(),
            Some("chunked")
        );
        let alt = r.without_folds.unwrap();
        assert_eq!(alt.header_str("transfer-encoding").as_deref(), Some(""));
        assert!(unfold(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").is_none());
    }

    #[test]
    fn issue14_http09_request_lines() {
        assert_eq!(first_line(b"GET /index.html\r\n"), FirstLine::Http09(17));
        assert_eq!(first_line(b"GET /\n"), FirstLine::Http09(6));
        assert_eq!(first_line(b"GET / HTTP/1.0\r\n"), FirstLine::Http1);
        assert_eq!(first_line(b"GET /partial"), FirstLine::Http1);
        assert_eq!(first_line(b"POST /x\r\n"), FirstLine::Http1);
        assert_eq!(first_line(b"GET \x00\x9f\xff\r\n"), FirstLine::Garbage(9));
        assert_eq!(first_line(b"GET a b c\r\n"), FirstLine::Garbage(11));
    }
}
