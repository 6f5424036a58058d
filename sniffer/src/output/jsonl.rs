//! One line per HTTP transaction: human-readable, or JSON lines (`--json`, the
//! [`TransactionRecord`] of the JSON vocabulary).

use std::path::Path;

use crate::{
    extract::IndexEntry,
    http::{Response, Transaction},
    records::{Endpoints, TransactionRecord},
    wire::community_id,
};

/// The record of `tx`, saved as `saved` if it was, with its Community ID from `seed`.
pub fn transaction_record(
    tx: &Transaction,
    saved: Option<&IndexEntry>,
    seed: u16,
) -> TransactionRecord {
    let resp = tx.response.as_ref();
    let ts = resp
        .map(|r| r.ts)
        .or_else(|| tx.request.as_ref().map(|r| r.ts))
        .unwrap_or_default();
    let size = if tx.body.decode_error.is_none() {
        tx.body.decoded_len
    } else {
        tx.body.raw_len
    };
    let req = tx.request.as_ref();
    // The request's notes (ambiguous framing, smuggling, HTTP/0.9), then the body's.
    let mut notes: Vec<String> = req.map(|r| r.notes.clone()).unwrap_or_default();
    notes.extend(saved.map_or_else(|| tx.body.notes.clone(), |e| e.notes.clone()));
    if saved.is_none()
        && let Some(e) = &tx.body.decode_error
    {
        notes.push(e.clone());
    }
    let request_size = req.map_or(0, |r| {
        if r.body.decode_error.is_none() && !r.body.codings.is_empty() {
            r.body.decoded_len
        } else {
            r.body.raw_len
        }
    });
    TransactionRecord {
        ts,
        stream: tx.stream,
        transaction: tx.number,
        endpoints: Endpoints::new(tx.client, tx.server),
        community_id: community_id(seed, tx.client, tx.server),
        method: tx.method().to_owned(),
        url: tx.url(),
        version: tx.version().map(|v| v.as_str().to_owned()),
        status: resp.map(|r| r.status).filter(|&s| s != 0),
        content_type: resp.and_then(Response::content_type),
        content_encoding: resp.and_then(|r| r.head.header_str("content-encoding")),
        size,
        complete: tx.body.complete,
        request_content_type: req.and_then(|r| r.head.content_type()),
        request_size,
        malformed: tx.malformed().map(ToString::to_string),
        smuggled: req.is_some_and(|r| r.smuggled),
        file: saved.map(|e| e.file.clone()),
        file_error: saved.and_then(|e| e.error.clone()),
        request_files: Vec::new(),
        notes,
    }
}

/// The human-readable line of a transaction (no newline), with saved files shown inside
/// `out_dir`: `TIME STREAM METHOD HOST/URI STATUS TYPE SIZE [-> FILE] [<- UPLOADED]
/// [flags] [(notes)]`.
pub fn human(r: &TransactionRecord, out_dir: &Path) -> String {
    let url = r.url.as_deref().map_or_else(
        || format!("{} (request not seen)", r.endpoints.server()),
        |u| u.strip_prefix("http://").unwrap_or(u).to_owned(),
    );
    let http09 = r.version.as_deref() == Some("0.9");
    let status = match r.status {
        Some(s) => s.to_string(),
        // HTTP/0.9 answers without a status line.
        None if http09 && (r.size > 0 || r.complete) => "HTTP/0.9".to_owned(),
        None => "no-response".to_owned(),
    };
    let mut line = format!(
        "{} {:>4} {} {} {} {} {}",
        r.ts,
        r.stream,
        r.method,
        printable(&url),
        status,
        r.content_type.as_deref().unwrap_or("-"),
        r.size,
    );
    if let Some(f) = &r.file {
        line.push_str(" -> ");
        line.push_str(&out_dir.join(f).display().to_string());
        if let Some(e) = &r.file_error {
            line.push_str(&format!(" [not saved whole: {e}]"));
        }
    }
    for f in &r.request_files {
        line.push_str(" <- ");
        line.push_str(&out_dir.join(f).display().to_string());
    }
    if !r.complete && r.status.is_some() {
        line.push_str(" [incomplete]");
    }
    if r.smuggled {
        line.push_str(" [smuggled]");
    }
    if let Some(m) = &r.malformed {
        line.push_str(&format!(" [refused: {m}]"));
    }
    if !r.notes.is_empty() {
        line.push_str(&format!(" ({})", printable(&r.notes.join("; "))));
    }
    line
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
        http::{BodyInfo, MessageHead, Method, Request, Response, Version},
        records::Record as _,
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
                    version: Version::Http11,
                    headers: vec![("Host".into(), b"example.org".to_vec())],
                    unparsed_framing: Vec::new(),
                },
                ts: Timestamp(1_000_000_000),
                offset: 0,
                server_offset: 0,
                number: 1,
                body: BodyInfo::default(),
                notes: Vec::new(),
                smuggled: false,
                malformed: None,
            }),
            response: Some(Response {
                status: 200,
                reason: "OK".into(),
                head: MessageHead {
                    version: Version::Http11,
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
        let r = transaction_record(&tx(), None, 0);
        assert_eq!(
            human(&r, "out".as_ref()),
            "2.500000    3 GET example.org/a?[2J.mp3 200 audio/mpeg 42"
        );
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["type"], "transaction");
        assert_eq!(v["ts"], 2.5);
        assert_eq!(v["url"], "http://example.org/a\u{1b}[2J.mp3");
        assert_eq!(v["status"], 200);
        assert_eq!(v["size"], 42);
        assert_eq!(v["orig_ip"], "10.0.0.1");
        assert_eq!(v["resp_port"], 80);
        let id = community_id(0, tx().client, tx().server);
        assert!(id.starts_with("1:"), "{id}");
        assert_eq!(v["community_id"], id.as_str());
        assert_ne!(
            transaction_record(&tx(), None, 1).community_id,
            r.community_id
        );
        assert_eq!(v["file"], serde_json::Value::Null);
    }
}
