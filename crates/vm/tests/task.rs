//! The task identity helpers (cgroup id and ancestors, net_cls class id, pid namespace)
//! against the kernel: corpus `xdp_task` runs through `BPF_PROG_TEST_RUN` via bpftool (so
//! the current task is bpftool, a child of this test: same cgroup, same pid namespace), and
//! on the interpreter configured with this process's cgroup (/proc/self/cgroup, inode
//! numbers of the cgroup2 directories), pid namespace (stat of /proc/self/ns/pid) and the
//! pid/tgid the kernel reported for bpftool. The output frames must be equal byte for
//! byte. Needs root and bpftool; prints `SKIPPED: reason` otherwise.

use bpfkit_vm::{Config, Engine, Interpreter, XdpInput};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Mount point of the first mount of filesystem type `fstype` (from /proc/self/mountinfo).
fn mount_of(fstype: &str, opt: Option<&str>) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        if post.next()? != fstype {
            return None;
        }
        let super_opts = post.nth(1).unwrap_or("");
        if let Some(o) = opt {
            if !super_opts.split(',').any(|x| x == o) {
                return None;
            }
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// Cgroup ids from the root down to this process's cgroup in the default hierarchy.
fn cgroup_ids() -> Result<Vec<u64>, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 line in /proc/self/cgroup")?;
    let mut ids = vec![1];
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if comps.is_empty() {
        return Ok(ids);
    }
    let root = mount_of("cgroup2", None).ok_or("cgroup2 is not mounted")?;
    let mut dir = root;
    for c in comps {
        dir.push(c);
        ids.push(
            std::fs::metadata(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .ino(),
        );
    }
    Ok(ids)
}

/// This process's net_cls class id (0 when net_cls is not in use).
fn classid() -> Result<u32, String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let Some(path) = text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
        ctrl.split(',').any(|c| c == "net_cls").then_some(path)
    }) else {
        return Ok(0);
    };
    let mnt = mount_of("cgroup", Some("net_cls")).ok_or("net_cls listed but not mounted")?;
    let f = mnt
        .join(path.trim_start_matches('/'))
        .join("net_cls.classid");
    std::fs::read_to_string(&f)
        .map_err(|e| format!("{}: {e}", f.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", f.display()))
}

#[test]
fn task_helpers_match_the_kernel() {
    if !is_root() {
        println!("SKIPPED: task helper comparison needs root (BPF_PROG_TEST_RUN)");
        return;
    }
    if Command::new("bpftool").arg("version").output().is_err() {
        println!("SKIPPED: task helper comparison needs bpftool");
        return;
    }
    let (cgroup, classid) = match (cgroup_ids(), classid()) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(e), _) | (_, Err(e)) => {
            println!("SKIPPED: cannot describe this process's cgroup: {e}");
            return;
        }
    };
    let ns = std::fs::metadata("/proc/self/ns/pid").expect("pid namespace");
    let pidns = (ns.dev(), ns.ino());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let obj = root.join("corpus/obj/xdp_task.o");
    let pin = format!("/sys/fs/bpf/bpfkit_task_{}", std::process::id());
    let _ = std::fs::remove_file(&pin);
    let load = Command::new("bpftool")
        .args(["prog", "load", &obj.to_string_lossy(), &pin, "type", "xdp"])
        .output()
        .expect("bpftool");
    if !load.status.success() {
        println!(
            "SKIPPED: bpftool prog load failed: {}",
            String::from_utf8_lossy(&load.stderr).trim()
        );
        return;
    }
    let mut frame = vec![0u8; 12];
    frame.extend_from_slice(&[0x88, 0xb7]);
    frame.extend_from_slice(&pidns.0.to_le_bytes());
    frame.extend_from_slice(&pidns.1.to_le_bytes());
    frame.resize(14 + 160, 0);
    let linked = bpfkit_object::Object::parse(&std::fs::read(&obj).expect("object"))
        .expect("parse")
        .link()
        .expect("link");
    // 1. bpftool in this process's cgroup.
    let r1 = compare(&pin, &frame, &linked, cgroup.clone(), classid, pidns, None);
    // 2. bpftool moved into a new cgroup two levels below the cgroup2 root (ancestors).
    let r2 = match mount_of("cgroup2", None) {
        Some(mnt) => {
            let a = mnt.join(format!("bpfkit-task-{}", std::process::id()));
            let b = a.join("sub");
            let r = std::fs::create_dir_all(&b)
                .map_err(|e| e.to_string())
                .map(|()| {
                    let ids = vec![
                        1,
                        std::fs::metadata(&a).unwrap().ino(),
                        std::fs::metadata(&b).unwrap().ino(),
                    ];
                    compare(&pin, &frame, &linked, ids, classid, pidns, Some(&b))
                });
            let _ = std::fs::remove_dir(&b);
            let _ = std::fs::remove_dir(&a);
            r
        }
        None => Err("cgroup2 is not mounted".into()),
    };
    let _ = std::fs::remove_file(&pin);
    r1.expect("in place");
    match r2 {
        Ok(r) => r.expect("nested cgroup"),
        Err(e) => println!("SKIPPED (nested cgroup part): {e}"),
    }
}

/// Runs the frame through bpftool (moved into `cgroup_dir` first when given) and on the
/// interpreter configured with `cgroup`, `classid`, `pidns` and bpftool's pid/tgid.
fn compare(
    pin: &str,
    frame: &[u8],
    linked: &bpfkit_object::model::LinkedObject,
    cgroup: Vec<u64>,
    classid: u32,
    pidns: (u64, u64),
    cgroup_dir: Option<&std::path::Path>,
) -> Result<(), String> {
    let tmp = std::env::temp_dir();
    let (fin, fout) = (
        tmp.join(format!("bpfkit_task_in_{}", std::process::id())),
        tmp.join(format!("bpfkit_task_out_{}", std::process::id())),
    );
    std::fs::write(&fin, frame).expect("write");
    let run = format!(
        "bpftool prog run pinned {pin} data_in {} data_out {}",
        fin.display(),
        fout.display()
    );
    let script = match cgroup_dir {
        Some(d) => format!("echo $$ > {}/cgroup.procs && exec {run}", d.display()),
        None => format!("exec {run}"),
    };
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !stdout.contains("Return value: 3") {
        return Err(format!(
            "bpftool: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let kernel = std::fs::read(&fout).expect("data_out");
    let _ = std::fs::remove_file(&fin);
    let _ = std::fs::remove_file(&fout);
    let word =
        |b: &[u8], i: usize| u64::from_le_bytes(b[14 + i * 8..22 + i * 8].try_into().unwrap());
    let pid_tgid = word(&kernel, 10);
    assert_eq!(
        word(&kernel, 12),
        (pid_tgid as u32 as u64) | ((pid_tgid >> 32) << 32),
        "the kernel's namespace pid/tgid are bpftool's (same pid namespace)"
    );
    let config = Config {
        current_pid_tgid: pid_tgid,
        current_cgroup: cgroup.clone(),
        current_classid: classid,
        current_pidns: pidns,
        ..Config::default()
    };
    let mut vm = Interpreter::new(linked, config).expect("interpreter");
    let o = vm
        .run_xdp(
            0,
            &XdpInput {
                packet: frame,
                ..Default::default()
            },
        )
        .expect("run");
    assert_eq!(o.retval, 3);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(&o.packet),
        hex(&kernel),
        "cgroup {cgroup:?}, classid {classid}, pidns {pidns:?}"
    );
    println!(
        "task helpers equal to the kernel: cgroup {cgroup:?}, classid {classid}, pid namespace {pidns:?}"
    );
    Ok(())
}
