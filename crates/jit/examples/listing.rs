//! Prints the x86-64 code the JIT generates for one program of an object:
//!
//!     cargo run --release -p bpfkit-jit --example listing -- OBJECT.o PROGRAM [fast|checked]

use bpfkit_jit::{listing::listing, Mode};
use bpfkit_object::{object_name_from_path, Object};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: listing OBJECT.o PROGRAM [fast|checked]");
        std::process::exit(2);
    }
    let path = Path::new(&args[0]);
    let mode = match args.get(2).map(String::as_str) {
        None | Some("fast") => Mode::Fast,
        Some("checked") => Mode::Checked,
        Some(m) => {
            eprintln!("unknown mode {m:?} (fast or checked)");
            std::process::exit(2);
        }
    };
    let result = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            Object::parse_named(&bytes, &object_name_from_path(path))
                .and_then(|o| o.link())
                .map_err(|e| e.to_string())
        })
        .and_then(|obj| listing(&obj, &args[1], mode).map_err(|e| e.to_string()));
    match result {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
