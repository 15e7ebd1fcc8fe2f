//! Fuzzes the capture reader (pcap and pcapng): any byte string, read both ways bpfkit
//! reads captures — memory-mapped from a regular file and streamed as from a pipe — must
//! give records or a `CaptureError`, never a panic, a hang or unbounded memory. Both ways
//! must agree on how many records the input holds.
#![no_main]

use bpfkit_replay::capture::Capture;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fn drain(mut c: Capture) -> (u64, u64) {
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(r) = c.next_record() {
        n += 1;
        bytes += r.data.len() as u64 + r.ts_ns % 7 + r.orig_len as u64 % 3;
        let _ = format!("{:?}", r.note);
    }
    let _ = c.end();
    (n, bytes)
}

fuzz_target!(|data: &[u8]| {
    let streamed = Capture::from_reader("fuzz", Box::new(std::io::Cursor::new(data.to_vec())))
        .map(drain)
        .map_err(|e| e.to_string());
    // The mapped path needs a regular file (tmpfs when there is one).
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("bpfkit-fuzz-capture-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("temporary file");
    f.write_all(data).expect("temporary file");
    drop(f);
    let mapped = Capture::open(&path).map(drain).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&path);
    if let (Ok((a, _)), Ok((b, _))) = (&streamed, &mapped) {
        assert_eq!(
            a, b,
            "streamed and mapped readers disagree on the record count"
        );
    }
});
