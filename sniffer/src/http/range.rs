//! `Content-Range` of 206 responses (RFC 9110 §14.4).

/// `bytes FIRST-LAST/COMPLETE` of a 206 response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ContentRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position, inclusive.
    pub last: u64,
    /// The whole resource's length, when the server knows it (`*` otherwise).
    pub complete: Option<u64>,
}

impl ContentRange {
    /// Parse a `Content-Range` value; `None` unless it is a satisfied byte range.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let v = std::str::from_utf8(value).ok()?.trim();
        let rest = v
            .get(..6)
            .filter(|p| p.eq_ignore_ascii_case("bytes "))
            .map(|_| v[6..].trim_start())?;
        let (span, complete) = rest.split_once('/')?;
        let (first, last) = span.trim().split_once('-')?;
        let first: u64 = first.trim().parse().ok()?;
        let last: u64 = last.trim().parse().ok()?;
        let complete = match complete.trim() {
            "*" => None,
            n => Some(n.parse().ok()?),
        };
        if last < first || complete.is_some_and(|c| last >= c) {
            return None;
        }
        Some(Self {
            first,
            last,
            complete,
        })
    }

    /// Bytes the range covers.
    pub const fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a satisfied range holds at least one byte.
    pub const fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            ContentRange::parse(b"bytes 100-199/1000"),
            Some(ContentRange {
                first: 100,
                last: 199,
                complete: Some(1000)
            })
        );
        assert_eq!(
            ContentRange::parse(b"Bytes 0-0/*").map(|r| r.len()),
            Some(1)
        );
        assert_eq!(ContentRange::parse(b"bytes */1000"), None);
        assert_eq!(ContentRange::parse(b"bytes 5-4/1000"), None);
        assert_eq!(ContentRange::parse(b"bytes 0-1000/1000"), None);
        assert_eq!(ContentRange::parse(b"items 0-1/2"), None);
    }
}
