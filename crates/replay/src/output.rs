//! Output files that are never left half-written.
//!
//! An [`OutFile`] is standard output when its path is `-` or names the file standard output
//! already is (`/dev/stdout`, or the file stdout is redirected to), so a redirect is never
//! opened a second time at offset 0 over what stdout writes. Any other regular file is
//! written under a temporary name in the same directory and renamed over the destination
//! by [`OutFile::commit`]; dropped without a commit (an error, a panic), the temporary
//! file is removed and the destination is untouched. Special files (FIFOs, `/dev/null`,
//! terminals) are written in place.
//!
//! Writers also map a closed reader (`EPIPE`) to [`is_broken_pipe`], so callers can end
//! quietly instead of reporting an error.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where an output goes.
enum Target {
    Stdout(std::io::Stdout),
    /// A regular file written as `tmp`, renamed to `dest` on commit.
    Temp {
        file: File,
        tmp: PathBuf,
    },
    /// A special file (FIFO, device) written in place.
    Direct(File),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Target::Stdout(s) => s.write(buf),
            Target::Temp { file, .. } | Target::Direct(file) => file.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Target::Stdout(s) => s.flush(),
            Target::Temp { file, .. } | Target::Direct(file) => file.flush(),
        }
    }
}

/// A buffered output file; see the module documentation.
///
/// Its buffer is its own (not a `BufWriter`), so a record can be built in place in it
/// ([`OutFile::record_space`], [`OutFile::advance`]): a pcap record's packet is copied
/// once, from the engine's frame into the buffer, and a trace line is formatted directly
/// into it.
pub struct OutFile {
    /// `None` once committed.
    target: Option<Target>,
    /// `buf[..pos]` is written but not yet handed to the file; `buf` is zeroed once at
    /// its full length (the capacity), so the free part can be handed out as a slice.
    buf: Vec<u8>,
    pos: usize,
    dest: PathBuf,
    /// How the path is shown in messages (`<stdout>` for standard output).
    shown: String,
}

/// The buffer of files written packet by packet ([`OutFile::create_batched`]).
pub const BATCH: usize = 1 << 20;

/// Whether `path` means standard output: `-`, or the very file (device and inode) that
/// standard output is open on.
pub fn is_stdout(path: &Path) -> bool {
    if path.as_os_str() == "-" {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() else {
            return false;
        };
        let Ok(out) = File::from(fd).metadata() else {
            return false;
        };
        match std::fs::metadata(path) {
            Ok(m) => m.dev() == out.dev() && m.ino() == out.ino(),
            Err(_) => false,
        }
    }
    #[cfg(not(unix))]
    false
}

/// How an output path is shown in messages.
pub fn shown(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdout>".to_string()
    } else {
        path.display().to_string()
    }
}

/// Whether `e` is a write to a reader that went away (`EPIPE`).
pub fn is_broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

fn committed() -> std::io::Error {
    std::io::Error::other("output already committed")
}

impl OutFile {
    /// Opens `path` for writing (see the module documentation).
    pub fn create(path: &Path) -> std::io::Result<OutFile> {
        OutFile::create_with_capacity(path, 1 << 16)
    }

    /// For files written packet by packet (per-action pcaps, the trace, the pcapng):
    /// batches of 1 MiB, i.e. one `write` per ~1 MiB of records.
    pub fn create_batched(path: &Path) -> std::io::Result<OutFile> {
        OutFile::create_with_capacity(path, BATCH)
    }

    pub fn create_with_capacity(path: &Path, capacity: usize) -> std::io::Result<OutFile> {
        let target = if is_stdout(path) {
            Target::Stdout(std::io::stdout())
        } else {
            let special = std::fs::metadata(path)
                .map(|m| !m.is_file())
                .unwrap_or(false);
            if special {
                Target::Direct(std::fs::OpenOptions::new().write(true).open(path)?)
            } else {
                let tmp = temp_name(path);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)?;
                Target::Temp { file, tmp }
            }
        };
        Ok(OutFile {
            target: Some(target),
            buf: vec![0; capacity.max(1)],
            pos: 0,
            dest: path.to_path_buf(),
            shown: shown(path),
        })
    }

    /// Hands what is buffered to the file.
    #[cold]
    #[inline(never)]
    fn flush_buf(&mut self) -> std::io::Result<()> {
        let t = self.target.as_mut().ok_or_else(committed)?;
        let n = std::mem::take(&mut self.pos);
        t.write_all(&self.buf[..n])
    }

    /// `len` writable bytes for the next record, in the buffer after what is written so
    /// far (flushed first when the record could not fit in what is left). Write the
    /// record at the start of the slice, then [`OutFile::advance`] by its length. A
    /// record larger than the whole buffer grows the buffer. So a record is never split
    /// by a flush and the file always ends on a record boundary.
    #[inline]
    pub fn record_space(&mut self, len: usize) -> std::io::Result<&mut [u8]> {
        if self.buf.len() - self.pos < len {
            self.make_room(len)?;
        }
        Ok(&mut self.buf[self.pos..self.pos + len])
    }

    #[cold]
    #[inline(never)]
    fn make_room(&mut self, len: usize) -> std::io::Result<()> {
        self.flush_buf()?;
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        Ok(())
    }

    /// Marks `n` bytes of the slice [`OutFile::record_space`] gave as written.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        debug_assert!(self.pos + n <= self.buf.len());
        self.pos += n;
    }

    /// Writes one record made of `parts` so that it is never split by a flush of the
    /// buffer (see [`OutFile::record_space`]); no allocation, one copy.
    #[inline]
    pub fn write_record(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let space = self.record_space(total)?;
        let mut at = 0;
        for p in parts {
            space[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.advance(total);
        Ok(())
    }

    /// Whether this output is standard output.
    pub fn is_stdout(&self) -> bool {
        matches!(self.target, Some(Target::Stdout(_)))
    }

    /// The path as shown in messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Flushes everything and gives the file its final name.
    pub fn commit(mut self) -> std::io::Result<()> {
        if self.target.is_none() {
            return Ok(());
        }
        self.flush_buf()?;
        let target = self.target.take().expect("checked above");
        match target {
            Target::Stdout(mut s) => s.flush(),
            Target::Direct(mut f) => f.flush(),
            Target::Temp { mut file, tmp } => {
                let done = file.flush().and_then(|_| {
                    drop(file);
                    std::fs::rename(&tmp, &self.dest)
                });
                if done.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                done
            }
        }
    }
}

impl Write for OutFile {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.target.is_none() {
            return Err(committed());
        }
        if self.buf.len() - self.pos < data.len() {
            self.flush_buf()?;
            if data.len() > self.buf.len() {
                return self.target.as_mut().ok_or_else(committed)?.write_all(data);
            }
        }
        self.buf[self.pos..self.pos + data.len()].copy_from_slice(data);
        self.pos += data.len();
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.target.is_none() {
            return Ok(());
        }
        self.flush_buf()?;
        self.target.as_mut().ok_or_else(committed)?.flush()
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        // Not committed: the temporary file goes, the destination stays as it was (what
        // is buffered is dropped, never written).
        if let Some(Target::Temp { file, tmp }) = self.target.take() {
            drop(file);
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// `.NAME.PID.N.tmp` beside `path` (same directory, so the rename is atomic).
fn temp_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let n = N.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` as a whole (stdout for `-`), committed when complete.
pub fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OutFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Classic pcap (nanosecond magic, little-endian, Ethernet) written record by record.
/// Each record is written whole with one `write_all` into the buffer, so the file ends on
/// a record boundary whenever it is committed.
pub struct PcapOut {
    pub file: OutFile,
    /// Records written.
    pub records: u64,
    /// Records whose timestamp was beyond what the format holds (32-bit seconds, i.e.
    /// after 2106-02-07): written with the largest timestamp it can hold.
    pub clamped: u64,
    /// The last record's second in nanoseconds (`sec` as a whole): records within that
    /// second take their nanoseconds by a subtraction instead of a division.
    base: u64,
    sec: u32,
}

/// The largest `ts_ns` a classic pcap record can hold.
pub const PCAP_MAX_TS_NS: u64 = u32::MAX as u64 * 1_000_000_000 + 999_999_999;

impl PcapOut {
    pub fn create(path: &Path) -> std::io::Result<PcapOut> {
        let mut file = OutFile::create_batched(path)?;
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        h[16..20].copy_from_slice(&262_144u32.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        file.write_all(&h)?;
        Ok(PcapOut {
            file,
            records: 0,
            clamped: 0,
            base: 0,
            sec: 0,
        })
    }

    #[inline]
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> std::io::Result<()> {
        let ts = if ts_ns > PCAP_MAX_TS_NS {
            self.clamped += 1;
            PCAP_MAX_TS_NS
        } else {
            ts_ns
        };
        let incl = u32::try_from(data.len())
            .map_err(|_| std::io::Error::other("frame longer than 4 GiB"))?;
        // Header and packet straight into the file's buffer (one copy of the packet).
        let r = self.file.record_space(16 + data.len())?;
        let (h, body) = r.split_at_mut(16);
        const E9: u64 = 1_000_000_000;
        let mut ns = ts.wrapping_sub(self.base);
        if ns >= E9 {
            self.sec = (ts / E9) as u32;
            self.base = self.sec as u64 * E9;
            ns = ts - self.base;
        }
        h[0..4].copy_from_slice(&self.sec.to_le_bytes());
        h[4..8].copy_from_slice(&(ns as u32).to_le_bytes());
        h[8..12].copy_from_slice(&incl.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.max(incl).to_le_bytes());
        body.copy_from_slice(data);
        self.file.advance(16 + data.len());
        self.records += 1;
        Ok(())
    }
}

/// One pcapng of every output frame, as xdpdump writes them: a section header, one
/// Ethernet interface with nanosecond timestamps, and an Enhanced Packet Block per frame
/// whose comment says what the program did (`opt_comment`), with the input packet index
/// (`epb_packetid`), the receive queue (`epb_queue`) and the XDP action as an eBPF
/// verdict (`epb_verdict`, type 2).
pub struct PcapNgOut {
    pub file: OutFile,
    pub records: u64,
}

fn ng_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

fn ng_block(btype: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len().div_ceil(4) * 4) as u32;
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&btype.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len as usize - 4, 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// What [`PcapNgOut::write`] records about one frame.
pub struct NgFrame<'a> {
    pub ts_ns: u64,
    pub orig_len: u32,
    pub data: &'a [u8],
    /// Input packet index (0-based position in the capture).
    pub index: u64,
    pub queue: u32,
    pub retval: u64,
    /// The packet comment.
    pub comment: &'a str,
}

impl PcapNgOut {
    pub fn create(path: &Path, tool: &str) -> std::io::Result<PcapNgOut> {
        let mut file = OutFile::create_batched(path)?;
        // Section header: byte-order magic, version 1.0, section length unknown.
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        ng_option(&mut shb, 4, tool.as_bytes()); // shb_userappl
        ng_option(&mut shb, 0, &[]);
        file.write_all(&ng_block(0x0a0d_0d0a, &shb))?;
        // Interface: Ethernet, no snap length, nanosecond timestamps.
        let mut idb = Vec::new();
        idb.extend_from_slice(&1u16.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        ng_option(&mut idb, 2, b"bpfkit-replay"); // if_name
        ng_option(&mut idb, 9, &[9]); // if_tsresol: 10^-9
        ng_option(&mut idb, 0, &[]);
        file.write_all(&ng_block(1, &idb))?;
        Ok(PcapNgOut { file, records: 0 })
    }

    /// Writes the Enhanced Packet Block of `f` straight into the file's buffer: every
    /// byte of it, padding included (the space handed out holds stale bytes).
    pub fn write(&mut self, f: &NgFrame<'_>) -> std::io::Result<()> {
        let incl = u32::try_from(f.data.len())
            .map_err(|_| std::io::Error::other("frame longer than 4 GiB"))?;
        let comment = f.comment.as_bytes();
        let clen = u16::try_from(comment.len())
            .map_err(|_| std::io::Error::other("packet comment longer than 65535 bytes"))?;
        let (dpad, cpad) = (f.data.len().div_ceil(4) * 4, comment.len().div_ceil(4) * 4);
        // Header 28, data, comment option, packet id 12, queue 8, verdict 16, end 4,
        // trailing length 4.
        let len = 28 + dpad + 4 + cpad + 12 + 8 + 16 + 4 + 4;
        let block_len = u32::try_from(len)
            .map_err(|_| std::io::Error::other("pcapng block longer than 4 GiB"))?;
        let b = self.file.record_space(len)?;
        b[0..4].copy_from_slice(&6u32.to_le_bytes());
        b[4..8].copy_from_slice(&block_len.to_le_bytes());
        b[8..12].copy_from_slice(&0u32.to_le_bytes());
        b[12..16].copy_from_slice(&((f.ts_ns >> 32) as u32).to_le_bytes());
        b[16..20].copy_from_slice(&(f.ts_ns as u32).to_le_bytes());
        b[20..24].copy_from_slice(&incl.to_le_bytes());
        b[24..28].copy_from_slice(&f.orig_len.max(incl).to_le_bytes());
        let mut at = 28;
        b[at..at + f.data.len()].copy_from_slice(f.data);
        b[at + f.data.len()..at + dpad].fill(0);
        at += dpad;
        // opt_comment
        b[at..at + 2].copy_from_slice(&1u16.to_le_bytes());
        b[at + 2..at + 4].copy_from_slice(&clen.to_le_bytes());
        at += 4;
        b[at..at + comment.len()].copy_from_slice(comment);
        b[at + comment.len()..at + cpad].fill(0);
        at += cpad;
        // epb_packetid
        b[at..at + 2].copy_from_slice(&5u16.to_le_bytes());
        b[at + 2..at + 4].copy_from_slice(&8u16.to_le_bytes());
        b[at + 4..at + 12].copy_from_slice(&f.index.to_le_bytes());
        at += 12;
        // epb_queue
        b[at..at + 2].copy_from_slice(&6u16.to_le_bytes());
        b[at + 2..at + 4].copy_from_slice(&4u16.to_le_bytes());
        b[at + 4..at + 8].copy_from_slice(&f.queue.to_le_bytes());
        at += 8;
        // epb_verdict: type 2 (eBPF XDP), the return value, padded to 12
        b[at..at + 2].copy_from_slice(&7u16.to_le_bytes());
        b[at + 2..at + 4].copy_from_slice(&9u16.to_le_bytes());
        b[at + 4] = 2;
        b[at + 5..at + 13].copy_from_slice(&f.retval.to_le_bytes());
        b[at + 13..at + 16].fill(0);
        at += 16;
        // opt_endofopt, then the length again
        b[at..at + 4].fill(0);
        at += 4;
        b[at..at + 4].copy_from_slice(&block_len.to_le_bytes());
        debug_assert_eq!(at + 4, len);
        self.file.advance(len);
        self.records += 1;
        Ok(())
    }

    /// The block as [`PcapNgOut::write`] built it before it wrote in place (tests).
    #[cfg(test)]
    fn reference_block(f: &NgFrame<'_>) -> Vec<u8> {
        let incl = f.data.len() as u32;
        let mut epb = Vec::new();
        epb.extend_from_slice(&6u32.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((f.ts_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(f.ts_ns as u32).to_le_bytes());
        epb.extend_from_slice(&incl.to_le_bytes());
        epb.extend_from_slice(&f.orig_len.max(incl).to_le_bytes());
        epb.extend_from_slice(f.data);
        epb.resize(epb.len().div_ceil(4) * 4, 0);
        ng_option(&mut epb, 1, f.comment.as_bytes());
        ng_option(&mut epb, 5, &f.index.to_le_bytes());
        ng_option(&mut epb, 6, &f.queue.to_le_bytes());
        let mut verdict = [2u8; 9];
        verdict[1..].copy_from_slice(&f.retval.to_le_bytes());
        ng_option(&mut epb, 7, &verdict);
        ng_option(&mut epb, 0, &[]);
        let len = (epb.len() + 4) as u32;
        epb[4..8].copy_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// The running test's scratch directory, removed when its thread ends.
        static SCRATCH: tempfile::TempDir = tempfile::Builder::new()
            .prefix("bpfkit-test-")
            .tempdir()
            .unwrap();
    }

    fn dir(name: &str) -> PathBuf {
        let d = SCRATCH.with(|s| s.path().join(name));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn committed_file_replaces_the_destination_only_at_commit() {
        let d = dir("commit");
        let p = d.join("a.json");
        std::fs::write(&p, b"old").unwrap();
        let mut f = OutFile::create(&p).unwrap();
        f.write_all(b"new contents").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new contents");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn dropped_file_leaves_nothing() {
        let d = dir("drop");
        let p = d.join("b.json");
        let mut f = OutFile::create(&p).unwrap();
        f.write_all(b"partial").unwrap();
        drop(f);
        assert!(!p.exists());
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    }

    #[test]
    fn records_are_whole_and_in_order_across_flushes() {
        let d = dir("records");
        let p = d.join("r.bin");
        // A tiny buffer: records flush it, and one record is larger than it.
        let mut f = OutFile::create_with_capacity(&p, 8).unwrap();
        let mut want = Vec::new();
        for (i, n) in [5usize, 3, 1, 20, 8, 0, 7, 9].into_iter().enumerate() {
            let rec: Vec<u8> = (0..n).map(|j| (i * 16 + j) as u8).collect();
            if i % 2 == 0 {
                f.write_record(&[&rec[..n / 2], &rec[n / 2..]]).unwrap();
            } else {
                let space = f.record_space(n + 3).unwrap();
                space[..n].copy_from_slice(&rec);
                f.advance(n);
            }
            want.extend_from_slice(&rec);
        }
        f.write_all(b"tail, longer than the buffer").unwrap();
        want.extend_from_slice(b"tail, longer than the buffer");
        assert!(!p.exists(), "nothing at the destination before the commit");
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), want);
    }

    #[test]
    fn pcapng_blocks_in_place_are_the_built_ones() {
        let d = dir("ng");
        let p = d.join("a.pcapng");
        let mut ng = PcapNgOut::create(&p, "test").unwrap();
        // Stale bytes in the buffer: a record written in place must cover every byte.
        ng.file.record_space(4096).unwrap().fill(0xa5);
        let head = ng.file.pos;
        let mut want = Vec::new();
        for (i, n) in [0usize, 1, 2, 3, 4, 5, 60, 61, 1514]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..n).map(|j| (j * 7 + i) as u8).collect();
            let comment = "XDP_PASS packet ".to_string() + &"x".repeat(i);
            let f = NgFrame {
                ts_ns: 1_700_000_000_123_456_789 + i as u64,
                orig_len: n as u32 + (i as u32 % 2) * 10,
                data: &data,
                index: i as u64 * 1000,
                queue: i as u32,
                retval: if i == 3 { 0xffff_ffff_0000_1000 } else { 2 },
                comment: &comment,
            };
            ng.file.record_space(4096).unwrap().fill(0x5a);
            ng.write(&f).unwrap();
            want.extend_from_slice(&PcapNgOut::reference_block(&f));
        }
        ng.file.commit().unwrap();
        let all = std::fs::read(&p).unwrap();
        assert_eq!(&all[head..], &want[..]);
    }

    #[test]
    fn dash_is_stdout() {
        assert!(is_stdout(Path::new("-")));
        let f = OutFile::create(Path::new("-")).unwrap();
        assert!(f.is_stdout());
        assert_eq!(f.shown(), "<stdout>");
    }
}
