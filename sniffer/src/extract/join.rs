//! Joining HLS segments at the end of the capture: each plan of [`super::hls`] becomes
//! one file, the saved segment files read back in media-sequence order, each without its
//! leading ID3 tag (packed audio: ADTS, MP3; MPEG-TS has none and is copied as it is).

use std::io::Read as _;

use super::{BUF, Extractor, IndexEntry, Job, Sink, frames, hls::JoinPlan, naming, open_in};
use crate::records::HlsJoin;

impl Extractor {
    /// Write every joined file the capture allows.
    pub(super) fn join_hls(&mut self) {
        let plans = self.hls.plans();
        if plans.is_empty() {
            return;
        }
        // The segment files must be whole before they are read back.
        self.sync();
        for plan in plans {
            self.join(plan);
        }
    }

    fn join(&mut self, p: JoinPlan) {
        let o = &p.origin;
        let mut sink = match self.sink_named(&|attempt| {
            naming::joined_name(o.stream, o.number, &o.uri, p.part, &p.ext, attempt)
        }) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("joining HLS segments: {e}");
                self.stats.failed += 1;
                return;
            }
        };
        let mut notes = p.notes.clone();
        let mut joined = 0;
        let mut buf = vec![0; BUF];
        for file in &p.files {
            match self.copy_segment(file, &mut sink, &mut buf) {
                Ok(()) => joined += 1,
                Err(e) => notes.push(format!("segment {file} could not be read back: {e}")),
            }
        }
        sink.flush(super::ready(&self.writer));
        let complete = p.holes.is_empty() && joined == p.files.len();
        let entry = IndexEntry {
            ts: p.ts,
            stream: o.stream,
            transaction: o.number,
            endpoints: o.endpoints,
            community_id: crate::wire::community_id(
                self.config.community_id_seed,
                o.endpoints.client(),
                o.endpoints.server(),
            ),
            method: o.method.clone(),
            url: Some(p.playlist.clone()),
            dir: crate::wire::Direction::Resp,
            status: Some(200),
            content_type: p.mime.clone(),
            detected_type: p.mime.clone(),
            content_encoding: None,
            range: None,
            content_range: None,
            size: sink.len,
            sha256: String::new(),
            file: sink.name.clone(),
            complete,
            gaps: Vec::new(),
            notes,
            part: None,
            merged_from: Vec::new(),
            icy: None,
            hls: Some(HlsJoin {
                playlist: p.playlist.clone(),
                segments: joined as u64,
                holes: p.holes.clone(),
            }),
            error: None,
        };
        super::ready(&self.writer).send(Job::Close {
            id: sink.id,
            entry: Box::new(entry),
        });
        self.stats.joined += 1;
    }

    /// Append one segment file to `sink`, less its leading ID3 tag.
    fn copy_segment(&self, file: &str, sink: &mut Sink, buf: &mut [u8]) -> std::io::Result<()> {
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the output directory is not open"))?;
        let mut f = open_in(dir, file)?;
        let mut skip: Option<u64> = None;
        let mut seen = 0u64;
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            let chunk = &buf[..n];
            let start = seen;
            seen += n as u64;
            let tag = *skip.get_or_insert_with(|| {
                // A tag header is 10 bytes; the first read of a file brings them.
                match frames::id3_len(chunk) {
                    frames::Id3::Tag(n) => n,
                    frames::Id3::None | frames::Id3::Short => 0,
                }
            });
            if seen <= tag {
                continue;
            }
            let from = tag.saturating_sub(start) as usize;
            sink.write_at(super::ready(&self.writer), sink.len, &chunk[from..]);
        }
    }
}
