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
use pcap_file::pcapng::{Block, PcapNgParser, PcapNgReader};
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
///
/// It borrows from the reader like the record (a malformed block's message is kept in the
/// reader), so a record has nothing to drop and moves through the replay loop in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordNote<'a> {
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
    Malformed(&'a str),
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
    pub note: RecordNote<'a>,
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

/// A capture read as a stream: the magic number already read, then the rest of the input.
type Stream = std::io::Chain<std::io::Cursor<Vec<u8>>, Box<dyn Read>>;

/// The format a capture's first bytes announce.
fn magic_format(magic: &[u8]) -> Option<Format> {
    let m: [u8; 4] = magic.try_into().ok()?;
    match u32::from_le_bytes(m) {
        0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1 => Some(Format::Pcap),
        0x0a0d0d0a => Some(Format::PcapNg),
        _ => None,
    }
}

struct NgIface {
    linktype: u32,
    /// Timestamp units per second as a (multiplier, divisor) to nanoseconds.
    tsresol: u8,
}

enum Inner {
    /// Classic pcap, memory-mapped: see [`PcapMap`].
    PcapMap(PcapMap),
    /// pcapng, memory-mapped: blocks are walked in place with pcap-file's parser;
    /// Enhanced Packet Blocks without options are decoded directly (no copy).
    NgMap {
        map: memmap2::Mmap,
        parser: PcapNgParser,
        pos: usize,
        ifaces: Vec<NgIface>,
        pf: usize,
    },
    Pcap {
        reader: PcapReader<Stream>,
        nanos: bool,
        snaplen: u32,
    },
    Ng {
        reader: PcapNgReader<Stream>,
        ifaces: Vec<NgIface>,
    },
}

/// Classic pcap, memory-mapped: the 16-byte record headers are decoded in place and the
/// packet bytes are handed out as slices of the map (no copy at all). The record at `pos`
/// starts at file offset `pos` (the map is the whole file), so no separate offset is kept.
struct PcapMap {
    map: memmap2::Mmap,
    pos: usize,
    /// Big-endian file (magic `a1 b2 c3 d4` / `a1 b2 3c 4d` as written).
    big: bool,
    /// Nanoseconds per unit of the timestamp fraction: 1 (nanosecond magic) or 1000.
    frac_ns: u64,
    /// The header's snap length (for [`RecordNote::OverSnapLen`]).
    snaplen: u32,
    /// `incl_len` above this is over the snap length (`u32::MAX` when the snap length is 0,
    /// i.e. not given).
    snap_limit: u32,
    /// Prefetched up to this byte offset (see [`prefetch_ahead`]).
    pf: usize,
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
    /// pcapng: the message of the current malformed packet block.
    ngmsg: String,
}

fn datalink_u32(d: DataLink) -> u32 {
    u32::from(d)
}

/// Nanoseconds for a pcapng timestamp of `raw` units at `if_tsresol` = `res`.
pub fn ng_ts_to_ns(raw: u64, res: u8) -> u64 {
    // The usual resolutions first (microseconds, the default, and nanoseconds), without
    // the general path's power of ten.
    match res {
        6 => return raw.saturating_mul(1000),
        9 => return raw,
        _ => {}
    }
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
    ///
    /// `-` is standard input. The path is opened once: a regular file is memory-mapped,
    /// anything else (a pipe, a FIFO, `/dev/stdin`, a character device) is read as a
    /// stream, with the magic number already read put back in front of the rest.
    pub fn open(path: &Path) -> Result<Capture, CaptureError> {
        let stdin = path.as_os_str() == "-";
        let p = if stdin {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        let io = |source| CaptureError::Io {
            path: p.clone(),
            source,
        };
        let f = if stdin {
            use std::os::fd::AsFd;
            File::from(std::io::stdin().as_fd().try_clone_to_owned().map_err(io)?)
        } else {
            File::open(path).map_err(io)?
        };
        let regular = f.metadata().map(|m| m.is_file()).unwrap_or(false);
        if regular {
            if let Some(map) = Self::map_file(&f) {
                let magic: Vec<u8> = map.iter().take(4).copied().collect();
                return match magic_format(&magic) {
                    Some(Format::Pcap) => Self::open_mapped(map, &p),
                    Some(Format::PcapNg) => Self::open_ng_mapped(map, &p),
                    None => Err(CaptureError::UnknownFormat { path: p, magic }),
                };
            }
        }
        Self::from_reader(&p, Box::new(f))
    }

    /// A capture read as a stream from `r` (a pipe, standard input, bytes in memory);
    /// `name` is how messages name it.
    pub fn from_reader(name: &str, mut f: Box<dyn Read>) -> Result<Capture, CaptureError> {
        let p = name.to_string();
        let io = |source| CaptureError::Io {
            path: p.clone(),
            source,
        };
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = match f.read(&mut magic[got..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            if n == 0 {
                break;
            }
            got += n;
        }
        let buf: Stream = std::io::Cursor::new(magic[..got].to_vec()).chain(f);
        match magic_format(&magic[..got]) {
            Some(Format::Pcap) => {
                let reader = PcapReader::new(buf).map_err(|e| CaptureError::BadHeader {
                    path: p.clone(),
                    format: "pcap",
                    msg: match e {
                        PcapError::IncompleteBuffer => {
                            "file shorter than the 24-byte header".into()
                        }
                        PcapError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            "file shorter than the 24-byte header".into()
                        }
                        other => other.to_string(),
                    },
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
                    ngmsg: String::new(),
                })
            }
            Some(Format::PcapNg) => {
                let reader = PcapNgReader::new(buf).map_err(|e| CaptureError::BadHeader {
                    path: p.clone(),
                    format: "pcapng",
                    msg: match e {
                        PcapError::IncompleteBuffer => {
                            "file shorter than its section header block".into()
                        }
                        PcapError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                            "file shorter than its section header block".into()
                        }
                        other => other.to_string(),
                    },
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
                    ngmsg: String::new(),
                })
            }
            None => Err(CaptureError::UnknownFormat {
                path: p,
                magic: magic[..got].to_vec(),
            }),
        }
    }

    /// A read-only memory map of the regular file `f`; `None` when it cannot be mapped
    /// (the caller falls back to streaming reads).
    fn map_file(f: &File) -> Option<memmap2::Mmap> {
        // SAFETY: the map is only read. If another process truncates or rewrites the file
        // while we read it, the bytes we parse may change under us (or a page fault may
        // raise SIGBUS on truncation), as with any reader of a file being rewritten; the
        // parser never trusts those bytes beyond their bounds-checked slice.
        let map = unsafe { memmap2::Mmap::map(f) }.ok()?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(map)
    }

    /// Classic pcap through a memory map of a regular file.
    fn open_mapped(map: memmap2::Mmap, p: &str) -> Result<Capture, CaptureError> {
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
        Ok(Capture {
            inner: Inner::PcapMap(PcapMap {
                big: h.endianness == Endianness::Big,
                frac_ns: if h.ts_resolution == TsResolution::NanoSecond {
                    1
                } else {
                    1000
                },
                snaplen: h.snaplen,
                snap_limit: if h.snaplen == 0 { u32::MAX } else { h.snaplen },
                map,
                pos,
                pf: pos,
            }),
            path: p.to_string(),
            format: Format::Pcap,
            index: 0,
            offset: 24,
            end: None,
            linktype,
            ngbuf: Vec::new(),
            ngmsg: String::new(),
        })
    }

    /// pcapng through a memory map of a regular file.
    fn open_ng_mapped(map: memmap2::Mmap, p: &str) -> Result<Capture, CaptureError> {
        let (rest, parser) = PcapNgParser::new(&map).map_err(|e| CaptureError::BadHeader {
            path: p.to_string(),
            format: "pcapng",
            msg: match e {
                PcapError::IncompleteBuffer => "file shorter than its section header block".into(),
                other => other.to_string(),
            },
        })?;
        let pos = map.len() - rest.len();
        Ok(Capture {
            inner: Inner::NgMap {
                map,
                parser,
                pos,
                ifaces: Vec::new(),
                pf: pos,
            },
            path: p.to_string(),
            format: Format::PcapNg,
            index: 0,
            offset: pos as u64,
            end: None,
            linktype: LINKTYPE_ETHERNET,
            ngbuf: Vec::new(),
            ngmsg: String::new(),
        })
    }

    #[inline]
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
    #[inline(always)]
    pub fn next_record(&mut self) -> Option<Record<'_>> {
        // Classic pcap from a map, the common case: a record that lies wholly inside the
        // file is decoded here, inline in the caller's loop (one copy of the code per byte
        // order, so neither pays for the other's byte swaps). Anything else (the end of the
        // file, a record cut short, the other formats) goes to the out-of-line paths.
        match &self.inner {
            Inner::PcapMap(p) if p.big => self.next_pcap_map::<true, true>(),
            Inner::PcapMap(_) => self.next_pcap_map::<false, true>(),
            _ => self.next_other(),
        }
    }

    /// The next record of a mapped classic pcap when it lies wholly in the file, else
    /// `None` (at the end of the file, a record cut short, other formats), leaving
    /// everything else, [`Capture::end`] included, to a [`Capture::next_record`] loop after
    /// it, which then sees exactly the records that loop alone would have seen from there.
    /// A loop over this one keeps the record in registers: only the in-place path returns
    /// records here, where `next_record` merges them with the out-of-line paths' in memory.
    #[inline(always)]
    pub fn next_whole_pcap_record(&mut self) -> Option<Record<'_>> {
        match &self.inner {
            Inner::PcapMap(p) if p.big => self.next_pcap_map::<true, false>(),
            Inner::PcapMap(_) => self.next_pcap_map::<false, false>(),
            _ => None,
        }
    }

    /// [`Capture::next_record`] for a mapped classic pcap of byte order `BIG`; without
    /// `STOP`, `None` when the next record does not lie wholly in the file, leaving the
    /// end (clean or damaged) to a later `next_record`.
    #[inline(always)]
    fn next_pcap_map<const BIG: bool, const STOP: bool>(&mut self) -> Option<Record<'_>> {
        let Inner::PcapMap(p) = &mut self.inner else {
            return None;
        };
        let m: &[u8] = &p.map;
        let at = p.pos;
        if let Some(h) = m.get(at..).and_then(|r| r.first_chunk::<16>()) {
            let word = |i: usize| {
                let w = [h[i], h[i + 1], h[i + 2], h[i + 3]];
                if BIG {
                    u32::from_be_bytes(w)
                } else {
                    u32::from_le_bytes(w)
                }
            };
            let incl_len = word(8);
            let start = at + 16;
            // `start <= m.len()` and `incl_len < 2^32`: no overflow on 64-bit targets, and
            // `get` refuses a record running past the end of the file.
            if let Some(data) = m.get(start..start + incl_len as usize) {
                let next = start + incl_len as usize;
                p.pos = next;
                prefetch_ahead(m, next, &mut p.pf);
                let note = if incl_len > p.snap_limit {
                    RecordNote::OverSnapLen {
                        incl_len,
                        snaplen: p.snaplen,
                    }
                } else {
                    RecordNote::None
                };
                let index = self.index;
                self.index += 1;
                return Some(Record {
                    index,
                    ts_ns: word(0) as u64 * 1_000_000_000 + word(4) as u64 * p.frac_ns,
                    orig_len: word(12),
                    data,
                    offset: at as u64,
                    note,
                });
            }
        }
        if STOP {
            Self::pcap_map_stop(&mut self.end, at, m.len());
        }
        None
    }

    /// The end of a mapped classic pcap: clean at the end of the file, damaged when the
    /// record at `at` runs past it (its header or its data).
    #[cold]
    fn pcap_map_stop(end: &mut Option<CaptureEnd>, at: usize, len: usize) {
        if end.is_some() {
            return;
        }
        if at >= len {
            *end = Some(CaptureEnd::Clean);
        } else {
            Self::damaged_at(end, at as u64, truncated());
        }
    }

    /// [`Capture::next_record`] for everything but a mapped classic pcap.
    #[inline(never)]
    fn next_other(&mut self) -> Option<Record<'_>> {
        if self.end.is_some() {
            return None;
        }
        if matches!(self.inner, Inner::Ng { .. }) {
            return self.next_ng();
        }
        if matches!(self.inner, Inner::NgMap { .. }) {
            return self.next_ng_mapped();
        }
        match &mut self.inner {
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
            Inner::PcapMap(_) | Inner::Ng { .. } | Inner::NgMap { .. } => None,
        }
    }

    /// pcapng from the memory map: like [`Capture::next_ng`], but packet bytes are
    /// slices of the map.
    fn next_ng_mapped(&mut self) -> Option<Record<'_>> {
        let Inner::NgMap {
            map,
            parser,
            pos,
            ifaces,
            pf,
        } = &mut self.inner
        else {
            unreachable!("next_ng_mapped on another format")
        };
        let m: &[u8] = map;
        loop {
            if *pos >= m.len() {
                self.end = Some(CaptureEnd::Clean);
                return None;
            }
            prefetch_ahead(m, *pos, pf);
            // Fast path: an Enhanced Packet Block without options, checked and decoded in
            // place without pcap-file's block parser.
            let big = parser.section().endianness == Endianness::Big;
            let epb = if big {
                epb_at::<true>(m, *pos)
            } else {
                epb_at::<false>(m, *pos)
            };
            if let Some((len, iface, ts, data, orig_len)) = epb {
                *pos += len;
                let offset = self.offset;
                self.offset += len as u64;
                let (note, res) = ng_note(ifaces, iface);
                let index = self.index;
                self.index += 1;
                return Some(Record {
                    index,
                    ts_ns: ng_ts_to_ns(ts, res),
                    orig_len,
                    data,
                    offset,
                    note,
                });
            }
            let (rest, raw) = match parser.next_raw_block(&m[*pos..]) {
                Ok(x) => x,
                Err(e) => {
                    let e = match e {
                        PcapError::IncompleteBuffer => truncated(),
                        other => other,
                    };
                    Self::damaged_at(&mut self.end, self.offset, e);
                    return None;
                }
            };
            *pos = m.len() - rest.len();
            let offset = self.offset;
            self.offset += raw.initial_len as u64;
            let big = parser.section().endianness == Endianness::Big;
            let btype = raw.type_;
            let parsed = if big {
                raw.try_into_block::<byteorder_slice::BigEndian>()
            } else {
                raw.try_into_block::<byteorder_slice::LittleEndian>()
            };
            let (ts_ns, orig_len, data, note): (u64, u32, &[u8], RecordNote<'_>) = match parsed {
                Err(e) => {
                    if btype != 6 && btype != 3 {
                        continue;
                    }
                    self.ngmsg = e.to_string();
                    (0, 0, &[], RecordNote::Malformed(&self.ngmsg))
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
                    let (note, res) = ng_note(ifaces, p.interface_id);
                    let data = match p.data {
                        std::borrow::Cow::Borrowed(d) => d,
                        // Blocks parsed from a slice borrow it.
                        std::borrow::Cow::Owned(_) => &[],
                    };
                    let raw_ts = p.timestamp.as_nanos() as u64;
                    (ng_ts_to_ns(raw_ts, res), p.original_len, data, note)
                }
                Ok(Block::SimplePacket(p)) => {
                    let note = match ifaces.first() {
                        None => RecordNote::UnknownInterface(0),
                        Some(i) if i.linktype != LINKTYPE_ETHERNET => {
                            RecordNote::NotEthernet(i.linktype)
                        }
                        Some(_) => RecordNote::None,
                    };
                    let data = match p.data {
                        std::borrow::Cow::Borrowed(d) => d,
                        std::borrow::Cow::Owned(_) => &[],
                    };
                    (0, p.original_len, data, note)
                }
                Ok(_) => continue,
            };
            let index = self.index;
            self.index += 1;
            return Some(Record {
                index,
                ts_ns,
                orig_len,
                data,
                offset,
                note,
            });
        }
    }

    fn next_ng(&mut self) -> Option<Record<'_>> {
        // Streaming (non-regular files): see next_ng_mapped for regular files.
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
                    self.ngmsg = e.to_string();
                    (0, 0, RecordNote::Malformed(&self.ngmsg))
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

/// The error a record cut short by the end of the file is reported with.
fn truncated() -> PcapError {
    PcapError::IoError(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
}

/// The record note and timestamp resolution of a pcapng packet of interface `id`.
fn ng_note(ifaces: &[NgIface], id: u32) -> (RecordNote<'static>, u8) {
    match ifaces.get(id as usize) {
        None => (RecordNote::UnknownInterface(id), 6),
        Some(i) if i.linktype != LINKTYPE_ETHERNET => {
            (RecordNote::NotEthernet(i.linktype), i.tsresol)
        }
        Some(i) => (RecordNote::None, i.tsresol),
    }
}

/// The Enhanced Packet Block without options at byte `at` of `m`, checked as pcap-file's
/// block parser checks a block (length a multiple of 4, inside the file, trailing length
/// equal to the leading one): (block length, interface, raw timestamp, packet bytes,
/// original length). `None` for anything else (another block type, options, damage):
/// pcap-file's parser then decides and words the errors.
#[inline]
fn epb_at<const BIG: bool>(m: &[u8], at: usize) -> Option<(usize, u32, u64, &[u8], u32)> {
    let word = |i: usize| -> Option<u32> {
        let b: [u8; 4] = m.get(i..i.checked_add(4)?)?.try_into().ok()?;
        Some(if BIG {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if word(at)? != 6 {
        return None;
    }
    let len = word(at + 4)? as usize;
    // Type, length, 20 bytes of fields, the padded packet, the trailing length.
    if !len.is_multiple_of(4) || len < 32 || word(at.checked_add(len)? - 4)? as usize != len {
        return None;
    }
    let cap = word(at + 20)? as usize;
    if len != 32 + (cap.checked_add(3)? & !3) {
        return None;
    }
    let ts = ((word(at + 12)? as u64) << 32) | word(at + 16)? as u64;
    Some((
        len,
        word(at + 8)?,
        ts,
        m.get(at + 28..at + 28 + cap)?,
        word(at + 24)?,
    ))
}

/// How far ahead of the parser the map is prefetched. Record headers form a dependent
/// chain of loads (each length gives the next offset); without prefetching, every record
/// waits for a cache miss. Measured on a 330 MB capture (330-byte records, large
/// page-cache folios), read only, each variant in alternation with this loop (ns/record):
/// no software prefetch 121-148 against 34-48; one prefetch per record 62-92 against
/// 24-41; every other line 38-48 against 24-44; this loop unrolled by four lines (fewer
/// instructions) 27-33 against 23-30 on CPU. See docs/performance.md.
const PREFETCH_AHEAD: usize = 2048;

/// Prefetches the cache lines of `m` from `*pf` up to `pos + PREFETCH_AHEAD`.
#[inline]
fn prefetch_ahead(m: &[u8], pos: usize, pf: &mut usize) {
    let lim = (pos + PREFETCH_AHEAD).min(m.len());
    while *pf < lim {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `*pf < m.len()`, so the address is inside the map; a prefetch has no
        // architectural effect besides loading a cache line.
        unsafe {
            core::arch::x86_64::_mm_prefetch(
                m.as_ptr().add(*pf) as *const i8,
                core::arch::x86_64::_MM_HINT_T0,
            );
        }
        *pf += 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ts_sec, ts_frac, incl_len as written, orig_len, data).
    type Rec = (u32, u32, u32, u32, Vec<u8>);

    fn records() -> Vec<Rec> {
        let bytes = |n: usize, seed: u8| (0..n).map(|i| seed.wrapping_add(i as u8)).collect();
        vec![
            (1_700_000_000, 999_999, 60, 60, bytes(60, 1)),
            (1_700_000_001, 0, 0, 0, vec![]),
            // Snapped: fewer bytes than on the wire.
            (1_700_000_002, 5, 40, 1514, bytes(40, 7)),
            // More bytes than the snap length (100).
            (4_000_000_000, 123_456, 130, 130, bytes(130, 9)),
            (7, 1, 3, 3, bytes(3, 200)),
        ]
    }

    /// A classic pcap of `recs` in the given byte order and timestamp resolution.
    fn pcap(recs: &[Rec], big: bool, nanos: bool, snaplen: u32) -> Vec<u8> {
        let w32 = |b: &mut Vec<u8>, v: u32| {
            b.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let w16 = |b: &mut Vec<u8>, v: u16| {
            b.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let mut b = Vec::new();
        w32(&mut b, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
        w16(&mut b, 2);
        w16(&mut b, 4);
        w32(&mut b, 0);
        w32(&mut b, 0);
        w32(&mut b, snaplen);
        w32(&mut b, LINKTYPE_ETHERNET);
        for (sec, frac, incl, orig, data) in recs {
            for v in [*sec, *frac, *incl, *orig] {
                w32(&mut b, v);
            }
            b.extend_from_slice(data);
        }
        b
    }

    /// A file in the system's temporary directory, named after the process (each test
    /// removes its file at the end, so no directory is left behind).
    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("bpfkit-capture-{}-{name}", std::process::id()))
    }

    /// Every prefix of a small file, in both byte orders and both timestamp resolutions:
    /// the whole records in it come back exactly, and the capture ends clean at a record
    /// boundary or damaged at the offset of the record the cut falls in.
    #[test]
    fn every_truncation_of_a_small_pcap() {
        let recs = records();
        for big in [false, true] {
            for nanos in [false, true] {
                let full = pcap(&recs, big, nanos, 100);
                let path = tmp(&format!("cut-{big}-{nanos}.pcap"));
                for cut in 0..=full.len() {
                    std::fs::write(&path, &full[..cut]).unwrap();
                    let what = format!("big {big}, nanos {nanos}, {cut} of {} bytes", full.len());
                    let c = Capture::open(&path);
                    if cut < 24 {
                        assert!(c.is_err(), "{what}: header cut short must not open");
                        continue;
                    }
                    let mut c = c.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(c.format(), Format::Pcap);
                    let mut off = 24usize;
                    let mut got = 0;
                    let mut damaged_at = None;
                    for (i, (sec, frac, incl, orig, data)) in recs.iter().enumerate() {
                        let end = off + 16 + data.len();
                        if end > cut {
                            if off < cut {
                                damaged_at = Some(off as u64);
                            }
                            break;
                        }
                        let r = c
                            .next_record()
                            .unwrap_or_else(|| panic!("{what}: record {i}"));
                        assert_eq!(r.index, i as u64, "{what}");
                        assert_eq!(r.offset, off as u64, "{what}");
                        let ns = *frac as u64 * if nanos { 1 } else { 1000 };
                        assert_eq!(r.ts_ns, *sec as u64 * 1_000_000_000 + ns, "{what}");
                        assert_eq!(r.orig_len, *orig, "{what}");
                        assert_eq!(r.data, &data[..], "{what}");
                        let note = if *incl > 100 {
                            RecordNote::OverSnapLen {
                                incl_len: *incl,
                                snaplen: 100,
                            }
                        } else {
                            RecordNote::None
                        };
                        assert_eq!(r.note, note, "{what}");
                        off = end;
                        got += 1;
                    }
                    assert!(c.next_record().is_none(), "{what}: after {got} records");
                    // Asking again changes nothing.
                    assert!(c.next_record().is_none(), "{what}");
                    match (damaged_at, c.end()) {
                        (None, Some(CaptureEnd::Clean)) => {}
                        (Some(at), Some(CaptureEnd::Damaged { offset, reason })) => {
                            assert_eq!(*offset, at, "{what}");
                            assert!(reason.contains("truncated"), "{what}: {reason}");
                        }
                        (want, end) => panic!("{what}: want damage at {want:?}, got {end:?}"),
                    }
                }
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// A snap length of 0 means none: no record is over it.
    #[test]
    fn snaplen_zero_puts_no_limit() {
        let path = tmp("snap0.pcap");
        std::fs::write(&path, pcap(&records(), false, false, 0)).unwrap();
        let mut c = Capture::open(&path).unwrap();
        let mut n = 0;
        while let Some(r) = c.next_record() {
            assert_eq!(r.note, RecordNote::None);
            n += 1;
        }
        assert_eq!((n, c.end()), (5, Some(&CaptureEnd::Clean)));
        let _ = std::fs::remove_file(&path);
    }

    /// A record length near 2^32 is damage at that record, not an overflow or allocation.
    #[test]
    fn huge_incl_len_is_damage() {
        for incl in [u32::MAX, u32::MAX - 15, 0x8000_0000] {
            let mut recs = records();
            recs.truncate(1);
            recs.push((1, 2, incl, incl, vec![0; 20]));
            let path = tmp("huge.pcap");
            std::fs::write(&path, pcap(&recs, true, false, 65535)).unwrap();
            let mut c = Capture::open(&path).unwrap();
            assert!(c.next_record().is_some());
            assert!(c.next_record().is_none());
            assert!(
                matches!(c.end(), Some(CaptureEnd::Damaged { offset: 100, .. })),
                "{:?}",
                c.end()
            );
            let _ = std::fs::remove_file(&path);
        }
    }

    /// A pcapng of an SHB, one Ethernet IDB (`if_tsresol` 9 when `nanos`) and EPBs for
    /// `recs` (one with an option, which the block parser must handle).
    fn pcapng(recs: &[Rec], big: bool, nanos: bool) -> (Vec<u8>, Vec<usize>) {
        let w32 = |b: &mut Vec<u8>, v: u32| {
            b.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let w16 = |b: &mut Vec<u8>, v: u16| {
            b.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            })
        };
        let block = |out: &mut Vec<u8>, t: u32, body: &[u8]| {
            let len = 12 + body.len().next_multiple_of(4) as u32;
            w32(out, t);
            w32(out, len);
            out.extend_from_slice(body);
            out.resize(out.len() + body.len().next_multiple_of(4) - body.len(), 0);
            w32(out, len);
        };
        let mut b = Vec::new();
        let mut shb = Vec::new();
        w32(&mut shb, 0x1a2b_3c4d);
        w16(&mut shb, 1);
        w16(&mut shb, 0);
        shb.extend_from_slice(&[0xff; 8]);
        block(&mut b, 0x0a0d_0d0a, &shb);
        let mut idb = Vec::new();
        w16(&mut idb, 1);
        w16(&mut idb, 0);
        w32(&mut idb, 0);
        if nanos {
            w16(&mut idb, 9); // if_tsresol
            w16(&mut idb, 1);
            idb.extend_from_slice(&[9, 0, 0, 0]);
            w16(&mut idb, 0); // opt_endofopt
            w16(&mut idb, 0);
        }
        block(&mut b, 1, &idb);
        let mut starts = Vec::new();
        for (i, (sec, frac, _, orig, data)) in recs.iter().enumerate() {
            let units = if nanos { 1_000_000_000 } else { 1_000_000 };
            let ts = *sec as u64 * units + *frac as u64;
            let mut epb = Vec::new();
            w32(&mut epb, 0);
            w32(&mut epb, (ts >> 32) as u32);
            w32(&mut epb, ts as u32);
            w32(&mut epb, data.len() as u32);
            w32(&mut epb, *orig);
            epb.extend_from_slice(data);
            epb.resize(epb.len().next_multiple_of(4), 0);
            if i == 2 {
                // opt_comment "hi", then opt_endofopt.
                w16(&mut epb, 1);
                w16(&mut epb, 2);
                epb.extend_from_slice(b"hi\0\0");
                w32(&mut epb, 0);
            }
            starts.push(b.len());
            block(&mut b, 6, &epb);
        }
        (b, starts)
    }

    /// Every prefix of a small pcapng, both byte orders, micro- and nanosecond interfaces:
    /// whole blocks come back exactly (the in-place EPB path and the block parser's for
    /// the one with an option), and a cut block is damage at its offset.
    #[test]
    fn every_truncation_of_a_small_pcapng() {
        let recs = records();
        for big in [false, true] {
            for nanos in [false, true] {
                let (full, starts) = pcapng(&recs, big, nanos);
                let path = tmp(&format!("cut-{big}-{nanos}.pcapng"));
                for cut in starts[0]..=full.len() {
                    std::fs::write(&path, &full[..cut]).unwrap();
                    let what = format!("big {big}, nanos {nanos}, {cut} of {} bytes", full.len());
                    let mut c = Capture::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(c.format(), Format::PcapNg);
                    let mut damaged_at = None;
                    for (i, (sec, frac, _, orig, data)) in recs.iter().enumerate() {
                        let end = starts.get(i + 1).copied().unwrap_or(full.len());
                        if end > cut {
                            if starts[i] < cut {
                                damaged_at = Some(starts[i] as u64);
                            }
                            break;
                        }
                        let r = c
                            .next_record()
                            .unwrap_or_else(|| panic!("{what}: record {i}"));
                        assert_eq!((r.index, r.offset), (i as u64, starts[i] as u64), "{what}");
                        let ns = *frac as u64 * if nanos { 1 } else { 1000 };
                        assert_eq!(r.ts_ns, *sec as u64 * 1_000_000_000 + ns, "{what}");
                        assert_eq!((r.orig_len, r.data), (*orig, &data[..]), "{what}");
                        assert_eq!(r.note, RecordNote::None, "{what}");
                    }
                    assert!(c.next_record().is_none(), "{what}");
                    match (damaged_at, c.end()) {
                        (None, Some(CaptureEnd::Clean)) => {}
                        (Some(at), Some(CaptureEnd::Damaged { offset, .. })) => {
                            assert_eq!(*offset, at, "{what}")
                        }
                        (want, end) => panic!("{what}: want damage at {want:?}, got {end:?}"),
                    }
                }
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// An EPB whose trailing length disagrees with its leading one is damage (the block
    /// parser's error), not a record read by the in-place path.
    #[test]
    fn pcapng_epb_with_a_wrong_trailing_length_is_damage() {
        let (mut b, starts) = pcapng(&records(), false, false);
        let end = starts[1];
        b[end - 4] ^= 4;
        let path = tmp("trailer.pcapng");
        std::fs::write(&path, &b).unwrap();
        let mut c = Capture::open(&path).unwrap();
        assert!(c.next_record().is_none());
        match c.end() {
            Some(CaptureEnd::Damaged { offset, reason }) => {
                assert_eq!(*offset, starts[0] as u64);
                assert!(reason.contains("trailer"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_file(&path);
    }
}
