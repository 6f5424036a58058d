//! Writes frames as pcap (nanosecond timestamps, magic `0xa1b23c4d`) or pcapng
//! (`if_tsresol` = 9, i.e. nanoseconds), as tcpdump, Wireshark and tshark read them.
//!
//! A small writer rather than `pcap-parser`'s `serialize` feature: that one allocates a
//! `Vec` and copies every packet before writing it, and pulls in another crate; both
//! formats are a handful of fixed little-endian fields. Files are read back with
//! `pcap-parser` in the tests below, and with `tshark` in the integration tests.
//!
//! The file header is written with the first frame, so it carries that frame's link type
//! (or the default given to [`PcapWriter::new`] if no frame ever comes). pcapng gets one
//! interface block per link type seen; pcap cannot mix link types and says so.

use std::io::{self, IoSlice, Write};

use super::{Frame, LinkType, SourceStats, Timestamp};

/// Which file format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap with nanosecond timestamps.
    Pcap,
    /// pcapng with nanosecond timestamps.
    Pcapng,
}

/// Writing a capture file failed.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// The output could not be written.
    #[error("writing {what}: {source}")]
    Io {
        /// What was being written.
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A pcap file has a single link type; the input changed it midway.
    #[error(
        "frames of link type {now} follow frames of link type {first}: a pcap file holds one \
         link type; write pcapng (--pcapng) instead"
    )]
    MixedLinkTypes {
        /// The file's link type.
        first: u32,
        /// The frame's.
        now: u32,
    },
}

/// pcap magic for nanosecond timestamps.
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
const SHB_TYPE: u32 = 0x0A0D_0D0A;
const IDB_TYPE: u32 = 1;
const ISB_TYPE: u32 = 5;
const EPB_TYPE: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const ISB_IFRECV: u16 = 4;
const ISB_IFDROP: u16 = 5;
const ISB_FILTERACCEPT: u16 = 6;
const ISB_OSDROP: u16 = 7;
const ISB_USRDELIV: u16 = 8;

/// Writes frames to `W` in pcap or pcapng.
///
/// Invariant: `link_types` is empty until the file header is written; afterwards it
/// holds the link type of each interface written, in interface-id order (pcap: exactly one).
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    format: Format,
    snaplen: u32,
    default_link: LinkType,
    if_name: Option<String>,
    link_types: Vec<u32>,
    frames: u64,
    scratch: Vec<u8>,
}

impl<W: Write> PcapWriter<W> {
    /// A writer; nothing is written before the first frame or [`finish`](Self::finish).
    /// `default_link` is the link type of a file that gets no frames; `if_name` names the
    /// interface in pcapng.
    pub fn new(
        out: W,
        format: Format,
        snaplen: u32,
        default_link: LinkType,
        if_name: Option<&str>,
    ) -> Self {
        Self {
            out,
            format,
            snaplen,
            default_link,
            if_name: if_name.map(str::to_owned),
            link_types: Vec::new(),
            frames: 0,
            scratch: Vec::with_capacity(64),
        }
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn io(what: &'static str) -> impl FnOnce(io::Error) -> WriterError {
        move |source| WriterError::Io { what, source }
    }

    /// The interface id for `link`, writing the file header or a new pcapng interface
    /// block first if needed.
    fn interface(&mut self, link: LinkType) -> Result<u32, WriterError> {
        let lt = link.linktype();
        if let Some(i) = self.link_types.iter().position(|&l| l == lt) {
            return Ok(i as u32);
        }
        match self.format {
            Format::Pcap => {
                if let Some(&first) = self.link_types.first() {
                    return Err(WriterError::MixedLinkTypes { first, now: lt });
                }
                let s = &mut self.scratch;
                s.clear();
                put32(s, PCAP_MAGIC_NS);
                put16(s, 2);
                put16(s, 4);
                put32(s, 0); // thiszone
                put32(s, 0); // sigfigs
                put32(s, self.snaplen);
                put32(s, lt);
            }
            Format::Pcapng => {
                let s = &mut self.scratch;
                s.clear();
                if self.link_types.is_empty() {
                    put32(s, SHB_TYPE);
                    put32(s, 28);
                    put32(s, BYTE_ORDER_MAGIC);
                    put16(s, 1);
                    put16(s, 0);
                    s.extend_from_slice(&(-1_i64).to_le_bytes()); // section length unknown
                    put32(s, 28);
                }
                let start = s.len();
                put32(s, IDB_TYPE);
                put32(s, 0); // length, patched below
                put16(s, lt as u16);
                put16(s, 0);
                put32(s, self.snaplen);
                put_opt(s, IF_TSRESOL, &[9]);
                if let Some(name) = &self.if_name {
                    put_opt(s, IF_NAME, name.as_bytes());
                }
                put_opt(s, OPT_END, &[]);
                close_block(s, start);
            }
        }
        self.out
            .write_all(&self.scratch)
            .map_err(Self::io("the file header"))?;
        self.link_types.push(lt);
        Ok(self.link_types.len() as u32 - 1)
    }

    /// Appends one frame.
    ///
    /// # Errors
    /// Writing failed, or (pcap) the frame's link type differs from the file's.
    pub fn write_frame(&mut self, frame: &Frame<'_>) -> Result<(), WriterError> {
        let interface = self.interface(frame.link_type)?;
        let caplen = frame.data.len() as u32;
        let s = &mut self.scratch;
        s.clear();
        match self.format {
            Format::Pcap => {
                put32(s, frame.ts.secs() as u32);
                put32(s, frame.ts.subsec_nanos());
                put32(s, caplen);
                put32(s, frame.orig_len);
                write_all_vectored(
                    &mut self.out,
                    &mut [IoSlice::new(s), IoSlice::new(frame.data)],
                )
                .map_err(Self::io("a packet record"))?;
            }
            Format::Pcapng => {
                let pad = padding(frame.data.len());
                let total = 32 + frame.data.len() + pad;
                put32(s, EPB_TYPE);
                put32(s, total as u32);
                put32(s, interface);
                put32(s, (frame.ts.0 >> 32) as u32);
                put32(s, frame.ts.0 as u32);
                put32(s, caplen);
                put32(s, frame.orig_len);
                let mut trailer = [0_u8; 8];
                trailer[pad..pad + 4].copy_from_slice(&(total as u32).to_le_bytes());
                write_all_vectored(
                    &mut self.out,
                    &mut [
                        IoSlice::new(s),
                        IoSlice::new(frame.data),
                        IoSlice::new(&trailer[..pad + 4]),
                    ],
                )
                .map_err(Self::io("a packet block"))?;
            }
        }
        self.frames += 1;
        Ok(())
    }

    /// pcapng only (a no-op for pcap): records what the capture counted in an interface
    /// statistics block, so drops travel with the file. `ifrecv` is what the kernel
    /// filter saw, `filteraccept` what it matched, `osdrop` what the ring buffer or a
    /// copy lost, `usrdeliv` what reached userspace.
    ///
    /// # Errors
    /// Writing failed.
    pub fn write_stats(&mut self, stats: &SourceStats, now: Timestamp) -> Result<(), WriterError> {
        if self.format != Format::Pcapng {
            return Ok(());
        }
        let Some(k) = &stats.kernel else {
            return Ok(());
        };
        let link = self
            .link_types
            .first()
            .map_or(self.default_link, |&l| LinkType::from_linktype(l));
        self.interface(link)?;
        let s = &mut self.scratch;
        s.clear();
        let start = s.len();
        put32(s, ISB_TYPE);
        put32(s, 0);
        put32(s, 0); // interface 0: the capture device
        put32(s, (now.0 >> 32) as u32);
        put32(s, now.0 as u32);
        put_opt(s, ISB_IFRECV, &k.seen.to_le_bytes());
        put_opt(s, ISB_FILTERACCEPT, &k.matched.to_le_bytes());
        put_opt(s, ISB_OSDROP, &(k.ring_full + k.copy_failed).to_le_bytes());
        put_opt(s, ISB_IFDROP, &0_u64.to_le_bytes());
        put_opt(s, ISB_USRDELIV, &stats.frames.to_le_bytes());
        put_opt(s, OPT_END, &[]);
        close_block(s, start);
        self.out
            .write_all(&self.scratch)
            .map_err(Self::io("the statistics block"))
    }

    /// Writes the header if no frame did, flushes, and returns the output.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> Result<W, WriterError> {
        if self.link_types.is_empty() {
            self.interface(self.default_link)?;
        }
        self.out.flush().map_err(Self::io("the end of the file"))?;
        Ok(self.out)
    }
}

/// `write_all` for several buffers: one `writev` where the writer supports it, so a
/// `BufWriter` smaller than a large packet passes it through without copying it.
fn write_all_vectored<W: Write>(out: &mut W, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match out.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

const fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn put_opt(v: &mut Vec<u8>, code: u16, value: &[u8]) {
    put16(v, code);
    put16(v, value.len() as u16);
    v.extend_from_slice(value);
    v.resize(v.len() + padding(value.len()), 0);
}

/// Appends the trailing length of the pcapng block starting at `start` and patches its
/// leading length.
fn close_block(v: &mut Vec<u8>, start: usize) {
    let len = (v.len() - start + 4) as u32;
    put32(v, len);
    v[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use pcap_parser::{
        Block, PcapBlockOwned, PcapError, create_reader,
        pcapng::{InterfaceStatisticsBlock, OptionCode},
    };

    use super::*;
    use crate::capture::KernelCounters;

    /// What a reader sees in a file: (linktype, ts in ns, data, orig_len) per packet.
    type Packets = Vec<(u32, u64, Vec<u8>, u32)>;

    /// Reads a whole file with pcap-parser, independently of the writer.
    fn read_back(bytes: &[u8]) -> (Packets, Vec<u64>) {
        let mut reader = create_reader(1 << 20, bytes).unwrap();
        let mut out = Vec::new();
        let mut isb = Vec::new();
        let mut linktypes = Vec::new();
        let mut resolutions = Vec::new();
        let mut pcap_ns = false;
        loop {
            match reader.next() {
                Ok((off, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            pcap_ns = h.is_nanosecond_precision();
                            linktypes.push(h.network.0 as u32);
                        }
                        PcapBlockOwned::Legacy(b) => {
                            assert!(pcap_ns, "pcap files are written with ns precision");
                            let ts = u64::from(b.ts_sec) * 1_000_000_000 + u64::from(b.ts_usec);
                            out.push((linktypes[0], ts, b.data.to_vec(), b.origlen));
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            linktypes.push(idb.linktype.0 as u32);
                            resolutions.push(idb.ts_resolution().unwrap());
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let i = epb.if_id as usize;
                            let res = resolutions[i];
                            assert_eq!(res, 1_000_000_000);
                            let (s, frac) = epb.decode_ts(0, res);
                            let ts = u64::from(s) * 1_000_000_000 + u64::from(frac);
                            out.push((
                                linktypes[i],
                                ts,
                                epb.data[..epb.caplen as usize].to_vec(),
                                epb.origlen,
                            ));
                        }
                        PcapBlockOwned::NG(Block::InterfaceStatistics(
                            InterfaceStatisticsBlock { options, .. },
                        )) => {
                            for code in [
                                OptionCode(ISB_IFRECV),
                                OptionCode(ISB_FILTERACCEPT),
                                OptionCode(ISB_OSDROP),
                                OptionCode(ISB_USRDELIV),
                            ] {
                                let o = options.iter().find(|o| o.code == code).unwrap();
                                isb.push(u64::from_le_bytes(o.value[..8].try_into().unwrap()));
                            }
                        }
                        PcapBlockOwned::NG(_) => {}
                    }
                    reader.consume(off);
                }
                Err(PcapError::Eof) => break,
                Err(PcapError::Incomplete(_)) => reader.refill().unwrap(),
                Err(e) => panic!("{e:?}"),
            }
        }
        (out, isb)
    }

    fn frames() -> Vec<(Timestamp, LinkType, Vec<u8>, u32)> {
        vec![
            (
                Timestamp(1_700_000_000_123_456_789),
                LinkType::Ethernet,
                vec![1; 60],
                60,
            ),
            // Every length mod 4, to exercise pcapng padding; one truncated.
            (
                Timestamp(1_700_000_001_000_000_001),
                LinkType::Ethernet,
                vec![2; 61],
                61,
            ),
            (
                Timestamp(1_700_000_002_999_999_999),
                LinkType::Ethernet,
                vec![3; 62],
                9000,
            ),
            (
                Timestamp(1_700_000_003_500_000_000),
                LinkType::Ethernet,
                vec![4; 63],
                63,
            ),
        ]
    }

    fn write(format: Format, frames: &[(Timestamp, LinkType, Vec<u8>, u32)]) -> Vec<u8> {
        let mut w = PcapWriter::new(Vec::new(), format, 65535, LinkType::Raw, Some("veth0"));
        for (ts, lt, data, orig_len) in frames {
            w.write_frame(&Frame {
                ts: *ts,
                link_type: *lt,
                data,
                orig_len: *orig_len,
            })
            .unwrap();
        }
        assert_eq!(w.frames(), frames.len() as u64);
        w.finish().unwrap()
    }

    fn expected(frames: &[(Timestamp, LinkType, Vec<u8>, u32)]) -> Packets {
        frames
            .iter()
            .map(|(ts, lt, d, o)| (lt.linktype(), ts.0, d.clone(), *o))
            .collect()
    }

    /// Accepts at most 7 bytes per call, to exercise partial vectored writes.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_lose_nothing() {
        let f = frames();
        for format in [Format::Pcap, Format::Pcapng] {
            let mut w = PcapWriter::new(
                Trickle(Vec::new()),
                format,
                65535,
                LinkType::Raw,
                Some("veth0"),
            );
            for (ts, lt, data, orig_len) in &f {
                w.write_frame(&Frame {
                    ts: *ts,
                    link_type: *lt,
                    data,
                    orig_len: *orig_len,
                })
                .unwrap();
            }
            let bytes = w.finish().unwrap().0;
            assert_eq!(bytes, write(format, &f));
        }
    }

    #[test]
    fn pcap_round_trips_with_nanoseconds() {
        let f = frames();
        let bytes = write(Format::Pcap, &f);
        assert_eq!(read_back(&bytes).0, expected(&f));
    }

    #[test]
    fn pcapng_round_trips_with_nanoseconds() {
        let f = frames();
        let bytes = write(Format::Pcapng, &f);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(read_back(&bytes).0, expected(&f));
    }

    #[test]
    fn empty_file_has_a_header_with_the_default_link_type() {
        for format in [Format::Pcap, Format::Pcapng] {
            let bytes = write(format, &[]);
            let mut reader = create_reader(1 << 16, &bytes[..]).unwrap();
            let (_, block) = reader.next().unwrap();
            match block {
                PcapBlockOwned::LegacyHeader(h) => assert_eq!(h.network.0, 101),
                PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                    reader.consume(28);
                    let (_, b) = reader.next().unwrap();
                    let PcapBlockOwned::NG(Block::InterfaceDescription(idb)) = b else {
                        panic!("expected an IDB");
                    };
                    assert_eq!(idb.linktype.0, 101);
                }
                _ => panic!("expected a file header"),
            }
        }
    }

    #[test]
    fn pcap_refuses_mixed_link_types_and_pcapng_takes_them() {
        let mut f = frames();
        f[2].1 = LinkType::Raw;
        let bytes = write(Format::Pcapng, &f);
        assert_eq!(read_back(&bytes).0, expected(&f));

        let mut w = PcapWriter::new(Vec::new(), Format::Pcap, 65535, LinkType::Raw, None);
        for (i, (ts, lt, data, orig_len)) in f.iter().enumerate() {
            let r = w.write_frame(&Frame {
                ts: *ts,
                link_type: *lt,
                data,
                orig_len: *orig_len,
            });
            if i == 2 {
                assert!(matches!(
                    r,
                    Err(WriterError::MixedLinkTypes { first: 1, now: 101 })
                ));
            } else {
                r.unwrap();
            }
        }
    }

    #[test]
    fn pcapng_statistics_block_carries_the_counters() {
        let mut w = PcapWriter::new(Vec::new(), Format::Pcapng, 65535, LinkType::Ethernet, None);
        let stats = SourceStats {
            frames: 7,
            bytes: 700,
            truncated: 0,
            kernel: Some(KernelCounters {
                seen: 100,
                matched: 10,
                matched_bytes: 1000,
                ring_full: 2,
                copy_failed: 1,
                truncated: 0,
                non_first_fragment: 0,
            }),
        };
        w.write_stats(&stats, Timestamp(5)).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(read_back(&bytes).1, vec![100, 10, 3, 7]);
    }
}
