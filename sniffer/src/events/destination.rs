//! Where events go: `--events URL`, parsed and checked before anything starts.
//!
//! - `redis://[USER:PASSWORD@]HOST[:PORT]/KEY[?db=N]`: the Redis Stream KEY (port 6379 by
//!   default); `rediss://` is the same over TLS, with the system's trusted roots (or
//!   `SSL_CERT_FILE`), and `#insecure` after it skips the host-name check.
//! - `file://PATH[?rotate=SIZE[&keep=N]]`: JSON lines appended to PATH (`file:///var/…` is
//!   absolute, `file://events.jsonl` relative), rotated when it would grow past SIZE
//!   (`100MB`, `64KiB`, …), keeping N rotated files (10 by default).

use std::{fmt, path::PathBuf};

/// One destination of `--events`.
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// A Redis Stream.
    Redis(RedisStream),
    /// A JSON-lines file.
    File(EventFile),
}

/// A Redis Stream: where the server is, and the key.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisStream {
    /// The URL the redis crate connects with: `redis[s]://[USER:PASSWORD@]HOST:PORT/DB`.
    pub(super) connect: String,
    /// The URL as given, without the password: for messages.
    pub(super) shown: String,
    /// The stream's key.
    pub key: String,
}

/// A JSON-lines file, rotated by size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFile {
    /// The file.
    pub path: PathBuf,
    /// Rotate before it would grow past this many bytes; never when `None`.
    pub rotate: Option<u64>,
    /// Rotated files kept (`PATH.1` newest … `PATH.N`).
    pub keep: u32,
}

/// Rotated files kept when `rotate` is given without `keep`.
const DEFAULT_KEEP: u32 = 10;

/// A URL that does not name a destination. The message says what is wrong and what is
/// expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--events {url}: {why}")]
pub struct BadUrl {
    /// The URL as given (password hidden).
    pub url: String,
    /// What is wrong with it.
    pub why: String,
}

const FORMS: &str = "expected redis://HOST:PORT/KEY, rediss://HOST:PORT/KEY (TLS) \
                     or file://PATH?rotate=100MB&keep=10";

impl Destination {
    /// Parse one `--events` URL.
    ///
    /// # Errors
    /// An unknown scheme, a Redis URL without a host or a key, a bad port or query, a file
    /// URL without a path, a size that does not parse.
    pub fn parse(url: &str) -> Result<Self, BadUrl> {
        let bad = |why: String| BadUrl {
            url: hide_password(url),
            why,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(format!("not a URL; {FORMS}")));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "rediss" => parse_redis(url).map(Self::Redis).map_err(bad),
            "file" => parse_file(rest).map(Self::File).map_err(bad),
            other => Err(bad(format!("unknown scheme {other:?}; {FORMS}"))),
        }
    }
}

fn parse_redis(given: &str) -> Result<RedisStream, String> {
    let mut url = url::Url::parse(given).map_err(|e| format!("{e}; {FORMS}"))?;
    let host = url.host_str().filter(|h| !h.is_empty()).map(str::to_owned);
    let Some(host) = host else {
        return Err(format!("no host; {FORMS}"));
    };
    let key = url
        .path()
        .strip_prefix('/')
        .map(percent_decode)
        .transpose()?
        .unwrap_or_default();
    if key.is_empty() {
        return Err(format!(
            "no stream key: add it as the path, e.g. redis://{host}:6379/sniffer"
        ));
    }
    let mut db = 0i64;
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "db" => {
                db = value
                    .parse()
                    .ok()
                    .filter(|d| *d >= 0)
                    .ok_or_else(|| format!("db={value}: not a database number"))?;
            }
            other => return Err(format!("unknown parameter {other:?} (only db=N)")),
        }
    }
    if url.port().is_none() {
        url.set_port(Some(6379))
            .map_err(|()| "no port".to_owned())?;
    }
    url.set_path(&format!("/{db}"));
    url.set_query(None);
    let connect = url.to_string();
    // The redis crate checks the rest (e.g. TLS support) here, before anything starts.
    redis::Client::open(connect.as_str()).map_err(|e| e.to_string())?;
    Ok(RedisStream {
        connect,
        shown: hide_password(given),
        key,
    })
}

fn parse_file(rest: &str) -> Result<EventFile, String> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(format!("no path; {FORMS}"));
    }
    let mut rotate = None;
    let mut keep = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "rotate" => rotate = Some(parse_size(value)?),
            "keep" => {
                keep = Some(
                    value
                        .parse()
                        .map_err(|_| format!("keep={value}: not a number of files"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (only rotate=SIZE and keep=N)"
                ));
            }
        }
    }
    if keep.is_some() && rotate.is_none() {
        return Err("keep=N without rotate=SIZE: add rotate=100MB, say".into());
    }
    Ok(EventFile {
        path: PathBuf::from(path),
        rotate,
        keep: keep.unwrap_or(DEFAULT_KEEP),
    })
}

/// `100MB`, `64KiB`, `5000`: bytes. K/M/G are powers of 1000, Ki/Mi/Gi of 1024.
fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("rotate={s}: not a size (like 100MB, 64KiB or 5000)");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let unit: u64 = match s[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000 * 1000,
        "g" | "gb" => 1000 * 1000 * 1000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).filter(|&b| b > 0).ok_or_else(bad)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?}: a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?}: not UTF-8 once decoded"))
}

/// The URL with its password, if any, replaced by `***`.
fn hide_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(r) => f.write_str(&r.shown),
            Self::File(file) => write!(f, "file://{}", file.path.display()),
        }
    }
}

impl fmt::Debug for Destination {
    /// As [`fmt::Display`]: never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Destination({self})")
    }
}

impl fmt::Debug for RedisStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStream")
            .field("url", &self.shown)
            .field("key", &self.key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(url: &str) -> RedisStream {
        match Destination::parse(url).unwrap() {
            Destination::Redis(r) => r,
            Destination::File(f) => panic!("{url}: a file? {f:?}"),
        }
    }

    fn file(url: &str) -> EventFile {
        match Destination::parse(url).unwrap() {
            Destination::File(f) => f,
            Destination::Redis(r) => panic!("{url}: redis? {r:?}"),
        }
    }

    fn why(url: &str) -> String {
        Destination::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn issue15_redis_urls() {
        let r = redis("redis://127.0.0.1:6380/sniffer");
        assert_eq!(r.key, "sniffer");
        assert_eq!(r.connect, "redis://127.0.0.1:6380/0");
        let r = redis("redis://cache.example/events:http?db=3");
        assert_eq!(r.key, "events:http");
        assert_eq!(r.connect, "redis://cache.example:6379/3");
        let r = redis("redis://:s3cret@[::1]:7000/a%20b");
        assert_eq!(r.key, "a b");
        assert_eq!(r.connect, "redis://:s3cret@[::1]:7000/0");
        assert!(!format!("{r:?}").contains("s3cret"), "{r:?}");
        assert!(
            !Destination::Redis(r).to_string().contains("s3cret"),
            "the password is never shown"
        );
        let r = redis("rediss://u:p@h:6390/k#insecure");
        assert_eq!(r.connect, "rediss://u:p@h:6390/0#insecure");
    }

    #[test]
    fn issue15_file_urls() {
        assert_eq!(
            file("file:///var/log/sniffer.jsonl?rotate=100MB&keep=3"),
            EventFile {
                path: "/var/log/sniffer.jsonl".into(),
                rotate: Some(100_000_000),
                keep: 3
            }
        );
        assert_eq!(
            file("file://events.jsonl?rotate=64KiB"),
            EventFile {
                path: "events.jsonl".into(),
                rotate: Some(65536),
                keep: 10
            }
        );
        assert_eq!(file("file://e.jsonl").rotate, None);
        assert_eq!(parse_size("5000"), Ok(5000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1g"), Ok(1_000_000_000));
    }

    #[test]
    fn issue15_bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("kafka://broker:9092/t", "unknown scheme \"kafka\""),
            ("127.0.0.1:6379/k", "not a URL"),
            ("redis://127.0.0.1:6379", "no stream key"),
            ("redis://127.0.0.1:6379/", "no stream key"),
            ("redis://127.0.0.1:99999/k", "invalid port"),
            ("redis:///k", "no host"),
            ("redis://h/k?maxlen=5", "unknown parameter \"maxlen\""),
            ("redis://h/k?db=x", "db=x: not a database number"),
            ("file://", "no path"),
            ("file://e.jsonl?rotate=lots", "rotate=lots: not a size"),
            ("file://e.jsonl?rotate=0", "rotate=0: not a size"),
            ("file://e.jsonl?keep=3", "keep=N without rotate"),
            ("file://e.jsonl?size=3", "unknown parameter \"size\""),
        ] {
            let msg = why(url);
            assert!(msg.contains(says), "{url}: {msg}");
            assert!(msg.starts_with("--events "), "{url}: {msg}");
        }
        assert!(
            !why("redis://:pw@h:1").contains("pw"),
            "no password in errors"
        );
    }
}
