//! One line per HTTP transaction: human-readable, or JSON lines (`--json`).

use crate::{extract::IndexEntry, http::Transaction};

/// A transaction as `--json` prints it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TransactionRecord {
    /// Response time (request time when there was no response), `SECONDS.MICROS`.
    pub time: String,
    /// Stream index.
    pub stream: u64,
    /// Transaction number within the stream.
    pub transaction: u64,
    /// Client `ADDR:PORT`.
    pub client: String,
    /// Server `ADDR:PORT`.
    pub server: String,
    /// Request method, `-` when the request was not seen.
    pub method: String,
    /// Request URL, when the request was seen.
    pub url: Option<String>,
    /// Response status, when a response was seen.
    pub status: Option<u16>,
    /// Media type.
    pub content_type: Option<String>,
    /// `Content-Encoding` as sent.
    pub content_encoding: Option<String>,
    /// Body bytes: decoded when decoded, else as sent.
    pub body_size: u64,
    /// The body arrived whole.
    pub complete: bool,
    /// Why the framing was refused, if it was.
    pub malformed: Option<String>,
    /// Saved file (path inside the output directory), if saved.
    pub saved: Option<String>,
    /// Notes from parsing and saving.
    pub notes: Vec<String>,
}

impl TransactionRecord {
    /// The record of `tx`, saved as `saved` (if it was) in `out_dir`.
    pub fn new(tx: &Transaction, saved: Option<&IndexEntry>, out_dir: &std::path::Path) -> Self {
        let resp = tx.response.as_ref();
        let ts = resp
            .map(|r| r.ts)
            .or_else(|| tx.request.as_ref().map(|r| r.ts))
            .unwrap_or_default();
        let body_size = if tx.body.decode_error.is_none() {
            tx.body.decoded_len
        } else {
            tx.body.raw_len
        };
        let mut notes = saved.map_or_else(|| tx.body.notes.clone(), |e| e.notes.clone());
        if saved.is_none()
            && let Some(e) = &tx.body.decode_error
        {
            notes.push(e.clone());
        }
        Self {
            time: ts.to_string(),
            stream: tx.stream,
            transaction: tx.number,
            client: tx.client.to_string(),
            server: tx.server.to_string(),
            method: tx.method().to_owned(),
            url: tx.url(),
            status: resp.map(|r| r.status),
            content_type: resp.and_then(crate::http::Response::content_type),
            content_encoding: resp.and_then(|r| r.head.header_str("content-encoding")),
            body_size,
            complete: tx.body.complete,
            malformed: tx.malformed.as_ref().map(ToString::to_string),
            saved: saved.map(|e| out_dir.join(&e.file).display().to_string()),
            notes,
        }
    }

    /// The human-readable line (no newline):
    /// `TIME STREAM METHOD HOST/URI STATUS TYPE SIZE [-> FILE] [(notes)]`.
    pub fn human(&self) -> String {
        let url = self.url.as_deref().map_or_else(
            || format!("{} (request not seen)", self.server),
            |u| u.strip_prefix("http://").unwrap_or(u).to_owned(),
        );
        let status = self
            .status
            .map_or_else(|| "no-response".to_owned(), |s| s.to_string());
        let mut line = format!(
            "{} {:>4} {} {} {} {} {}",
            self.time,
            self.stream,
            self.method,
            printable(&url),
            status,
            self.content_type.as_deref().unwrap_or("-"),
            self.body_size,
        );
        if let Some(s) = &self.saved {
            line.push_str(" -> ");
            line.push_str(s);
        }
        if !self.complete && self.status.is_some() {
            line.push_str(" [incomplete]");
        }
        if let Some(m) = &self.malformed {
            line.push_str(&format!(" [refused: {m}]"));
        }
        line
    }

    /// The JSON line (no newline).
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("plain data serializes")
    }
}

/// Control characters replaced so a hostile URL cannot drive the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        http::{BodyInfo, MessageHead, Method, Request, Response},
        wire::Timestamp,
    };

    fn tx() -> Transaction {
        Transaction {
            stream: 3,
            number: 1,
            client: "10.0.0.1:5000".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            request: Some(Request {
                method: Method::Get,
                uri: b"/a\x1b[2J.mp3".to_vec(),
                head: MessageHead {
                    version: 1,
                    headers: vec![("Host".into(), b"example.org".to_vec())],
                    unparsed_framing: Vec::new(),
                },
                ts: Timestamp(1_000_000_000),
                offset: 0,
                server_offset: 0,
            }),
            response: Some(Response {
                status: 200,
                reason: "OK".into(),
                head: MessageHead {
                    version: 1,
                    headers: vec![("Content-Type".into(), b"audio/mpeg; x=1".to_vec())],
                    unparsed_framing: Vec::new(),
                },
                ts: Timestamp(2_500_000_000),
                offset: 0,
            }),
            body: BodyInfo {
                raw_len: 42,
                decoded_len: 42,
                complete: true,
                ..BodyInfo::default()
            },
            malformed: None,
        }
    }

    #[test]
    fn human_and_json_lines() {
        let r = TransactionRecord::new(&tx(), None, "out".as_ref());
        assert_eq!(
            r.human(),
            "2.500000    3 GET example.org/a?[2J.mp3 200 audio/mpeg 42"
        );
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["url"], "http://example.org/a\u{1b}[2J.mp3");
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_size"], 42);
        assert_eq!(v["saved"], serde_json::Value::Null);
    }
}
