//! Body transfer and content codings: the chunked framing state machine and the streaming
//! gzip/deflate/br decoder with its bomb guard.

use std::io::Write as _;

use super::{Limits, Malformed};

/// Longest chunk-size line accepted, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

/// Where a chunked body's parser stands.
///
/// Invariant: `line` only grows while in `Size` and never beyond [`MAX_CHUNK_LINE`];
/// `Data.remaining` is never 0 (a finished chunk moves on to `DataEnd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Reading a chunk-size line (hex size, optional `;ext`), bytes so far in `line`.
    Size { line: Vec<u8> },
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data: expecting CRLF (`seen_cr` once the CR came).
    DataEnd { seen_cr: bool },
    /// Trailer section after the last chunk; `line_len` counts the current line,
    /// `total` the whole section.
    Trailer { line_len: usize, total: usize },
    /// The body is over.
    Done,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::Size { line: Vec::new() }
    }
}

impl Chunked {
    /// Heap bytes held: the chunk-size line being gathered.
    pub(crate) fn line_capacity(&self) -> usize {
        match self {
            Self::Size { line } => line.capacity(),
            _ => 0,
        }
    }

    /// Feed framed bytes; chunk data goes to `out`. Returns the bytes consumed: less than
    /// `input.len()` only when the body ended (the rest belongs to the next message).
    ///
    /// On error, also how many bytes of `input` came before the point of failure; that
    /// point is the same however the stream was cut into calls.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        limits: &Limits,
        out: &mut dyn FnMut(&[u8]),
    ) -> Result<usize, (usize, Malformed)> {
        let total = input.len();
        let used = |rest: &[u8]| total - rest.len();
        while !input.is_empty() {
            match self {
                Self::Size { line } => {
                    let (piece, ended) = match memchr::memchr(b'\n', input) {
                        Some(i) => (&input[..i], true),
                        None => (input, false),
                    };
                    if line.len() + piece.len() > MAX_CHUNK_LINE {
                        return Err((
                            used(input) + MAX_CHUNK_LINE - line.len(),
                            Malformed::BadChunkSize(
                                "chunk-size line longer than 4096 bytes".into(),
                            ),
                        ));
                    }
                    line.extend_from_slice(piece);
                    input = &input[piece.len() + usize::from(ended)..];
                    if ended {
                        let size = parse_chunk_size(line, limits.max_chunk_size)
                            .map_err(|m| (used(input), m))?;
                        *self = if size == 0 {
                            Self::Trailer {
                                line_len: 0,
                                total: 0,
                            }
                        } else {
                            Self::Data { remaining: size }
                        };
                    }
                }
                Self::Data { remaining } => {
                    let n = (*remaining).min(input.len() as u64) as usize;
                    out(&input[..n]);
                    input = &input[n..];
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        *self = Self::DataEnd { seen_cr: false };
                    }
                }
                Self::DataEnd { seen_cr } => {
                    match (input[0], *seen_cr) {
                        (b'\r', false) => *seen_cr = true,
                        (b'\n', _) => *self = Self::Size { line: Vec::new() },
                        (b, _) => {
                            return Err((used(input), Malformed::BadChunkEnd(b)));
                        }
                    }
                    input = &input[1..];
                }
                Self::Trailer { line_len, total: t } => {
                    let (piece, ended) = match memchr::memchr(b'\n', input) {
                        Some(i) => (&input[..i], true),
                        None => (input, false),
                    };
                    *line_len += piece.iter().filter(|&&b| b != b'\r').count();
                    let before = *t;
                    *t += piece.len() + usize::from(ended);
                    if *t > limits.max_head_bytes {
                        return Err((
                            used(input) + limits.max_head_bytes - before,
                            Malformed::HeadTooLong {
                                limit: limits.max_head_bytes,
                            },
                        ));
                    }
                    input = &input[piece.len() + usize::from(ended)..];
                    if ended {
                        if *line_len == 0 {
                            *self = Self::Done;
                            return Ok(total - input.len());
                        }
                        *line_len = 0;
                    }
                }
                Self::Done => return Ok(total - input.len()),
            }
        }
        Ok(total)
    }

    /// The body is complete.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }
}

/// The size of a chunk-size line: hex digits, then optional whitespace and `;extensions`.
fn parse_chunk_size(line: &[u8], max: u64) -> Result<u64, Malformed> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(digits_end);
    let rest = rest.trim_ascii_start();
    if digits.is_empty() || !(rest.is_empty() || rest[0] == b';') {
        return Err(Malformed::BadChunkSize(
            String::from_utf8_lossy(&line[..line.len().min(64)]).into_owned(),
        ));
    }
    let significant = digits
        .iter()
        .position(|&b| b != b'0')
        .map_or(&[][..], |i| &digits[i..]);
    if significant.len() > 15 {
        return Err(Malformed::OversizedChunk { size: None, max });
    }
    let size = significant
        .iter()
        .fold(0u64, |acc, &b| acc * 16 + u64::from(hex_value(b)));
    if size > max {
        return Err(Malformed::OversizedChunk {
            size: Some(size),
            max,
        });
    }
    Ok(size)
}

const fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// A content coding this decoder knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    /// gzip or x-gzip.
    Gzip,
    /// deflate: zlib-wrapped as the RFC says, or raw as some servers send it.
    Deflate,
    /// Brotli.
    Br,
}

/// The codings of a `Content-Encoding` value, in the order they were applied; `identity`
/// is dropped. `Err` names a coding this decoder does not know.
pub(crate) fn parse_codings(value: &[u8]) -> Result<Vec<Coding>, String> {
    let mut out = Vec::new();
    for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        let t = token.to_ascii_lowercase();
        match t.as_slice() {
            b"" | b"identity" => {}
            b"gzip" | b"x-gzip" => out.push(Coding::Gzip),
            b"deflate" => out.push(Coding::Deflate),
            b"br" => out.push(Coding::Br),
            _ => return Err(String::from_utf8_lossy(token).into_owned()),
        }
    }
    Ok(out)
}

enum Layer {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    /// deflate before its first two bytes told zlib from raw.
    DeflateUndecided(Vec<u8>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

impl Layer {
    fn new(c: Coding) -> Self {
        match c {
            Coding::Gzip => Self::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
            Coding::Deflate => Self::DeflateUndecided(Vec::new()),
            Coding::Br => Self::Br(Box::new(brotli::DecompressorWriter::new(
                Vec::new(),
                16 * 1024,
            ))),
        }
    }

    /// Write `input`; decoded output accumulates in the layer's Vec.
    fn write(&mut self, input: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Gzip(d) => d.write_all(input),
            Self::Zlib(d) => d.write_all(input),
            Self::RawDeflate(d) => d.write_all(input),
            Self::Br(d) => d.write_all(input),
            Self::DeflateUndecided(held) => {
                held.extend_from_slice(input);
                if held.len() < 2 {
                    return Ok(());
                }
                let (cmf, flg) = (held[0], held[1]);
                let zlib = cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
                let held = std::mem::take(held);
                *self = if zlib {
                    Self::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
                } else {
                    Self::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
                };
                self.write(&held)
            }
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Self::Gzip(d) => d.try_finish(),
            Self::Zlib(d) => d.try_finish(),
            Self::RawDeflate(d) => d.try_finish(),
            Self::Br(d) => d.flush(),
            Self::DeflateUndecided(held) if held.is_empty() => Ok(()),
            Self::DeflateUndecided(_) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "deflate body of one byte",
            )),
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        match self {
            Self::Gzip(d) => std::mem::take(d.get_mut()),
            Self::Zlib(d) => std::mem::take(d.get_mut()),
            Self::RawDeflate(d) => std::mem::take(d.get_mut()),
            Self::Br(d) => std::mem::take(d.get_mut()),
            Self::DeflateUndecided(_) => Vec::new(),
        }
    }
}

/// Streams a content-coded body to its decoded form, layer by layer, within
/// [`Limits::max_decoded_bytes`] and [`Limits::max_ratio`].
pub(crate) struct Decoder {
    /// Decoding order: the last coding applied comes first.
    layers: Vec<Layer>,
    input: u64,
    output: u64,
    max_output: u64,
    max_ratio: u64,
}

/// What a deflate layer holds, about: inflate state with its 32 KiB window, and the
/// writer's 32 KiB buffer.
pub(super) const DEFLATE_LAYER_BYTES: u64 = 80 << 10;

/// What a brotli layer holds, about: its input buffer, and a ring buffer as large as the
/// window the stream asks for, up to 16 MiB; 1 MiB counted (encoders commonly use 4 MiB
/// windows or less, and small bodies get a smaller ring).
const BROTLI_LAYER_BYTES: u64 = (16 << 10) + (1 << 20);

impl Decoder {
    /// Memory held, estimated per layer (the libraries do not say), from the start.
    pub(crate) fn memory(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| match l {
                // Undecided soon becomes one of the other two.
                Layer::Gzip(_)
                | Layer::Zlib(_)
                | Layer::RawDeflate(_)
                | Layer::DeflateUndecided(_) => DEFLATE_LAYER_BYTES,
                Layer::Br(_) => BROTLI_LAYER_BYTES,
            })
            .sum()
    }

    /// A decoder for codings listed as applied; `Err` when there are more than allowed.
    pub(crate) fn new(codings: &[Coding], limits: &Limits) -> Result<Self, String> {
        if codings.len() > limits.max_codings {
            return Err(format!(
                "{} content codings, more than the {} allowed",
                codings.len(),
                limits.max_codings
            ));
        }
        Ok(Self {
            layers: codings.iter().rev().map(|&c| Layer::new(c)).collect(),
            input: 0,
            output: 0,
            max_output: limits.max_decoded_bytes,
            max_ratio: limits.max_ratio,
        })
    }

    /// Decode `input`, passing decoded bytes to `out`.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        self.input += input.len() as u64;
        self.run(Some(input), out)
    }

    /// The body ended: flush every layer.
    pub(crate) fn finish(&mut self, out: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        self.run(None, out)
    }

    fn run(&mut self, input: Option<&[u8]>, out: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        let mut carry: Option<Vec<u8>> = None;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let data: &[u8] = match (&carry, i) {
                (Some(c), _) => c,
                (None, 0) => input.unwrap_or_default(),
                (None, _) => &[],
            };
            if !data.is_empty() {
                layer
                    .write(data)
                    .map_err(|e| format!("layer {}: {e}", i + 1))?;
            }
            if input.is_none() {
                layer
                    .finish()
                    .map_err(|e| format!("layer {} at its end: {e}", i + 1))?;
            }
            carry = Some(layer.take_output());
        }
        if let Some(decoded) = carry
            && !decoded.is_empty()
        {
            self.output += decoded.len() as u64;
            if self.output > self.max_output {
                return Err(format!(
                    "decoded size passed the cap of {} bytes",
                    self.max_output
                ));
            }
            if self.output > self.max_ratio.saturating_mul(self.input) + (1 << 20) {
                return Err(format!(
                    "decoded {} bytes from {}: more than {}x, a decompression bomb",
                    self.output, self.input, self.max_ratio
                ));
            }
            out(&decoded);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk_pieces(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize, bool), Malformed> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        for p in input.chunks(piece.max(1)) {
            let n = c
                .feed(p, &Limits::default(), &mut |d| out.extend_from_slice(d))
                .map_err(|(_, m)| m)?;
            used += n;
            if c.is_done() {
                break;
            }
        }
        Ok((out, used, c.is_done()))
    }

    #[test]
    fn chunked_with_extensions_and_trailers_any_split() {
        let body =
            b"5;name=val\r\nhello\r\n6 ; x\r\n world\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";
        for piece in 1..body.len() {
            let (out, used, done) = dechunk_pieces(body, piece).unwrap();
            assert_eq!(out, b"hello world", "piece {piece}");
            assert!(done);
            assert_eq!(used, body.len() - 4, "piece {piece}");
        }
    }

    #[test]
    fn chunked_bare_lf_and_refusals() {
        let (out, _, done) = dechunk_pieces(b"3\nabc\n0\n\n", 100).unwrap();
        assert_eq!((out.as_slice(), done), (&b"abc"[..], true));
        assert!(matches!(
            dechunk_pieces(b"zz\r\n", 100),
            Err(Malformed::BadChunkSize(_))
        ));
        assert!(matches!(
            dechunk_pieces(b"10000000000000000\r\n", 100),
            Err(Malformed::OversizedChunk { size: None, .. })
        ));
        assert!(matches!(
            dechunk_pieces(b"fffffffff\r\n", 100),
            Err(Malformed::OversizedChunk { size: Some(_), .. })
        ));
        assert!(matches!(
            dechunk_pieces(b"3\r\nabcX", 100),
            Err(Malformed::BadChunkEnd(b'X'))
        ));
        let endless = [b"0\r\n".as_slice(), &b"X: y\r\n".repeat(20_000)].concat();
        assert!(matches!(
            dechunk_pieces(&endless, 1000),
            Err(Malformed::HeadTooLong { .. })
        ));
    }

    #[test]
    fn codings_parse() {
        assert_eq!(
            parse_codings(b"x-gzip, identity, BR").unwrap(),
            vec![Coding::Gzip, Coding::Br]
        );
        assert_eq!(parse_codings(b"compress").unwrap_err(), "compress");
    }

    fn decode_all(codings: &[Coding], data: &[u8], piece: usize) -> Result<Vec<u8>, String> {
        let mut d = Decoder::new(codings, &Limits::default())?;
        let mut out = Vec::new();
        for p in data.chunks(piece) {
            d.feed(p, &mut |b| out.extend_from_slice(b))?;
        }
        d.finish(&mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_each_coding_and_layers() {
        let plain: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        assert_eq!(
            decode_all(&[Coding::Gzip], &gzip(&plain), 1000).unwrap(),
            plain
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        assert_eq!(
            decode_all(&[Coding::Deflate], &z.finish().unwrap(), 1).unwrap(),
            plain
        );
        let mut r = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        r.write_all(&plain).unwrap();
        assert_eq!(
            decode_all(&[Coding::Deflate], &r.finish().unwrap(), 777).unwrap(),
            plain
        );
        let mut b = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut b, 4096, 5, 22);
            w.write_all(&plain).unwrap();
        }
        assert_eq!(decode_all(&[Coding::Br], &b, 500).unwrap(), plain);
        // gzip applied first, then br: decoded br first.
        let mut gb = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut gb, 4096, 5, 22);
            w.write_all(&gzip(&plain)).unwrap();
        }
        assert_eq!(
            decode_all(&[Coding::Gzip, Coding::Br], &gb, 1448).unwrap(),
            plain
        );
        assert!(Decoder::new(&[Coding::Gzip; 3], &Limits::default()).is_err());
    }

    #[test]
    fn bomb_and_garbage_refused() {
        let zeros = vec![0u8; 50 << 20];
        let bomb = gzip(&zeros);
        let err = decode_all(&[Coding::Gzip], &bomb, 1448).unwrap_err();
        assert!(err.contains("bomb"), "{err}");
        let err = decode_all(&[Coding::Gzip], b"not gzip at all", 4).unwrap_err();
        assert!(err.contains("layer 1"), "{err}");
    }
}
