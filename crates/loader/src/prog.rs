//! Programs: `BPF_PROG_LOAD`, `BPF_PROG_TEST_RUN`, program info.

use crate::error::{Error, Result};
use crate::sys::{self, BpfProgInfo, InfoAttr, ProgLoadAttr, TestRunAttr, XdpMd};
use bpfkit_isa::RawInsn;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Largest verifier log buffer tried (the kernel's limit is `UINT_MAX >> 2`).
const MAX_LOG: usize = 256 << 20;
const FIRST_LOG: usize = 1 << 20;

/// What `BPF_PROG_LOAD` needs.
#[derive(Debug, Clone)]
pub struct ProgramSpec<'a> {
    pub name: &'a str,
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// `enum bpf_attach_type` (0 when the type needs none).
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    /// Instructions with map references already resolved to fds
    /// (`BPF_PSEUDO_MAP_FD`/`BPF_PSEUDO_MAP_VALUE`).
    pub insns: &'a [RawInsn],
    pub license: &'a str,
    pub kern_version: u32,
    /// 0: load without a log and only ask for one (level 1) if the kernel refuses;
    /// 1 or 2: always log at that level and keep the log in [`Program::log`].
    pub log_level: u32,
}

impl<'a> ProgramSpec<'a> {
    /// A spec with defaults: GPL license, no flags, no log unless rejected.
    pub fn new(name: &'a str, prog_type: u32, insns: &'a [RawInsn]) -> Self {
        ProgramSpec {
            name,
            prog_type,
            expected_attach_type: 0,
            prog_flags: 0,
            insns,
            license: "GPL",
            kern_version: 0,
            log_level: 0,
        }
    }
}

/// A loaded program, closed on drop.
#[derive(Debug)]
pub struct Program {
    fd: OwnedFd,
    name: String,
    prog_type: u32,
    /// Verifier log (only when loaded with `log_level > 0`).
    pub log: String,
}

/// Outcome of one `BPF_PROG_TEST_RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// r0 truncated to 32 bits, as the kernel reports it.
    pub retval: u32,
    pub data_out: Vec<u8>,
    pub ctx_out: Vec<u8>,
    /// Mean run time per repetition in ns, as measured by the kernel.
    pub duration_ns: u32,
}

/// Options of `BPF_PROG_TEST_RUN`.
#[derive(Debug, Clone, Default)]
pub struct TestRunOptions<'a> {
    pub data_in: &'a [u8],
    /// Room for data_out; grown and retried if the kernel says `ENOSPC`.
    pub data_out_size: usize,
    pub ctx_in: Option<&'a [u8]>,
    pub ctx_out_size: usize,
    /// Repetitions (0 and 1 both mean once).
    pub repeat: u32,
    pub flags: u32,
    pub cpu: u32,
}

impl Program {
    /// `BPF_PROG_LOAD`. On rejection the error carries the errno and the verifier log
    /// (the load is retried with a log, growing the buffer on `ENOSPC`).
    pub fn load(spec: &ProgramSpec<'_>) -> Result<Program> {
        let license = std::ffi::CString::new(spec.license).map_err(|_| {
            Error::Invalid(format!("program `{}`: license contains NUL", spec.name))
        })?;
        if spec.insns.is_empty() {
            return Err(Error::Invalid(format!(
                "program `{}` has no instructions",
                spec.name
            )));
        }
        let insns: Vec<u8> = bpfkit_isa::to_bytes(spec.insns);
        let attempt = |log: Option<&mut Vec<u8>>, level: u32| -> (std::io::Result<i64>, u32) {
            let mut attr = ProgLoadAttr {
                prog_type: spec.prog_type,
                insn_cnt: spec.insns.len() as u32,
                insns: insns.as_ptr() as u64,
                license: license.as_ptr() as u64,
                kern_version: spec.kern_version,
                prog_flags: spec.prog_flags,
                prog_name: sys::obj_name(spec.name),
                expected_attach_type: spec.expected_attach_type,
                ..Default::default()
            };
            if let Some(buf) = log {
                attr.log_level = level;
                attr.log_size = buf.len() as u32;
                attr.log_buf = buf.as_mut_ptr() as u64;
            }
            // SAFETY: insns points to insn_cnt * 8 bytes, license to a NUL-terminated
            // string, log_buf (if set) to log_size writable bytes; all outlive the call.
            let r = unsafe { sys::prog_load(&mut attr) };
            (r, attr.log_true_size)
        };

        // Without a requested log, try once without one (fast path); on refusal (or
        // when a log is requested) load with a log, growing it while it did not fit.
        let mut result = if spec.log_level == 0 {
            Some(attempt(None, 0).0)
        } else {
            None
        };
        let mut log = Vec::new();
        if !matches!(result, Some(Ok(_))) {
            let level = spec.log_level.max(1);
            let mut size = FIRST_LOG;
            loop {
                log = vec![0u8; size];
                let (r, true_size) = attempt(Some(&mut log), level);
                match r {
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && size < MAX_LOG => {
                        size = (true_size as usize).max(size * 4).min(MAX_LOG);
                    }
                    r => {
                        result = Some(r);
                        break;
                    }
                }
            }
        }
        let log = text(&log);
        match result.expect("a load attempt was made") {
            Ok(fd) => {
                // SAFETY: the kernel just returned this fd; nobody else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                Ok(Program {
                    fd,
                    name: spec.name.to_string(),
                    prog_type: spec.prog_type,
                    log: if spec.log_level > 0 {
                        log
                    } else {
                        String::new()
                    },
                })
            }
            Err(e) => Err(Error::Rejected {
                prog: spec.name.to_string(),
                source: e,
                log,
            }),
        }
    }

    /// Wraps a program fd obtained elsewhere (e.g. `BPF_PROG_LOAD` with BTF in
    /// [`crate::object_load`], or `BPF_OBJ_GET` of a pin).
    pub fn from_fd(fd: OwnedFd, name: &str, prog_type: u32, log: String) -> Program {
        Program {
            fd,
            name: name.to_string(),
            prog_type,
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn prog_type(&self) -> u32 {
        self.prog_type
    }

    /// `BPF_PROG_TEST_RUN`.
    pub fn test_run(&self, opts: &TestRunOptions<'_>) -> Result<TestRunOutput> {
        let mut out_size = opts.data_out_size;
        let ctx_in = opts.ctx_in.unwrap_or(&[]);
        for _ in 0..4 {
            let mut data_out = vec![0u8; out_size];
            let mut ctx_out = vec![0u8; opts.ctx_out_size];
            let mut attr = TestRunAttr {
                prog_fd: self.fd.as_raw_fd() as u32,
                data_size_in: opts.data_in.len() as u32,
                data_size_out: data_out.len() as u32,
                data_in: opts.data_in.as_ptr() as u64,
                data_out: if data_out.is_empty() {
                    0
                } else {
                    data_out.as_mut_ptr() as u64
                },
                repeat: opts.repeat,
                ctx_size_in: ctx_in.len() as u32,
                ctx_size_out: ctx_out.len() as u32,
                ctx_in: if ctx_in.is_empty() {
                    0
                } else {
                    ctx_in.as_ptr() as u64
                },
                ctx_out: if ctx_out.is_empty() {
                    0
                } else {
                    ctx_out.as_mut_ptr() as u64
                },
                flags: opts.flags,
                cpu: opts.cpu,
                ..Default::default()
            };
            // SAFETY: data_in/ctx_in point to data_size_in/ctx_size_in readable bytes,
            // data_out/ctx_out to data_size_out/ctx_size_out writable bytes (or are null
            // with size 0); all outlive the call.
            match unsafe { sys::sys_bpf(sys::BPF_PROG_TEST_RUN, &mut attr) } {
                Ok(_) => {
                    data_out.truncate(attr.data_size_out as usize);
                    ctx_out.truncate(attr.ctx_size_out as usize);
                    return Ok(TestRunOutput {
                        retval: attr.retval,
                        data_out,
                        ctx_out,
                        duration_ns: attr.duration,
                    });
                }
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOSPC)
                        && attr.data_size_out as usize > out_size =>
                {
                    out_size = attr.data_size_out as usize;
                }
                Err(e) => {
                    return Err(Error::sys(
                        sys::BPF_PROG_TEST_RUN,
                        format!(
                            "program `{}`, {} bytes of data, {} bytes of ctx",
                            self.name,
                            opts.data_in.len(),
                            ctx_in.len()
                        ),
                        e,
                    ))
                }
            }
        }
        Err(Error::Invalid(format!(
            "program `{}`: data_out kept growing",
            self.name
        )))
    }

    /// Runs an XDP program on `packet` with `ctx_in` = `struct xdp_md`.
    ///
    /// The kernel's rules: `ingress_ifindex` must name a device of the current network
    /// namespace whose `rx_queue_index` queue is registered for XDP; 0 (with queue 0)
    /// means the default, the loopback device (so the program reads ifindex 1).
    pub fn test_run_xdp(
        &self,
        packet: &[u8],
        ingress_ifindex: u32,
        rx_queue_index: u32,
        repeat: u32,
    ) -> Result<XdpRun> {
        let md = XdpMd {
            data: 0,
            data_end: packet.len() as u32,
            data_meta: 0,
            ingress_ifindex,
            rx_queue_index,
            egress_ifindex: 0,
        };
        let md_bytes = xdp_md_bytes(&md);
        let out = self.test_run(&TestRunOptions {
            data_in: packet,
            data_out_size: packet.len() + 4096,
            ctx_in: Some(&md_bytes),
            ctx_out_size: md_bytes.len(),
            repeat,
            ..Default::default()
        })?;
        let ctx = xdp_md_from_bytes(&out.ctx_out);
        Ok(XdpRun {
            retval: out.retval,
            packet: out.data_out,
            ctx,
            duration_ns: out.duration_ns,
        })
    }

    fn raw_info(&self, info: &mut BpfProgInfo) -> Result<()> {
        let mut attr = InfoAttr {
            bpf_fd: self.fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<BpfProgInfo>() as u32,
            info: info as *mut BpfProgInfo as u64,
        };
        // SAFETY: info points to a writable BpfProgInfo of info_len bytes; any array
        // pointers set in it by the caller point to buffers of the advertised lengths.
        unsafe { sys::sys_bpf(sys::BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map_err(|e| {
            Error::sys(
                sys::BPF_OBJ_GET_INFO_BY_FD,
                format!("program `{}`", self.name),
                e,
            )
        })?;
        Ok(())
    }

    /// `BPF_OBJ_GET_INFO_BY_FD`.
    pub fn info(&self) -> Result<ProgInfo> {
        let mut info = BpfProgInfo::default();
        self.raw_info(&mut info)?;
        Ok(ProgInfo {
            id: info.id,
            prog_type: info.prog_type,
            name: sys::name_str(&info.name),
            tag: info.tag,
            xlated_prog_len: info.xlated_prog_len,
            jited_prog_len: info.jited_prog_len,
            verified_insns: info.verified_insns,
            nr_map_ids: info.nr_map_ids,
            gpl_compatible: info.gpl_compatible & 1 != 0,
            load_time_ns: info.load_time,
            created_by_uid: info.created_by_uid,
            btf_id: info.btf_id,
        })
    }

    /// The ids of the maps the program uses (`map_ids`, as `bpftool prog show` lists).
    pub fn map_ids(&self) -> Result<Vec<u32>> {
        let n = self.info()?.nr_map_ids as usize;
        let mut ids = vec![0u32; n];
        let mut info = BpfProgInfo {
            nr_map_ids: n as u32,
            map_ids: ids.as_mut_ptr() as u64,
            ..Default::default()
        };
        self.raw_info(&mut info)?;
        ids.truncate((info.nr_map_ids as usize).min(n));
        Ok(ids)
    }

    /// `memlock` of `/proc/self/fdinfo/FD`: the bytes the kernel charges for the program
    /// (bpftool's `bytes_memlock`); `None` when fdinfo cannot be read.
    pub fn bytes_memlock(&self) -> Option<u64> {
        let text =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", self.fd.as_raw_fd())).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("memlock:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The program as the kernel rewrote it (`xlated_prog_insns`). Empty when the
    /// kernel hides it (no CAP_PERFMON / `kernel.kptr_restrict`).
    pub fn xlated_insns(&self) -> Result<Vec<RawInsn>> {
        let len = self.info()?.xlated_prog_len as usize;
        let mut buf = vec![0u8; len];
        let mut info = BpfProgInfo {
            xlated_prog_len: len as u32,
            xlated_prog_insns: buf.as_mut_ptr() as u64,
            ..Default::default()
        };
        self.raw_info(&mut info)?;
        buf.truncate((info.xlated_prog_len as usize).min(len));
        bpfkit_isa::parse_raw(&buf).map_err(|e| Error::Invalid(format!("xlated program: {e}")))
    }
}

impl AsFd for Program {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Result of an XDP test run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpRun {
    pub retval: u32,
    pub packet: Vec<u8>,
    /// `struct xdp_md` as the kernel wrote it back.
    pub ctx: XdpMd,
    pub duration_ns: u32,
}

/// What the kernel reports about a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub prog_type: u32,
    pub name: String,
    pub tag: [u8; 8],
    pub xlated_prog_len: u32,
    pub jited_prog_len: u32,
    pub verified_insns: u32,
    pub nr_map_ids: u32,
    pub gpl_compatible: bool,
    /// When it was loaded, in nanoseconds since boot (`load_time`).
    pub load_time_ns: u64,
    pub created_by_uid: u32,
    /// The program's BTF object id (0: loaded without BTF).
    pub btf_id: u32,
}

fn xdp_md_bytes(md: &XdpMd) -> Vec<u8> {
    [
        md.data,
        md.data_end,
        md.data_meta,
        md.ingress_ifindex,
        md.rx_queue_index,
        md.egress_ifindex,
    ]
    .iter()
    .flat_map(|v| v.to_ne_bytes())
    .collect()
}

fn xdp_md_from_bytes(b: &[u8]) -> XdpMd {
    let f = |i: usize| {
        b.get(i * 4..i * 4 + 4)
            .map_or(0, |s| u32::from_ne_bytes(s.try_into().expect("4 bytes")))
    };
    XdpMd {
        data: f(0),
        data_end: f(1),
        data_meta: f(2),
        ingress_ifindex: f(3),
        rx_queue_index: f(4),
        egress_ifindex: f(5),
    }
}

fn text(log: &[u8]) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    String::from_utf8_lossy(&log[..end]).into_owned()
}
