//! Audio frame headers: MPEG audio (MPEG-1, MPEG-2 and MPEG-2.5, layers I, II and III)
//! and ADTS (AAC), and the ID3v2 tag that may precede them.
//!
//! One sync word proves nothing (random bytes hold `0xFF 0xE?` every few KiB), so a
//! header is believed only when every field is valid and the next frame, where its
//! length says, starts with a header of the same stream ([`chain_at`], [`find_chain`]).
//! Used by content detection ([`super::detect`]) and by cutting a radio stream into
//! tracks at frame boundaries ([`super::tracks`]).

/// Bytes needed to read any header (ADTS without CRC is the longest fixed part).
pub const HEADER_MAX: usize = 7;

/// Longest possible frame: an ADTS frame length is 13 bits.
pub const MAX_FRAME: usize = 8191;

/// Which framing a stream uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// MPEG-1/2/2.5 audio, layers I–III (`audio/mpeg`).
    Mpeg,
    /// ADTS: AAC with a header per frame (`audio/aac`).
    Adts,
}

impl FrameKind {
    /// The media type of a stream of such frames.
    pub const fn mime(self) -> &'static str {
        match self {
            Self::Mpeg => "audio/mpeg",
            Self::Adts => "audio/aac",
        }
    }
}

/// A valid frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// MPEG or ADTS.
    pub kind: FrameKind,
    /// The whole frame, header included, in bytes.
    pub len: usize,
    /// Samples per second.
    pub sample_rate: u32,
    /// What must stay the same from frame to frame in one stream: version, layer and
    /// sample rate (MPEG), or version, profile, sample rate and channels (ADTS).
    stream_id: u32,
}

impl Header {
    /// True when `next` can follow this header in the same stream.
    pub const fn same_stream(&self, next: &Self) -> bool {
        matches!(
            (self.kind, next.kind),
            (FrameKind::Mpeg, FrameKind::Mpeg) | (FrameKind::Adts, FrameKind::Adts)
        ) && self.stream_id == next.stream_id
    }
}

/// What the bytes at some position are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// A valid header.
    Valid(Header),
    /// Not a header.
    Invalid,
    /// Too few bytes to tell.
    Short,
}

/// kbit/s by [version group][layer][index]; version group 0 = MPEG-1, 1 = MPEG-2/2.5;
/// layer 0 = I, 1 = II, 2 = III. Index 0 (free format) and 15 are not accepted.
const BITRATES: [[[u16; 15]; 3]; 2] = [
    [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ],
    [
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ],
];

/// Hz by [version: 0 = MPEG-1, 1 = MPEG-2, 2 = MPEG-2.5][index].
const MPEG_RATES: [[u32; 3]; 3] = [
    [44100, 48000, 32000],
    [22050, 24000, 16000],
    [11025, 12000, 8000],
];

/// Hz by ADTS sampling-frequency index (13–15 are not valid in ADTS).
const ADTS_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The header at the start of `b`, if there is one.
pub fn parse(b: &[u8]) -> Parse {
    if b.len() < 2 {
        return if b.first().is_none_or(|&x| x == 0xFF) {
            Parse::Short
        } else {
            Parse::Invalid
        };
    }
    if b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return Parse::Invalid;
    }
    if b[1] & 0x06 == 0 {
        // Layer bits 00: ADTS when the sync word is 12 bits long.
        if b[1] & 0xF0 != 0xF0 {
            return Parse::Invalid;
        }
        return adts(b);
    }
    mpeg(b)
}

fn mpeg(b: &[u8]) -> Parse {
    if b.len() < 4 {
        return Parse::Short;
    }
    let version = match (b[1] >> 3) & 3 {
        3 => 0, // MPEG-1
        2 => 1, // MPEG-2
        0 => 2, // MPEG-2.5
        _ => return Parse::Invalid,
    };
    let layer = match (b[1] >> 1) & 3 {
        3 => 0, // I
        2 => 1, // II
        1 => 2, // III
        _ => return Parse::Invalid,
    };
    let bitrate_index = usize::from(b[2] >> 4);
    let rate_index = usize::from((b[2] >> 2) & 3);
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 || b[3] & 3 == 2 {
        return Parse::Invalid;
    }
    let kbps = u32::from(BITRATES[usize::from(version != 0)][layer][bitrate_index]);
    let sample_rate = MPEG_RATES[version][rate_index];
    let padding = u32::from((b[2] >> 1) & 1);
    let bps = kbps * 1000;
    let len = match layer {
        0 => (12 * bps / sample_rate + padding) * 4,
        1 => 144 * bps / sample_rate + padding,
        _ if version == 0 => 144 * bps / sample_rate + padding,
        _ => 72 * bps / sample_rate + padding,
    };
    Parse::Valid(Header {
        kind: FrameKind::Mpeg,
        len: len as usize,
        sample_rate,
        stream_id: (version as u32) << 8 | (layer as u32) << 4 | rate_index as u32,
    })
}

fn adts(b: &[u8]) -> Parse {
    if b.len() < 7 {
        return Parse::Short;
    }
    let rate_index = usize::from((b[2] >> 2) & 0xF);
    let Some(&sample_rate) = ADTS_RATES.get(rate_index) else {
        return Parse::Invalid;
    };
    let header_len = if b[1] & 1 == 1 { 7 } else { 9 };
    let len = (usize::from(b[3] & 3) << 11) | (usize::from(b[4]) << 3) | usize::from(b[5] >> 5);
    if len <= header_len {
        return Parse::Invalid;
    }
    let id = u32::from(b[1] >> 3 & 1);
    let profile = u32::from(b[2] >> 6);
    let channels = u32::from((b[2] & 1) << 2 | b[3] >> 6);
    Parse::Valid(Header {
        kind: FrameKind::Adts,
        len,
        sample_rate,
        stream_id: id << 12 | profile << 8 | (rate_index as u32) << 4 | channels,
    })
}

/// Whether `need` consecutive headers of one stream chain from the start of `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    /// They do; the first header.
    Yes(Header),
    /// They do not.
    No,
    /// `b` ends before it can be told.
    Short,
}

/// Do `need` (at least 1) frames chain from the start of `b`: each header valid, of the
/// same stream as the first, found exactly where the previous frame's length ends?
pub fn chain_at(b: &[u8], need: usize) -> Chain {
    let first = match parse(b) {
        Parse::Valid(h) => h,
        Parse::Invalid => return Chain::No,
        Parse::Short => return Chain::Short,
    };
    let mut at = first.len;
    for _ in 1..need {
        match parse(b.get(at..).unwrap_or_default()) {
            Parse::Valid(h) if first.same_stream(&h) => at += h.len,
            Parse::Valid(_) | Parse::Invalid => return Chain::No,
            Parse::Short => return Chain::Short,
        }
    }
    Chain::Yes(first)
}

/// The first position in `b` from `from` where `need` frames chain (of `kind`, if
/// given). `Err(p)`: none found, and the first position that could not be told yet
/// (its chain runs past the end of `b`) is `p` (`b.len()` if there is none).
pub fn find_chain(
    b: &[u8],
    from: usize,
    need: usize,
    kind: Option<FrameKind>,
) -> Result<(usize, Header), usize> {
    let mut i = from;
    let mut short = b.len();
    while let Some(k) = memchr::memchr(0xFF, b.get(i..).unwrap_or_default()) {
        let p = i + k;
        i = p + 1;
        if let (Some(want), Parse::Valid(h)) = (kind, parse(&b[p..]))
            && h.kind != want
        {
            continue;
        }
        match chain_at(&b[p..], need) {
            Chain::Yes(h) => return Ok((p, h)),
            Chain::Short => short = short.min(p),
            Chain::No => {}
        }
    }
    Err(short)
}

/// What starts a buffer, as far as ID3v2 goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id3 {
    /// A tag of this many bytes (header, body and footer).
    Tag(u64),
    /// No tag.
    None,
    /// Too few bytes to read a tag's header.
    Short,
}

/// The ID3v2 tag at the start of `b`, if there is one.
pub fn id3_len(b: &[u8]) -> Id3 {
    if b.len() < 10 {
        return if b"ID3".starts_with(&b[..b.len().min(3)]) {
            Id3::Short
        } else {
            Id3::None
        };
    }
    if &b[..3] != b"ID3" || b[3] == 0xFF || b[4] == 0xFF || b[6..10].iter().any(|&x| x >= 0x80) {
        return Id3::None;
    }
    let size = b[6..10]
        .iter()
        .fold(0u64, |n, &x| n << 7 | u64::from(x & 0x7F));
    let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
    Id3::Tag(10 + size + footer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes.
    const MP3_128: [u8; 4] = [0xFF, 0xFB, 0x90, 0x64];

    fn adts_header(len: usize) -> [u8; 7] {
        // MPEG-4, no CRC, AAC LC, 44.1 kHz (index 4), 2 channels.
        [
            0xFF,
            0xF1,
            0x50,
            0x80 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 7) << 5) as u8 | 0x1F,
            0xFC,
        ]
    }

    fn frames(header: &[u8], len: usize, n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            v.extend_from_slice(header);
            v.extend((header.len()..len).map(|j| (i * 31 + j) as u8));
        }
        v
    }

    #[test]
    fn issue11_mpeg_frame_lengths_for_every_version_and_layer() {
        let cases: [([u8; 4], usize, u32); 7] = [
            (MP3_128, 417, 44100),
            ([0xFF, 0xFB, 0x92, 0x64], 418, 44100), // the same, padded
            ([0xFF, 0xFB, 0xE4, 0x64], 960, 48000), // MPEG-1 L3 320k
            ([0xFF, 0xF3, 0x80, 0x64], 208, 22050), // MPEG-2 L3 64k: 72 * 64000 / 22050
            ([0xFF, 0xE3, 0x80, 0x64], 417, 11025), // MPEG-2.5 L3 64k
            ([0xFF, 0xFD, 0x90, 0x64], 522, 44100), // MPEG-1 L2 160k
            ([0xFF, 0xFF, 0x90, 0x64], 312, 44100), // MPEG-1 L1 288k: (12 * 288000 / 44100) * 4
        ];
        for (h, len, rate) in cases {
            match parse(&h) {
                Parse::Valid(hd) => {
                    assert_eq!(
                        (hd.kind, hd.len, hd.sample_rate),
                        (FrameKind::Mpeg, len, rate),
                        "{h:02x?}"
                    );
                }
                other => panic!("{h:02x?}: {other:?}"),
            }
        }
    }

    #[test]
    fn issue11_invalid_fields_are_not_headers() {
        for h in [
            [0xFF, 0xEB, 0x90, 0x64], // version 01 reserved
            [0xFF, 0xE9, 0x90, 0x64], // layer 00 with an 11-bit sync: not ADTS either
            [0xFF, 0xFB, 0x00, 0x64], // free format
            [0xFF, 0xFB, 0xF0, 0x64], // bitrate 15
            [0xFF, 0xFB, 0x9C, 0x64], // sample rate 3
            [0xFF, 0xFB, 0x90, 0x66], // emphasis 2
            [0xFE, 0xFB, 0x90, 0x64],
        ] {
            assert_eq!(parse(&h), Parse::Invalid, "{h:02x?}");
        }
        assert_eq!(parse(&[0xFF, 0xFB]), Parse::Short);
        assert_eq!(parse(&[]), Parse::Short);
        assert_eq!(parse(&[0x00]), Parse::Invalid);
        let mut bad_rate = adts_header(100);
        bad_rate[2] = 0x50 | 13 << 2;
        assert_eq!(parse(&bad_rate), Parse::Invalid);
        assert_eq!(parse(&adts_header(5)), Parse::Invalid);
        assert_eq!(parse(&adts_header(100)[..6]), Parse::Short);
    }

    #[test]
    fn issue11_adts_header() {
        match parse(&adts_header(371)) {
            Parse::Valid(h) => assert_eq!(
                (h.kind, h.len, h.sample_rate),
                (FrameKind::Adts, 371, 44100)
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn issue11_looks_like_mp3_for_4_bytes_and_then_is_not() {
        let mut b = MP3_128.to_vec();
        b.extend_from_slice(&[0x42; 1000]);
        assert_eq!(chain_at(&b, 2), Chain::No);
        assert_eq!(chain_at(&b[..100], 2), Chain::Short);
        // Two good frames, then garbage where the third header should be.
        let mut two = frames(&MP3_128, 417, 2);
        two.extend_from_slice(&[0x42; 100]);
        assert!(matches!(chain_at(&two, 2), Chain::Yes(_)));
        assert_eq!(chain_at(&two, 3), Chain::No);
        // A second header of another stream (48 kHz) does not chain.
        let mut mixed = frames(&MP3_128, 417, 1);
        mixed.extend_from_slice(&[0xFF, 0xFB, 0x94, 0x64]);
        assert_eq!(chain_at(&mixed, 2), Chain::No);
        let aac = frames(&adts_header(300), 300, 3);
        assert!(matches!(chain_at(&aac, 3), Chain::Yes(h) if h.kind == FrameKind::Adts));
    }

    #[test]
    fn issue11_find_chain_skips_false_syncs() {
        let mut b = vec![0x11, 0xFF, 0xFB, 0x90, 0x64, 0x00, 0xFF];
        let start = b.len();
        b.extend(frames(&MP3_128, 417, 3));
        assert_eq!(find_chain(&b, 0, 3, None).map(|r| r.0), Ok(start));
        assert!(find_chain(&b, 0, 3, Some(FrameKind::Adts)).is_err());
        assert_eq!(
            find_chain(&b[..start + 500], 0, 3, None).map(|r| r.0),
            Err(start)
        );
    }

    #[test]
    fn issue11_id3_tag_length() {
        let tag = [b"ID3\x04\x00\x00".as_slice(), &[0, 0, 0x02, 0x01]].concat();
        assert_eq!(id3_len(&tag), Id3::Tag(10 + 257));
        let mut footer = tag.clone();
        footer[5] = 0x10;
        assert_eq!(id3_len(&footer), Id3::Tag(20 + 257));
        assert_eq!(id3_len(b"ID3\x04"), Id3::Short);
        assert_eq!(id3_len(b"ID"), Id3::Short);
        assert_eq!(id3_len(b"IDX"), Id3::None);
        assert_eq!(id3_len(b"ID3\x04\x00\x00\x80\x00\x00\x00"), Id3::None);
    }
}
