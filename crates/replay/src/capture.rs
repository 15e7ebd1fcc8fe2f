//! Streaming capture reader: classic pcap (both byte orders, micro- and nanosecond magic)
//! and pcapng (Enhanced and Simple Packet Blocks, `if_tsresol`), through `pcap-file`.
//!
//! Records are borrowed from the reader's buffer: reading a capture allocates nothing per
//! packet. Damage is reported, not panicked on: a record cut short by the end of the file
//! ends the capture with [`CaptureEnd::Damaged`] naming the byte offset; a record that
//! cannot be a frame (not Ethernet, larger than its snap length) is returned with a
//! [`RecordNote`] so the replay can report it per packet.

use pcap_file::pcap::{PcapParser, PcapReader, RawPcapPacket};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Errors that stop a capture from being read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file (magic {magic:02x?} at offset 0)")]
    UnknownFormat { path: String, magic: Vec<u8> },
    #[error("{path}: bad {format} file header at offset 0: {msg}")]
    BadHeader {
        path: String,
        format: &'static str,
        msg: String,
    },
    #[error("{path}: link type {linktype} ({name}) is not Ethernet (LINKTYPE_ETHERNET = 1); XDP programs see Ethernet frames")]
    LinkType {
        path: String,
        linktype: u32,
        name: String,
    },
}

/// Format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// Something about a record the replay must report instead of (or besides) running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordNote {
    /// The record is fine.
    None,
    /// pcapng: the packet's interface is not Ethernet (its link type).
    NotEthernet(u32),
    /// pcapng: the packet names an interface that was never described.
    UnknownInterface(u32),
    /// The record holds more bytes than the file's snap length (pcap `incl_len > snaplen`).
    OverSnapLen { incl_len: u32, snaplen: u32 },
    /// pcapng: a packet block whose body cannot be parsed (the reader skips to the next
    /// block using the block length).
    Malformed(String),
}

/// One captured frame, borrowed from the reader.
#[derive(Debug)]
pub struct Record<'a> {
    /// 0-based position among the packet records of the file.
    pub index: u64,
    /// Capture timestamp in nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Length on the wire (`orig_len`); `data` may be shorter (snap length).
    pub orig_len: u32,
    pub data: &'a [u8],
    /// Byte offset of the record in the file.
    pub offset: u64,
    pub note: RecordNote,
}

/// Why the capture ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEnd {
    /// End of file after a complete record.
    Clean,
    /// The file is damaged from `offset` on (truncated record, garbage block): the rest of
    /// the file cannot be read.
    Damaged { offset: u64, reason: String },
}

struct NgIface {
    linktype: u32,
    /// Timestamp units per second as a (multiplier, divisor) to nanoseconds.
    tsresol: u8,
}

enum Inner {
    /// Classic pcap, memory-mapped: records are parsed in place (no copy at all).
    PcapMap {
        map: memmap2::Mmap,
        parser: PcapParser,
        pos: usize,
        nanos: bool,
        snaplen: u32,
    },
    Pcap {
        reader: PcapReader<File>,
        nanos: bool,
        snaplen: u32,
    },
    Ng {
        reader: PcapNgReader<File>,
        ifaces: Vec<NgIface>,
    },
}

/// A streaming reader over a pcap or pcapng file.
pub struct Capture {
    inner: Inner,
    path: String,
    format: Format,
    index: u64,
    offset: u64,
    end: Option<CaptureEnd>,
    /// pcap: the file's link type; pcapng: the first interface's.
    linktype: u32,
    /// pcapng: the current packet's bytes.
    ngbuf: Vec<u8>,
}

fn datalink_u32(d: DataLink) -> u32 {
    u32::from(d)
}

/// Nanoseconds for a pcapng timestamp of `raw` units at `if_tsresol` = `res`.
pub fn ng_ts_to_ns(raw: u64, res: u8) -> u64 {
    if res & 0x80 != 0 {
        let shift = (res & 0x7f) as u32;
        if shift >= 64 {
            return 0;
        }
        ((raw as u128 * 1_000_000_000u128) >> shift) as u64
    } else {
        let exp = res as i32;
        if exp <= 9 {
            raw.saturating_mul(10u64.pow((9 - exp) as u32))
        } else if exp - 9 >= 20 {
            0
        } else {
            raw / 10u64.pow((exp - 9) as u32)
        }
    }
}

fn ng_iface(
    b: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock,
) -> NgIface {
    let mut tsresol = 6;
    for o in &b.options {
        if let InterfaceDescriptionOption::IfTsResol(r) = o {
            tsresol = *r;
        }
    }
    NgIface {
        linktype: datalink_u32(b.linktype),
        tsresol,
    }
}

impl Capture {
    /// Opens a capture, detecting the format from its magic number. A classic pcap whose
    /// link type is not Ethernet is refused here; pcapng interfaces are checked per packet.
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let p = path.display().to_string();
        let io = |source| CaptureError::Io {
            path: p.clone(),
            source,
        };
        let mut f = File::open(path).map_err(io)?;
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = f.read(&mut magic[got..]).map_err(io)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        drop(f);
        let f = File::open(path).map_err(io)?;
        let buf = f;
        let m = u32::from_le_bytes(magic);
        if got == 4 && matches!(m, 0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1) {
            if let Some(c) = Self::open_mapped(path, &p)? {
                return Ok(c);
            }
            let reader = PcapReader::new(buf).map_err(|e| CaptureError::BadHeader {
                path: p.clone(),
                format: "pcap",
                msg: e.to_string(),
            })?;
            let h = reader.header();
            let linktype = datalink_u32(h.datalink);
            if linktype != LINKTYPE_ETHERNET {
                return Err(CaptureError::LinkType {
                    path: p,
                    linktype,
                    name: format!("{:?}", h.datalink),
                });
            }
            Ok(Capture {
                inner: Inner::Pcap {
                    reader,
                    nanos: h.ts_resolution == TsResolution::NanoSecond,
                    snaplen: h.snaplen,
                },
                path: p,
                format: Format::Pcap,
                index: 0,
                offset: 24,
                end: None,
                linktype,
                ngbuf: Vec::new(),
            })
        } else if got == 4 && m == 0x0a0d0d0a {
            let reader = PcapNgReader::new(buf).map_err(|e| CaptureError::BadHeader {
                path: p.clone(),
                format: "pcapng",
                msg: e.to_string(),
            })?;
            Ok(Capture {
                inner: Inner::Ng {
                    reader,
                    ifaces: Vec::new(),
                },
                path: p,
                format: Format::PcapNg,
                index: 0,
                offset: 0,
                end: None,
                linktype: LINKTYPE_ETHERNET,
                ngbuf: Vec::new(),
            })
        } else {
            Err(CaptureError::UnknownFormat {
                path: p,
                magic: magic[..got].to_vec(),
            })
        }
    }

    /// Classic pcap through a memory map of a regular file; `None` when the file cannot
    /// be mapped (pipes, special files), so the caller falls back to streaming reads.
    fn open_mapped(path: &Path, p: &str) -> Result<Option<Capture>, CaptureError> {
        let Ok(f) = File::open(path) else {
            return Ok(None);
        };
        if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Ok(None);
        }
        // SAFETY: the map is only read. If another process truncates or rewrites the file
        // while we read it, the bytes we parse may change under us (or a page fault may
        // raise SIGBUS on truncation), as with any reader of a file being rewritten; the
        // parser never trusts those bytes beyond their bounds-checked slice.
        let Ok(map) = (unsafe { memmap2::Mmap::map(&f) }) else {
            return Ok(None);
        };
        let _ = map.advise(memmap2::Advice::Sequential);
        let (rest, parser) = PcapParser::new(&map).map_err(|e| CaptureError::BadHeader {
            path: p.to_string(),
            format: "pcap",
            msg: match e {
                PcapError::IncompleteBuffer => "file shorter than the 24-byte header".into(),
                other => other.to_string(),
            },
        })?;
        let pos = map.len() - rest.len();
        let h = parser.header();
        let linktype = datalink_u32(h.datalink);
        if linktype != LINKTYPE_ETHERNET {
            return Err(CaptureError::LinkType {
                path: p.to_string(),
                linktype,
                name: format!("{:?}", h.datalink),
            });
        }
        Ok(Some(Capture {
            inner: Inner::PcapMap {
                nanos: h.ts_resolution == TsResolution::NanoSecond,
                snaplen: h.snaplen,
                map,
                parser,
                pos,
            },
            path: p.to_string(),
            format: Format::Pcap,
            index: 0,
            offset: 24,
            end: None,
            linktype,
            ngbuf: Vec::new(),
        }))
    }

    fn pcap_record<'a>(
        p: RawPcapPacket<'a>,
        nanos: bool,
        snaplen: u32,
        index: &mut u64,
        offset: &mut u64,
    ) -> Record<'a> {
        let frac = if nanos {
            p.ts_frac as u64
        } else {
            p.ts_frac as u64 * 1000
        };
        let ts_ns = (p.ts_sec as u64) * 1_000_000_000 + frac;
        let note = if snaplen != 0 && p.incl_len > snaplen {
            RecordNote::OverSnapLen {
                incl_len: p.incl_len,
                snaplen,
            }
        } else {
            RecordNote::None
        };
        let off = *offset;
        *offset += 16 + p.incl_len as u64;
        let i = *index;
        *index += 1;
        let data: &[u8] = match p.data {
            std::borrow::Cow::Borrowed(d) => d,
            // pcap-file only hands out borrowed records from a parser or reader.
            std::borrow::Cow::Owned(_) => &[],
        };
        Record {
            index: i,
            ts_ns,
            orig_len: p.orig_len,
            data,
            offset: off,
            note,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn linktype(&self) -> u32 {
        self.linktype
    }

    /// Why reading stopped (`None` while records remain).
    pub fn end(&self) -> Option<&CaptureEnd> {
        self.end.as_ref()
    }

    fn damaged_at(end: &mut Option<CaptureEnd>, offset: u64, e: PcapError) {
        let reason = match e {
            PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                "record truncated by the end of the file (its length runs past the end)".to_string()
            }
            other => other.to_string(),
        };
        *end = Some(CaptureEnd::Damaged { offset, reason });
    }

    /// The next frame, or `None` at the end (see [`Capture::end`]).
    pub fn next_record(&mut self) -> Option<Record<'_>> {
        if self.end.is_some() {
            return None;
        }
        if matches!(self.inner, Inner::Ng { .. }) {
            return self.next_ng();
        }
        match &mut self.inner {
            Inner::PcapMap {
                map,
                parser,
                pos,
                nanos,
                snaplen,
            } => {
                if *pos >= map.len() {
                    self.end = Some(CaptureEnd::Clean);
                    return None;
                }
                let slice: &[u8] = &map[*pos..];
                match parser.next_raw_packet(slice) {
                    Ok((rest, p)) => {
                        *pos = map.len() - rest.len();
                        Some(Self::pcap_record(
                            p,
                            *nanos,
                            *snaplen,
                            &mut self.index,
                            &mut self.offset,
                        ))
                    }
                    Err(e) => {
                        let e = match e {
                            PcapError::IncompleteBuffer => PcapError::IoError(
                                std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                            ),
                            other => other,
                        };
                        Self::damaged_at(&mut self.end, self.offset, e);
                        None
                    }
                }
            }
            Inner::Pcap {
                reader,
                nanos,
                snaplen,
            } => match reader.next_raw_packet() {
                None => {
                    self.end = Some(CaptureEnd::Clean);
                    None
                }
                Some(Err(e)) => {
                    Self::damaged_at(&mut self.end, self.offset, e);
                    None
                }
                Some(Ok(p)) => Some(Self::pcap_record(
                    p,
                    *nanos,
                    *snaplen,
                    &mut self.index,
                    &mut self.offset,
                )),
            },
            Inner::Ng { .. } => None,
        }
    }

    fn next_ng(&mut self) -> Option<Record<'_>> {
        // Walk blocks until a packet; interface blocks update the table. Raw blocks first,
        // so the offset is known and a malformed block body is reported and stepped over.
        // The packet bytes are copied into a reused buffer (no allocation once it has
        // grown to the largest frame).
        let Inner::Ng { reader, ifaces } = &mut self.inner else {
            unreachable!("next_ng on a classic pcap")
        };
        loop {
            let big = reader.section().endianness == Endianness::Big;
            let raw = match reader.next_raw_block() {
                None => {
                    self.end = Some(CaptureEnd::Clean);
                    return None;
                }
                Some(Err(e)) => {
                    Self::damaged_at(&mut self.end, self.offset, e);
                    return None;
                }
                Some(Ok(b)) => b,
            };
            let offset = self.offset;
            self.offset += raw.initial_len as u64;
            let btype = raw.type_;
            let parsed = if big {
                raw.try_into_block::<byteorder_slice::BigEndian>()
            } else {
                raw.try_into_block::<byteorder_slice::LittleEndian>()
            };
            let (ts_ns, orig_len, note) = match parsed {
                Err(e) => {
                    if btype != 6 && btype != 3 {
                        continue;
                    }
                    self.ngbuf.clear();
                    (0, 0, RecordNote::Malformed(e.to_string()))
                }
                Ok(Block::SectionHeader(_)) => {
                    ifaces.clear();
                    continue;
                }
                Ok(Block::InterfaceDescription(d)) => {
                    if ifaces.is_empty() {
                        self.linktype = datalink_u32(d.linktype);
                    }
                    ifaces.push(ng_iface(&d));
                    continue;
                }
                Ok(Block::EnhancedPacket(p)) => {
                    let (note, res) = match ifaces.get(p.interface_id as usize) {
                        None => (RecordNote::UnknownInterface(p.interface_id), 6),
                        Some(i) if i.linktype != LINKTYPE_ETHERNET => {
                            (RecordNote::NotEthernet(i.linktype), i.tsresol)
                        }
                        Some(i) => (RecordNote::None, i.tsresol),
                    };
                    // pcap-file reads the raw 64-bit timestamp as nanoseconds.
                    let raw_ts = p.timestamp.as_nanos() as u64;
                    self.ngbuf.clear();
                    self.ngbuf.extend_from_slice(&p.data);
                    (ng_ts_to_ns(raw_ts, res), p.original_len, note)
                }
                Ok(Block::SimplePacket(p)) => {
                    let note = match ifaces.first() {
                        None => RecordNote::UnknownInterface(0),
                        Some(i) if i.linktype != LINKTYPE_ETHERNET => {
                            RecordNote::NotEthernet(i.linktype)
                        }
                        Some(_) => RecordNote::None,
                    };
                    self.ngbuf.clear();
                    self.ngbuf.extend_from_slice(&p.data);
                    (0, p.original_len, note)
                }
                Ok(_) => continue,
            };
            let index = self.index;
            self.index += 1;
            return Some(Record {
                index,
                ts_ns,
                orig_len,
                data: &self.ngbuf,
                offset,
                note,
            });
        }
    }
}
