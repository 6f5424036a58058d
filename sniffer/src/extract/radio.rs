//! Radio streams in the extractor: a response with `icy-metaint` has its metadata blocks
//! removed ([`crate::http::icy`]) and is cut into titled tracks ([`super::tracks`]), each
//! a file with its own index line, written as it ends. The station comes from the
//! `icy-*` headers (SHOUTcast's `ICY 200 OK` and Icecast's `HTTP/1.0 200 OK` alike).

use super::{
    Extractor, IndexEntry, Job, Sink,
    detect::Detected,
    is_generic, naming,
    tracks::{TrackDone, TrackOut, Tracks},
};
use crate::{
    http::{
        BodyEvent, Response, Transaction,
        icy::{Demuxer, MetaintError, parse_metaint},
    },
    records::{Endpoints, IcyTrack, Station},
    wire::Timestamp,
};

/// The `icy-metaint` of a response, if it has one.
pub(super) fn metaint(resp: &Response) -> Option<Result<u64, MetaintError>> {
    resp.head.header("icy-metaint").map(parse_metaint)
}

/// Longest header text kept for the station.
const MAX_STATION_TEXT: usize = 200;

/// A header as text: UTF-8, or Latin-1 when it is not; trimmed and bounded.
fn text(v: &[u8]) -> Option<String> {
    let s = match std::str::from_utf8(v) {
        Ok(s) => s.trim().to_owned(),
        Err(_) => v
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .trim()
            .to_owned(),
    };
    (!s.is_empty()).then(|| s.chars().take(MAX_STATION_TEXT).collect())
}

/// The station of a response with `icy-*` headers.
pub(super) fn station(resp: &Response) -> Option<Station> {
    let h = |n: &str| resp.head.header(n).and_then(text);
    let bitrate = resp.head.header("icy-br").and_then(|v| {
        let digits: String = String::from_utf8_lossy(v)
            .trim()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    });
    let s = Station {
        name: h("icy-name"),
        genre: h("icy-genre"),
        url: h("icy-url"),
        bitrate,
    };
    let any = s.name.is_some() || s.genre.is_some() || s.url.is_some() || s.bitrate.is_some();
    (any || resp.head.header("icy-metaint").is_some()).then_some(s)
}

/// What every track's index line says of the stream.
struct Ctx {
    stream: u64,
    number: u64,
    declared: Option<String>,
    declared_wanted: bool,
    endpoints: Endpoints,
    method: String,
    url: Option<String>,
    status: u16,
    station: Station,
    detected: Option<Detected>,
    /// The entry of the last track closed.
    last: Option<IndexEntry>,
    first_file: Option<String>,
    files: u64,
}

/// A radio stream being saved.
pub(super) struct IcyBody {
    demux: Demuxer,
    tracks: Tracks<Sink>,
    ctx: Ctx,
}

impl IcyBody {
    /// The stream of `tx`, with blocks every `metaint` audio bytes.
    pub(super) fn new(
        tx: &Transaction,
        metaint: u64,
        declared_wanted: bool,
        split: bool,
        now: Timestamp,
    ) -> Self {
        let resp = tx.response.as_ref();
        let declared = resp.and_then(Response::content_type);
        let kind = match declared.as_deref() {
            Some(t) if t.contains("aac") => Some(super::frames::FrameKind::Adts),
            Some(t) if t.contains("mpeg") || t.contains("mp3") => {
                Some(super::frames::FrameKind::Mpeg)
            }
            _ => None,
        };
        Self {
            demux: Demuxer::new(metaint),
            tracks: Tracks::new(split, kind, now),
            ctx: Ctx {
                stream: tx.stream,
                number: tx.number,
                declared,
                declared_wanted,
                endpoints: Endpoints::new(tx.client, tx.server),
                method: tx.method().to_owned(),
                url: tx.url(),
                status: resp.map_or(0, |r| r.status),
                station: resp.and_then(station).unwrap_or_default(),
                detected: None,
                last: None,
                first_file: None,
                files: 0,
            },
        }
    }
}

/// The extractor as the place tracks go.
struct IcyOut<'a> {
    ex: &'a mut Extractor,
    ctx: &'a mut Ctx,
}

impl TrackOut for IcyOut<'_> {
    type File = Sink;

    fn wanted(&mut self, detected: Option<&Detected>) -> bool {
        self.ctx.detected = detected.copied();
        let wanted = self.ctx.declared_wanted
            || (is_generic(self.ctx.declared.as_deref())
                && detected.is_some_and(|d| self.ex.wants(Some(d.mime))));
        if !wanted {
            self.ex.stop = Some((
                self.ctx.stream,
                self.ctx.number,
                crate::wire::Direction::Resp,
            ));
        }
        wanted
    }

    fn create(
        &mut self,
        number: Option<u64>,
        title: Option<&str>,
        detected: Option<&Detected>,
    ) -> Option<Sink> {
        let ext = detected
            .map(|d| d.ext)
            .or_else(|| self.ctx.declared.as_deref().and_then(naming::extension_for))
            .unwrap_or("bin");
        let c = &self.ctx;
        let station = c.station.name.as_deref();
        match self.ex.sink_named(&|attempt| {
            naming::track_name(c.stream, c.number, station, number, title, ext, attempt)
        }) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("radio track not saved: {e}");
                self.ex.stats.failed += 1;
                None
            }
        }
    }

    fn write(&mut self, f: &mut Sink, bytes: &[u8]) {
        f.write_at(super::ready(&self.ex.writer), f.len, bytes);
    }

    fn pad(&mut self, f: &mut Sink, len: u64) {
        f.pad(super::ready(&self.ex.writer), len);
    }

    fn close(&mut self, mut f: Sink, done: TrackDone) {
        f.flush(super::ready(&self.ex.writer));
        let c = &mut *self.ctx;
        let entry = IndexEntry {
            ts: done.ts,
            stream: c.stream,
            transaction: c.number,
            endpoints: c.endpoints,
            community_id: crate::wire::community_id(
                self.ex.config.community_id_seed,
                c.endpoints.client(),
                c.endpoints.server(),
            ),
            method: c.method.clone(),
            url: c.url.clone(),
            dir: crate::wire::Direction::Resp,
            status: Some(c.status).filter(|&s| s != 0),
            content_type: c.declared.clone(),
            detected_type: c.detected.map(|d| d.mime.to_owned()),
            content_encoding: None,
            range: None,
            content_range: None,
            size: f.len,
            sha256: String::new(),
            file: f.name.clone(),
            complete: done.complete,
            gaps: done.gaps,
            notes: done.notes,
            part: None,
            merged_from: Vec::new(),
            icy: Some(IcyTrack {
                station: c.station.clone(),
                title: done.title,
                stream_url: done.url,
                track: done.number,
                offset: done.offset,
            }),
            hls: None,
            error: None,
        };
        super::ready(&self.ex.writer).send(Job::Close {
            id: f.id,
            entry: Box::new(entry.clone()),
        });
        self.ex.stats.tracks += 1;
        c.files += 1;
        c.first_file.get_or_insert_with(|| entry.file.clone());
        c.last = Some(entry);
    }
}

impl Extractor {
    /// A piece of a radio stream's body.
    pub(super) fn icy_event(&mut self, icy: &mut IcyBody, event: BodyEvent<'_>) {
        let IcyBody { demux, tracks, ctx } = icy;
        if tracks.dropped() {
            return;
        }
        tracks.set_time(self.now);
        let mut out = IcyOut { ex: self, ctx };
        match event {
            BodyEvent::Raw { bytes, .. } => demux.feed(bytes, &mut |e| tracks.event(&mut out, e)),
            BodyEvent::Gap { len, .. } => demux.gap(len, &mut |e| tracks.event(&mut out, e)),
            BodyEvent::Decoded { .. } | BodyEvent::DecodeFailed { .. } => {}
        }
    }

    /// Close a radio stream: its last track, with `notes`. The entry returned (for the
    /// transaction's line) is the last track's, noting how many files the stream made.
    fn icy_close(&mut self, mut icy: IcyBody, notes: &[String]) -> Option<IndexEntry> {
        let IcyBody { demux, tracks, ctx } = &mut icy;
        tracks.set_time(self.now);
        let mut out = IcyOut { ex: self, ctx };
        demux.finish(&mut |e| tracks.event(&mut out, e));
        tracks.finish(&mut out, notes);
        self.stats.unplaced_bytes += demux.stats().unplaced_bytes;
        let mut last = icy.ctx.last.take()?;
        if icy.ctx.files > 1 {
            last.notes.push(format!(
                "the stream was saved as {} tracks, {} to {}",
                icy.ctx.files,
                icy.ctx.first_file.as_deref().unwrap_or_default(),
                last.file
            ));
        }
        Some(last)
    }

    /// The radio stream of `tx` is over.
    pub(super) fn icy_done(
        &mut self,
        tx: &Transaction,
        icy: IcyBody,
        extra: Vec<String>,
    ) -> Option<IndexEntry> {
        let mut notes = tx.body.notes.clone();
        notes.extend(extra);
        let last = self.icy_close(icy, &notes);
        self.last.clone_from(&last);
        last
    }

    /// The capture stopped inside a radio stream.
    pub(super) fn icy_cut_off(&mut self, icy: IcyBody) {
        self.icy_close(icy, &["the capture stopped inside the body".into()]);
    }
}
