//! Where each packet's result goes: the summary's counts, the per-action pcaps of
//! `--out`, the JSONL trace and the pcapng of `--pcapng`.
//!
//! Written for millions of packets: the common result (one of the five actions, nothing
//! to write) is only counted, inline; writers are found by the return value; records are
//! built in buffers reused from packet to packet and handed whole to the batched
//! [`OutFile`]s (1 MiB buffers, see [`OutFile::write_record`]), and trace lines are
//! formatted directly, without building JSON values, as serde_json would print them.

use crate::engines::RunError;
use crate::output::{self, NgFrame, OutFile, PcapNgOut, PcapOut};
use crate::{
    action_name, events_json, out_err, redirect_json, redirect_label, signal_name, Options,
    ReplayError, Summary, ACTIONS,
};
use bpfkit_object::model::LinkedObject;
use bpfkit_vm::engine::{Redirect, XdpOutput};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Per-action pcap writers for `--out DIR`, opened on first use; found by the return
/// value, so a packet costs no name or map lookup.
struct OutDir {
    dir: PathBuf,
    /// `XDP_ABORTED` .. `XDP_REDIRECT`, by return value.
    actions: [Option<PcapOut>; 5],
    /// Other return values (`XDP_UNKNOWN_<n>`), by their low 32 bits.
    others: BTreeMap<u32, PcapOut>,
}

impl OutDir {
    #[inline]
    fn write(
        &mut self,
        retval: u64,
        ts_ns: u64,
        orig_len: u32,
        data: &[u8],
    ) -> Result<(), ReplayError> {
        let a = retval as u32;
        let w = match self.actions.get_mut(a as usize) {
            Some(Some(w)) => w,
            Some(slot) => slot.insert(Self::create(&self.dir, retval)?),
            None => match self.others.entry(a) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(Self::create(&self.dir, retval)?)
                }
            },
        };
        w.write(ts_ns, orig_len, data).map_err(|e| {
            out_err(
                &format!("{}/{}.pcap", self.dir.display(), action_name(retval)),
                e,
            )
        })
    }

    #[cold]
    fn create(dir: &Path, retval: u64) -> Result<PcapOut, ReplayError> {
        let path = dir.join(format!("{}.pcap", action_name(retval)));
        PcapOut::create(&path).map_err(|e| out_err(&path.display().to_string(), e))
    }

    /// Commits every file; returns (frames written, timestamps clamped).
    fn finish(self) -> Result<(u64, u64), ReplayError> {
        let (mut n, mut clamped) = (0, 0);
        let all = self
            .actions
            .into_iter()
            .flatten()
            .chain(self.others.into_values());
        for w in all {
            n += w.records;
            clamped += w.clamped;
            let shown = w.file.shown().to_string();
            w.file.commit().map_err(|e| out_err(&shown, e))?;
        }
        Ok((n, clamped))
    }
}

/// The input side of one packet, for the outputs.
pub(crate) struct PacketInfo<'a> {
    pub(crate) index: u64,
    pub(crate) ts_ns: u64,
    pub(crate) data: &'a [u8],
    pub(crate) orig_len: u32,
    /// With `queues > 1`.
    pub(crate) queue: Option<u32>,
    /// XDP metadata bytes at the front of the output packet.
    pub(crate) meta_len: usize,
}

/// Where per-packet results go: the summary counts, `--out` and `--trace`.
pub(crate) struct Outputs {
    out_dir: Option<OutDir>,
    trace: Option<OutFile>,
    trace_lines: u64,
    pcapng: Option<PcapNgOut>,
    action_counts: [u64; 5],
    /// Other return values (low 32 bits) and their counts.
    other_actions: BTreeMap<u32, u64>,
    /// Redirect targets (0 and the ifindex, or 1, the map and the key) and their counts.
    redirects: BTreeMap<(u8, usize, u32), u64>,
    /// The trace line being written, reused from packet to packet.
    line: TraceLine,
    /// The pcapng comment being written, reused from packet to packet.
    comment: String,
}

fn trace_err(e: std::io::Error) -> ReplayError {
    out_err("trace", e)
}

impl Outputs {
    pub(crate) fn open(opts: &Options) -> Result<Outputs, ReplayError> {
        let out_dir = match &opts.out_dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| ReplayError::Usage(format!("{}: {e}", d.display())))?;
                Some(OutDir {
                    dir: d.clone(),
                    actions: Default::default(),
                    others: BTreeMap::new(),
                })
            }
            None => None,
        };
        let trace = match &opts.trace {
            Some(p) => Some(OutFile::create_batched(p).map_err(|e| out_err(&output::shown(p), e))?),
            None => None,
        };
        let pcapng = match &opts.pcapng {
            Some(p) => Some(
                PcapNgOut::create(p, concat!("bpfkit replay ", env!("CARGO_PKG_VERSION")))
                    .map_err(|e| out_err(&output::shown(p), e))?,
            ),
            None => None,
        };
        Ok(Outputs {
            out_dir,
            trace,
            trace_lines: 0,
            pcapng,
            action_counts: [0; 5],
            other_actions: BTreeMap::new(),
            redirects: BTreeMap::new(),
            line: TraceLine::default(),
            comment: String::new(),
        })
    }

    /// Whether any output needs the output packet bytes.
    pub(crate) fn wants_packet(&self) -> bool {
        self.out_dir.is_some() || self.trace.is_some() || self.pcapng.is_some()
    }

    #[inline(never)]
    pub(crate) fn skipped(
        &mut self,
        s: &mut Summary,
        index: u64,
        ts_ns: u64,
        len_in: usize,
        reason: String,
    ) -> Result<(), ReplayError> {
        if let Some(t) = self.trace.as_mut() {
            let line = json!({"index": index, "ts_ns": ts_ns, "len_in": len_in, "skipped": reason});
            t.write_record(&[format!("{line}\n").as_bytes()])
                .map_err(trace_err)?;
            self.trace_lines += 1;
        }
        *s.skipped.entry(reason).or_insert(0) += 1;
        Ok(())
    }

    /// Counts a packet's result in the summary and writes it to the outputs.
    #[inline]
    pub(crate) fn result(
        &mut self,
        obj: &LinkedObject,
        s: &mut Summary,
        p: &PacketInfo<'_>,
        r: Result<&XdpOutput, &RunError>,
    ) -> Result<(), ReplayError> {
        if let Ok(o) = r {
            if self.count_plain(s, o) {
                return Ok(());
            }
        }
        let packet = r.map_or(&[][..], |o| &o.packet[..]);
        self.result_written(obj, s, p, r, packet)
    }

    /// The common case of [`Outputs::result`], inline: a run ending in one of the five
    /// actions, no redirect target to label, nothing to write. Counts it and returns true;
    /// false (nothing counted) for anything else.
    #[inline(always)]
    pub(crate) fn count_plain(&mut self, s: &mut Summary, o: &XdpOutput) -> bool {
        let a = o.retval as u32 as usize;
        if a < 5
            && o.redirect.is_none()
            && self.out_dir.is_none()
            && self.trace.is_none()
            && self.pcapng.is_none()
        {
            s.ran += 1;
            self.action_counts[a] += 1;
            true
        } else {
            false
        }
    }

    /// [`Outputs::result`] for everything but its inline common case. `packet` is the
    /// output packet (metadata included): the copy in [`XdpOutput::packet`], or the
    /// engine's frame itself ([`crate::engines::ReplayEngine::frame`]) when it was not
    /// copied.
    #[inline(never)]
    pub(crate) fn result_written(
        &mut self,
        obj: &LinkedObject,
        s: &mut Summary,
        p: &PacketInfo<'_>,
        r: Result<&XdpOutput, &RunError>,
        packet: &[u8],
    ) -> Result<(), ReplayError> {
        match r {
            Ok(o) => {
                s.ran += 1;
                let a = o.retval as u32;
                if (a as usize) < 5 {
                    self.action_counts[a as usize] += 1;
                } else {
                    // Named once, at the end: no string per packet.
                    *self.other_actions.entry(a).or_insert(0) += 1;
                }
                if let Some(r) = &o.redirect {
                    let k = match r {
                        Redirect::Ifindex(i) => (0, 0, *i),
                        Redirect::Map { map, key } => (1, *map, *key),
                    };
                    *self.redirects.entry(k).or_insert(0) += 1;
                }
                // The frame as the program left it (data .. data_end, then the
                // fragments), without the XDP metadata in front of it.
                let frame = packet.get(p.meta_len..).unwrap_or(&[]);
                let orig = (p.orig_len as i64 + frame.len() as i64 - p.data.len() as i64)
                    .max(frame.len() as i64) as u32;
                if let Some(od) = self.out_dir.as_mut() {
                    od.write(o.retval, p.ts_ns, orig, frame)?;
                }
                if let Some(ng) = self.pcapng.as_mut() {
                    use std::fmt::Write as _;
                    let comment = &mut self.comment;
                    comment.clear();
                    push_action(comment, o.retval);
                    let _ = write!(comment, " packet {}", p.index);
                    if let Some(r) = &o.redirect {
                        let _ = write!(comment, " redirect {}", redirect_label(obj, r));
                    }
                    if let Some(q) = p.queue {
                        let _ = write!(comment, " queue {q}");
                    }
                    ng.write(&NgFrame {
                        ts_ns: p.ts_ns,
                        orig_len: orig,
                        data: frame,
                        index: p.index,
                        queue: p.queue.unwrap_or(0),
                        retval: o.retval,
                        comment,
                    })
                    .map_err(|e| out_err("--pcapng", e))?;
                }
                if let Some(t) = self.trace.as_mut() {
                    self.line.write(t, obj, p, packet, o).map_err(trace_err)?;
                    self.trace_lines += 1;
                }
            }
            Err(e) => {
                let (fault, msg) = match e {
                    RunError::Fault(m) => (true, m.clone()),
                    RunError::Refused(m) => (false, m.clone()),
                };
                if fault {
                    s.faults += 1;
                    if s.first_fault.is_none() {
                        s.first_fault = Some((p.index, msg.clone()));
                    }
                } else {
                    *s.skipped
                        .entry(format!("engine refused: {msg}"))
                        .or_insert(0) += 1;
                }
                if let Some(t) = self.trace.as_mut() {
                    let key = if fault { "fault" } else { "skipped" };
                    let mut line =
                        json!({"index": p.index, "ts_ns": p.ts_ns, "len_in": p.data.len()});
                    line[key] = json!(msg);
                    t.write_record(&[format!("{line}\n").as_bytes()])
                        .map_err(trace_err)?;
                    self.trace_lines += 1;
                }
            }
        }
        Ok(())
    }

    /// Completes the files (each ends on a whole record: records are written whole
    /// between packets), adds the per-action counts and what was written to the summary,
    /// and marks it interrupted when a signal stopped the replay.
    pub(crate) fn finish(
        &mut self,
        obj: &LinkedObject,
        opts: &Options,
        s: &mut Summary,
    ) -> Result<(), ReplayError> {
        for (i, n) in std::mem::take(&mut self.action_counts).iter().enumerate() {
            *s.actions.get_mut(ACTIONS[i]).expect("all actions inserted") += n;
        }
        for (a, n) in std::mem::take(&mut self.other_actions) {
            *s.actions.entry(action_name(a.into())).or_insert(0) += n;
        }
        for ((kind, map, key), n) in std::mem::take(&mut self.redirects) {
            let r = if kind == 0 {
                Redirect::Ifindex(key)
            } else {
                Redirect::Map { map, key }
            };
            *s.redirects.entry(redirect_label(obj, &r)).or_insert(0) += n;
        }
        if let Some(t) = self.trace.take() {
            t.commit().map_err(trace_err)?;
            s.written.trace = Some(self.trace_lines);
        }
        if let Some(od) = self.out_dir.take() {
            let (n, clamped) = od.finish()?;
            s.written.pcaps = Some(n);
            s.ts_clamped += clamped;
        }
        if let Some(ng) = self.pcapng.take() {
            s.written.pcapng = Some(ng.records);
            ng.file.commit().map_err(|e| out_err("--pcapng", e))?;
        }
        if let Some(sig) = opts.stop.map(|f| f.load(Ordering::Relaxed)) {
            if sig != 0 {
                s.interrupted = Some(signal_name(sig));
            }
        }
        Ok(())
    }
}

/// The name of a return value ([`action_name`]) appended to `out`, without allocating.
fn push_action(out: &mut String, retval: u64) {
    let a = retval as u32;
    match ACTIONS.get(a as usize) {
        Some(n) => out.push_str(n),
        None => {
            use std::fmt::Write as _;
            let _ = write!(out, "XDP_UNKNOWN_{a}");
        }
    }
}

/// Appends the decimal digits of `v` (test helper and reference for [`put_u64`]).
#[cfg(test)]
fn push_u64(out: &mut Vec<u8>, v: u64) {
    let len = out.len();
    out.resize(len + 20, 0);
    let end = put_u64(out, len, v);
    out.truncate(end);
}

/// The number of decimal digits of `w` (1 for 0), without a loop or a division: the
/// table adds to `w` a value whose upper 32 bits are the digit count of the smallest
/// number with `w`'s bit length, and carries into them exactly when `w` reaches the next
/// power of ten (D. Lemire, "Computing the number of digits of an integer even faster",
/// 2021).
#[inline(always)]
fn digit_count(w: u32) -> usize {
    const T: [u64; 32] = [
        4294967296,
        8589934582,
        8589934582,
        8589934582,
        12884901788,
        12884901788,
        12884901788,
        17179868184,
        17179868184,
        17179868184,
        21474826480,
        21474826480,
        21474826480,
        21474826480,
        25769703776,
        25769703776,
        25769703776,
        30063771072,
        30063771072,
        30063771072,
        34349738368,
        34349738368,
        34349738368,
        34349738368,
        38554705664,
        38554705664,
        38554705664,
        41949672960,
        41949672960,
        41949672960,
        42949672960,
        42949672960,
    ];
    let log2 = 31 - (w | 1).leading_zeros();
    ((w as u64 + T[log2 as usize]) >> 32) as usize
}

/// The eight ASCII digits (zero-padded) of `w < 10^8` as a little-endian `u64`: the
/// first digit in the low byte. No table, no loop: the two halves of four digits side by
/// side in one word, then both split in two by one multiply (`x * 5243 >> 19` is
/// `x / 100` below 43,699), then the four pairs split by another (`x * 103 >> 10` is
/// `x / 10` below 179); no lane's product reaches the next lane.
#[inline(always)]
fn ascii8(w: u32) -> u64 {
    let v = (w / 10_000) as u64 | ((w % 10_000) as u64) << 32;
    let q = ((v * 5243) >> 19) & 0x0000_007f_0000_007f;
    let v = q | (v - q * 100) << 16;
    let q = ((v * 103) >> 10) & 0x000f_000f_000f_000f;
    (q | (v - q * 10) << 8) | 0x3030_3030_3030_3030
}

/// The four ASCII digits (zero-padded) of `w < 10^4` as a little-endian `u32`, as
/// [`ascii8`] does its halves.
#[inline(always)]
fn ascii4(w: u32) -> u32 {
    let q = (w * 5243) >> 19;
    let v = q | (w - q * 100) << 16;
    let q = ((v * 103) >> 10) & 0x000f_000f;
    (q | (v - q * 10) << 8) | 0x3030_3030
}

/// Writes the decimal digits of `v` at `buf[pos..]` (which has room for 20 bytes, and
/// 8 beyond the digits: below 10^8 the digits are one 4- or 8-byte store of the zero-padded
/// digits shifted past their leading zeros) and returns the position after them. Inline
/// for values below 10^8.
#[inline(always)]
fn put_u64(buf: &mut [u8], pos: usize, v: u64) -> usize {
    if v < 10_000 {
        // Lengths and small values: two table loads, one 4-byte store.
        let w = v as u32;
        let n = digit_count(w);
        let d = ascii4(w) >> ((4 - n) * 8);
        buf[pos..pos + 4].copy_from_slice(&d.to_le_bytes());
        return pos + n;
    }
    if v < 100_000_000 {
        let w = v as u32;
        let n = digit_count(w);
        let d = ascii8(w) >> ((8 - n) * 8);
        buf[pos..pos + 8].copy_from_slice(&d.to_le_bytes());
        return pos + n;
    }
    put_u64_long(buf, pos, v)
}

/// [`put_u64`] for values of nine digits or more: the digits above the last eight, then
/// those eight.
#[inline(never)]
fn put_u64_long(buf: &mut [u8], pos: usize, v: u64) -> usize {
    const E8: u64 = 100_000_000;
    let pos = put_u64(buf, pos, v / E8);
    buf[pos..pos + 8].copy_from_slice(&ascii8((v % E8) as u32).to_le_bytes());
    pos + 8
}

/// Two hex digits per byte value (`HEX2[2 * b]`, `HEX2[2 * b + 1]`).
static HEX2: [u8; 512] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 256 {
        t[2 * i] = HEX[i >> 4];
        t[2 * i + 1] = HEX[i & 15];
        i += 1;
    }
    t
};

/// The JSONL trace line of each packet, formatted in place: straight into the trace
/// file's buffer ([`OutFile::record_space`]), sized once per line.
#[derive(Default)]
struct TraceLine {
    /// `redirect` and `events` as serde_json prints them (rare).
    extra: Vec<u8>,
    /// The digits of the last timestamp's seconds (`ts_ns / 10^9`), reused while
    /// consecutive packets fall in the same second: `ts_digits[..ts_len]`; `ts_base` is
    /// that second in nanoseconds.
    ts_base: u64,
    ts_digits: [u8; 16],
    ts_len: usize,
    /// The digits of the index after the last line's (`idx_digits[..idx_len]`), so
    /// consecutive packets only add one to the last digit; `idx_next` is its value (0
    /// with no digits yet: recomputed).
    idx_next: u64,
    idx_digits: [u8; 32],
    idx_len: usize,
}

/// The key written before the packet's index.
const INDEX_KEY: &[u8] = b",\"index\":";

/// Bytes in a [`LINE_HEADS`] entry.
const LINE_HEAD: usize = 48;

/// The start of a trace line for each action in [`ACTIONS`], zero-padded to
/// [`LINE_HEAD`] bytes: `{"action":"<name>"` followed by [`INDEX_KEY`], and the length
/// up to the action's closing quote.
static LINE_HEADS: [([u8; LINE_HEAD], u8); 5] = {
    const fn head(name: &str) -> ([u8; LINE_HEAD], u8) {
        let mut h = [0u8; LINE_HEAD];
        let parts: [&[u8]; 4] = [b"{\"action\":\"", name.as_bytes(), b"\"", INDEX_KEY];
        let mut at = 0;
        let mut end = 0;
        let mut i = 0;
        while i < parts.len() {
            let mut j = 0;
            while j < parts[i].len() {
                h[at] = parts[i][j];
                at += 1;
                j += 1;
            }
            if i == 2 {
                end = at;
            }
            i += 1;
        }
        (h, end as u8)
    }
    [
        head(ACTIONS[0]),
        head(ACTIONS[1]),
        head(ACTIONS[2]),
        head(ACTIONS[3]),
        head(ACTIONS[4]),
    ]
};

/// Copies `s` to `buf[pos..]`.
#[inline(always)]
fn put(buf: &mut [u8], pos: usize, s: &[u8]) -> usize {
    buf[pos..pos + s.len()].copy_from_slice(s);
    pos + s.len()
}

impl TraceLine {
    /// `index` in decimal at `buf[pos..]` (room for 32 bytes).
    #[inline(always)]
    fn put_index(&mut self, buf: &mut [u8], pos: usize, index: u64) -> usize {
        if index != self.idx_next || self.idx_len == 0 {
            self.idx_len = put_u64(&mut self.idx_digits, 0, index);
        }
        buf[pos..pos + 32].copy_from_slice(&self.idx_digits);
        let pos = pos + self.idx_len;
        // The next index's digits: add one to the last digit, or start over when it
        // carries.
        self.idx_next = index.wrapping_add(1);
        let last = &mut self.idx_digits[self.idx_len - 1];
        if *last < b'9' && index != u64::MAX {
            *last += 1;
        } else {
            self.idx_len = 0;
        }
        pos
    }

    /// `ts_ns` in decimal at `buf[pos..]` (room for 20 bytes plus 16 of slack).
    #[inline(always)]
    fn put_ts(&mut self, buf: &mut [u8], pos: usize, ts_ns: u64) -> usize {
        const E9: u64 = 1_000_000_000;
        if ts_ns < E9 {
            return put_u64(buf, pos, ts_ns);
        }
        // Within the last line's second the nanoseconds are a subtraction (no division).
        // (`ts_base` starts at 0: every `ts_ns` here is at least 10^9 past it.)
        let mut off = ts_ns.wrapping_sub(self.ts_base);
        if off >= E9 {
            let secs = ts_ns / E9;
            self.ts_len = put_u64(&mut self.ts_digits, 0, secs);
            self.ts_base = secs * E9;
            off = ts_ns - self.ts_base;
        }
        // A fixed-size copy (two moves), then the position after the digits.
        buf[pos..pos + 16].copy_from_slice(&self.ts_digits);
        let pos = pos + self.ts_len;
        let ns = off as u32;
        buf[pos] = b'0' + (ns / 100_000_000) as u8;
        buf[pos + 1..pos + 9].copy_from_slice(&ascii8(ns % 100_000_000).to_le_bytes());
        pos + 9
    }

    /// Writes the trace line (JSON and a newline) of a packet the program ran on to `t`;
    /// `packet` is the output packet (metadata included), as [`XdpOutput::packet`] holds
    /// it when copied. The same text as serializing the object with serde_json (keys in
    /// sorted order, compact, numbers in decimal), without building a JSON value; only
    /// the rare `redirect` and `events` go through serde_json.
    #[inline]
    fn write(
        &mut self,
        t: &mut OutFile,
        obj: &LinkedObject,
        p: &PacketInfo<'_>,
        packet: &[u8],
        o: &XdpOutput,
    ) -> std::io::Result<()> {
        let (need, redirect_at, data_out) = self.prepare(obj, packet, p, o);
        let buf = t.record_space(need)?;
        let n = self.put_line(buf, redirect_at, data_out, p, packet, o);
        t.advance(n);
        Ok(())
    }

    /// The most bytes the line can take, with `events` and `redirect` formatted into
    /// `extra`; also where `redirect` starts there and whether the packet changed
    /// (`data_out`).
    #[inline(always)]
    fn prepare(
        &mut self,
        obj: &LinkedObject,
        packet: &[u8],
        p: &PacketInfo<'_>,
        o: &XdpOutput,
    ) -> (usize, usize, bool) {
        let data_out = packet != p.data;
        if !o.events.is_empty() || o.redirect.is_some() {
            let (need, at) = self.prepare_extra(obj, packet, data_out, o);
            return (need, at, data_out);
        }
        self.extra.clear();
        (
            320 + if data_out { packet.len() * 2 } else { 0 },
            0,
            data_out,
        )
    }

    #[cold]
    #[inline(never)]
    fn prepare_extra(
        &mut self,
        obj: &LinkedObject,
        packet: &[u8],
        data_out: bool,
        o: &XdpOutput,
    ) -> (usize, usize) {
        self.extra.clear();
        if !o.events.is_empty() {
            self.extra.extend_from_slice(b",\"events\":");
            serde_json::to_writer(&mut self.extra, &events_json(obj, &o.events))
                .expect("JSON values serialize");
        }
        let redirect_at = self.extra.len();
        if let Some(r) = &o.redirect {
            self.extra.extend_from_slice(b",\"redirect\":");
            serde_json::to_writer(&mut self.extra, &redirect_json(obj, r))
                .expect("JSON values serialize");
        }
        (
            320 + self.extra.len() + if data_out { packet.len() * 2 } else { 0 },
            redirect_at,
        )
    }

    /// Formats the line into `buf` (at least [`TraceLine::prepare`]'s bytes, after it)
    /// and returns its length.
    #[inline(always)]
    fn put_line(
        &mut self,
        buf: &mut [u8],
        redirect_at: usize,
        data_out: bool,
        p: &PacketInfo<'_>,
        packet: &[u8],
        o: &XdpOutput,
    ) -> usize {
        // Every fixed part and number fits in 320 bytes (11 keys, 9 numbers of at most
        // 20 digits, an action name, and slack for the 8-byte digit stores and the
        // 16- and 32-byte copies of the timestamp's and the index's digits).
        let a = o.retval as u32;
        let mut at;
        let mut index_done = false;
        match LINE_HEADS.get(a as usize) {
            Some((head, n)) => {
                // One fixed-size copy of the line's start up to the action's closing
                // quote, and `,"index":` after it when nothing comes between.
                buf[..LINE_HEAD].copy_from_slice(head);
                at = *n as usize;
                if !data_out && redirect_at == 0 {
                    index_done = true;
                    at += INDEX_KEY.len();
                }
            }
            None => {
                at = put(buf, 0, b"{\"action\":\"XDP_UNKNOWN_");
                at = put_u64(buf, at, a.into());
                buf[at] = b'"';
                at += 1;
            }
        }
        if data_out {
            at = put(buf, at, b",\"data_out\":\"");
            let hex = &mut buf[at..at + packet.len() * 2];
            for (d, &b) in hex.chunks_exact_mut(2).zip(packet) {
                let i = b as usize * 2;
                d.copy_from_slice(&HEX2[i..i + 2]);
            }
            at += packet.len() * 2;
            buf[at] = b'"';
            at += 1;
        }
        if redirect_at > 0 {
            at = put(buf, at, &self.extra[..redirect_at]);
        }
        if !index_done {
            at = put(buf, at, INDEX_KEY);
        }
        at = self.put_index(buf, at, p.index);
        at = put(buf, at, b",\"len_in\":");
        let len_in = at;
        at = put_u64(buf, at, p.data.len() as u64);
        if data_out {
            at = put(buf, at, b",\"len_out\":");
            at = put_u64(buf, at, packet.len() as u64);
        } else {
            // The same packet: `len_out` is `len_in`, whose digits are just written:
            // copied as one 8-byte load and store when they fit (the bytes past them
            // are overwritten next or lie beyond the line).
            let n = at - len_in;
            at = put(buf, at, b",\"len_out\":");
            if n <= 8 {
                let d: [u8; 8] = buf[len_in..len_in + 8].try_into().expect("8 bytes");
                buf[at..at + 8].copy_from_slice(&d);
            } else {
                buf.copy_within(len_in..len_in + n, at);
            }
            at += n;
        }
        if p.meta_len > 0 {
            at = put(buf, at, b",\"meta_len\":");
            at = put_u64(buf, at, p.meta_len as u64);
        }
        if let Some(q) = p.queue {
            at = put(buf, at, b",\"queue\":");
            at = put_u64(buf, at, q.into());
        }
        if self.extra.len() > redirect_at {
            at = put(buf, at, &self.extra[redirect_at..]);
        }
        if o.retval < 10 {
            // The five actions: the digit between the two keys, one 20-byte store.
            let mut t = *b",\"retval\":0,\"ts_ns\":";
            t[10] = b'0' + o.retval as u8;
            at = put(buf, at, &t);
        } else {
            at = put(buf, at, b",\"retval\":");
            at = put_u64(buf, at, o.retval);
            at = put(buf, at, b",\"ts_ns\":");
        }
        at = self.put_ts(buf, at, p.ts_ns);
        at = put(buf, at, b"}\n");
        at
    }

    /// The line as bytes (tests).
    #[cfg(test)]
    fn build(&mut self, obj: &LinkedObject, p: &PacketInfo<'_>, o: &XdpOutput) -> Vec<u8> {
        let (need, redirect_at, data_out) = self.prepare(obj, &o.packet, p, o);
        let mut buf = vec![0xee; need];
        let n = self.put_line(&mut buf, redirect_at, data_out, p, &o.packet, o);
        buf.truncate(n);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfkit_vm::engine::{Event, Redirect};
    use serde_json::Value;

    /// The line as the JSON value it replaced would print it.
    fn with_serde(obj: &LinkedObject, p: &PacketInfo<'_>, o: &XdpOutput) -> String {
        let mut line = json!({
            "index": p.index,
            "ts_ns": p.ts_ns,
            "action": action_name(o.retval),
            "retval": o.retval,
            "len_in": p.data.len(),
            "len_out": o.packet.len(),
        });
        if let Some(q) = p.queue {
            line["queue"] = json!(q);
        }
        if p.meta_len > 0 {
            line["meta_len"] = json!(p.meta_len);
        }
        if let Some(r) = &o.redirect {
            line["redirect"] = redirect_json(obj, r);
        }
        if o.packet != p.data {
            line["data_out"] = json!(crate::hex::encode(&o.packet));
        }
        if !o.events.is_empty() {
            line["events"] = events_json(obj, &o.events);
        }
        format!("{line}\n")
    }

    #[test]
    fn digit_words_are_every_value_zero_padded() {
        for w in 0..10_000u32 {
            assert_eq!(ascii4(w).to_le_bytes(), *format!("{w:04}").as_bytes());
        }
        for w in (0..100_000_000u32)
            .step_by(997)
            .chain(99_990_000..100_000_000)
        {
            assert_eq!(ascii8(w).to_le_bytes(), *format!("{w:08}").as_bytes());
        }
    }

    #[test]
    fn numbers_are_decimal() {
        for v in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            u32::MAX as u64,
            1_700_000_000_000_000_000,
            9_999_999_999_999_999_999,
            10_000_000_000_000_000_000,
            u64::MAX,
        ]
        .into_iter()
        .chain((0..20).flat_map(|e| {
            let p = 10u64.pow(e);
            [p - 1, p, p + 1, p.wrapping_mul(7) / 3, u64::MAX / p]
        }))
        .chain((0..64).map(|b| 1u64 << b))
        {
            let mut b = b"x".to_vec();
            push_u64(&mut b, v);
            assert_eq!(String::from_utf8(b).unwrap(), format!("x{v}"));
        }
    }

    #[test]
    fn trace_lines_are_what_serde_json_prints() {
        let obj = LinkedObject::default();
        let data = [0x45u8, 0, 0xff, 0x10];
        let mut line = TraceLine::default();
        let outs = [
            XdpOutput {
                retval: 2,
                packet: data.to_vec(),
                ..Default::default()
            },
            XdpOutput {
                retval: 1000,
                packet: vec![0, 1, 0xab, 0xcd, 0xef],
                ..Default::default()
            },
            XdpOutput {
                retval: 0xffff_ffff_0000_0004,
                packet: Vec::new(),
                redirect: Some(Redirect::Ifindex(7)),
                events: vec![
                    Event::Printk("a \"quoted\" \\ line\n".into()),
                    Event::Record {
                        map: 3,
                        data: vec![1, 2],
                    },
                ],
            },
            XdpOutput {
                retval: 4,
                packet: data.to_vec(),
                redirect: Some(Redirect::Map { map: 0, key: 12 }),
                ..Default::default()
            },
        ];
        for o in &outs {
            for (queue, meta_len, index, ts_ns) in [
                (None, 0, 0, 0),
                (Some(3), 8, 123_456, 1_700_000_000_123_456_789),
                // The same second: its digits are reused.
                (None, 0, 123_457, 1_700_000_000_999_999_999),
                (None, 0, 9, 1_000_000_000),
                // Consecutive indexes across a carry: their digits are incremented.
                (None, 0, 10, 5),
                (None, 0, 11, 1_000_000_007),
                (None, 0, 99, 6),
                (None, 0, 100, 7),
                (None, 0, 101, 99_999_999),
                (Some(0), 1, u64::MAX, u64::MAX),
            ] {
                let p = PacketInfo {
                    index,
                    ts_ns,
                    data: &data,
                    orig_len: 60,
                    queue,
                    meta_len,
                };
                let mine = String::from_utf8(line.build(&obj, &p, o).to_vec()).unwrap();
                assert_eq!(mine, with_serde(&obj, &p, o));
                let _: Value = serde_json::from_str(&mine).unwrap();
            }
        }
    }
}
