//! Message heads: finding where a head ends, parsing it with httparse, and deciding how
//! the body that follows is framed (RFC 9112 §6.3).

use super::{Malformed, MessageHead, Method};

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

/// A request line and headers: `head` is exactly one head, blank line included.
///
/// A request target with bytes that are not UTF-8 (old clients send Latin-1) is kept with
/// those bytes percent-encoded, as httparse only hands out UTF-8 targets.
pub(crate) fn parse_request(head: &[u8]) -> Result<(Method, Vec<u8>, MessageHead), Malformed> {
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
    let version = req.version.unwrap_or(1);
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
            version: resp.version.unwrap_or(1),
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

/// The framing a head announces, or why it cannot be trusted.
///
/// `bodiless` is true where the protocol says there is no body whatever the headers say
/// (responses to HEAD, 1xx, 204, 304). For requests, no length means no body.
pub(crate) fn framing(
    head: &MessageHead,
    is_request: bool,
    bodiless: bool,
) -> Result<Framing, Malformed> {
    if bodiless {
        return Ok(Framing::None);
    }
    if let Some(line) = head.unparsed_framing.first() {
        return Err(Malformed::BadFramingHeader(line.clone()));
    }
    let mut length: Option<u64> = None;
    let mut te: Option<Vec<u8>> = None;
    for (name, value) in &head.headers {
        if name.eq_ignore_ascii_case("content-length") {
            // "5, 5" and repeated equal headers are one length; any disagreement is refused.
            for part in value.split(|&b| b == b',') {
                let text = String::from_utf8_lossy(part.trim_ascii());
                let n: u64 = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                    text.parse()
                        .map_err(|_| Malformed::BadLength(text.clone().into_owned()))?
                } else {
                    return Err(Malformed::BadLength(text.into_owned()));
                };
                match length {
                    Some(first) if first != n => {
                        return Err(Malformed::ConflictingLength { first, second: n });
                    }
                    _ => length = Some(n),
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
    if let Some(te) = te {
        let last = te
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .rfind(|c| !c.is_empty())
            .unwrap_or_default();
        let chunked = last.eq_ignore_ascii_case(b"chunked");
        if length.is_some() {
            // RFC 9112 §6.3 lets TE override, but a sender doing both is smuggling or broken.
            return Err(Malformed::LengthWithChunked);
        }
        if chunked {
            return Ok(Framing::Chunked);
        }
        if is_request {
            return Err(Malformed::BadTransferEncoding(
                String::from_utf8_lossy(&te).into_owned(),
            ));
        }
        return Ok(Framing::UntilClose);
    }
    Ok(match length {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None if is_request => Framing::None,
        None => Framing::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> MessageHead {
        MessageHead {
            version: 1,
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
            framing(&head, false, false),
            Err(Malformed::BadFramingHeader(_))
        ));
        let ok = parse_response(
            b"HTTP/1.1 200 ok\r\nTransfer-Encoding : chunked\r\nContent-Length-X: 1\r\n\r\n",
        )
        .unwrap()
        .head;
        assert!(ok.unparsed_framing.is_empty());
        assert_eq!(framing(&ok, false, false), Ok(Framing::Chunked));
    }

    #[test]
    fn issue11_icy_status_line_reads_as_http_1_0() {
        let r = parse_response(b"ICY 200 OK\r\nicy-name: Test Radio\r\nicy-metaint: 16000\r\n\r\n")
            .unwrap();
        assert!(r.icy);
        assert_eq!(
            (r.status, r.reason.as_str(), r.head.version),
            (200, "OK", 0)
        );
        assert_eq!(r.head.header_str("icy-metaint").as_deref(), Some("16000"));
        assert_eq!(framing(&r.head, false, false), Ok(Framing::UntilClose));
        let plain = parse_response(b"HTTP/1.0 200 OK\r\n\r\n").unwrap();
        assert!(!plain.icy);
        assert!(parse_response(b"ICY two hundred\r\n\r\n").is_err());
    }

    #[test]
    fn non_utf8_target_kept_percent_encoded() {
        let (m, uri, head) =
            parse_request(b"GET /caf\xe9.mp3 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(m, Method::Get);
        assert_eq!(uri, b"/caf%E9.mp3");
        assert_eq!(head.headers.len(), 1);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            framing(&head(&[("Content-Length", "10")]), false, false),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            framing(
                &head(&[("Content-Length", "10"), ("content-length", "10")]),
                false,
                false
            ),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            framing(&head(&[("Content-Length", "10, 10")]), false, false),
            Ok(Framing::Length(10))
        );
        assert_eq!(
            framing(
                &head(&[("Content-Length", "10"), ("Content-Length", "11")]),
                false,
                false
            ),
            Err(Malformed::ConflictingLength {
                first: 10,
                second: 11
            })
        );
        assert!(matches!(
            framing(&head(&[("Content-Length", "-1")]), false, false),
            Err(Malformed::BadLength(_))
        ));
        assert_eq!(
            framing(
                &head(&[("Content-Length", "10"), ("Transfer-Encoding", "chunked")]),
                false,
                false
            ),
            Err(Malformed::LengthWithChunked)
        );
        assert_eq!(
            framing(
                &head(&[("Transfer-Encoding", "gzip, Chunked")]),
                false,
                false
            ),
            Ok(Framing::Chunked)
        );
        assert_eq!(framing(&head(&[]), false, false), Ok(Framing::UntilClose));
        assert_eq!(framing(&head(&[]), true, false), Ok(Framing::None));
        assert_eq!(
            framing(&head(&[("Content-Length", "10")]), false, true),
            Ok(Framing::None)
        );
    }
}
