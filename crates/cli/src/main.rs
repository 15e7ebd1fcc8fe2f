//! The `bpfkit` command line. One file per subcommand under `commands/`.
//!
//! Exit status, for every subcommand (see [`EXIT_STATUS`]): 0 success, 1 the input was
//! judged bad (rejected program, malformed file, runtime fault), 2 usage or I/O error;
//! 141 when standard output's reader went away (a broken pipe ends quietly, as a writer
//! killed by SIGPIPE shows in the shell), 130/143 after SIGINT/SIGTERM.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

mod commands;

/// The exit-status contract, shown by `bpfkit --help` and in the README.
pub const EXIT_STATUS: &str = "\
Exit status (every subcommand):
  0    success
  1    the input was judged bad: rejected or malformed program/object/capture/maps file,
       a run-time fault, a difference found by --compare
  2    usage error (bad option or value) or I/O error (missing file, unwritable output,
       the kernel refusing a request for lack of privilege)
  141  standard output was closed by its reader (e.g. `| head`): bpfkit stops quietly
  130  interrupted by SIGINT, 143 by SIGTERM: `replay` completes its outputs up to the
       last whole packet and says so in its summary; other subcommands stop at once
A panic or a death by signal is always a bug.";

/// Writes formatted text to standard output; see [`stdout_failed`] for errors.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::out_write(format_args!($($t)*)) };
}

/// [`out!`] with a newline.
#[macro_export]
macro_rules! outln {
    () => { $crate::out_write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::out_write(format_args!("{}\n", format_args!($($t)*))) };
}

/// Writes a line to standard error; a closed or broken stderr is ignored (never a panic).
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Writes to standard output (locked, through Rust's line buffer).
pub fn out_write(args: std::fmt::Arguments<'_>) {
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        stdout_failed(e)
    }
}

/// Writes bytes to standard output.
pub fn out_bytes(b: &[u8]) {
    if let Err(e) = std::io::stdout().lock().write_all(b) {
        stdout_failed(e)
    }
}

/// Standard output failed: a reader that went away (`EPIPE`) ends bpfkit quietly with
/// status 141; any other error is an I/O error (status 2).
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    let _ = writeln!(std::io::stderr(), "error: writing standard output: {e}");
    std::process::exit(2);
}

/// The signal (SIGINT, SIGTERM, SIGHUP) that asked bpfkit to stop, 0 while none has.
pub static STOP: AtomicI32 = AtomicI32::new(0);
/// Set while a subcommand polls [`STOP`] and completes its outputs before it ends; when
/// it is not set, a signal ends bpfkit at once with status 128 + signal.
pub static POLLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP.store(sig, Ordering::SeqCst);
    if !POLLED.load(Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe; nothing of bpfkit's state is needed after it
        // (outputs are written under temporary names, so none is left half-written).
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs [`on_signal`] for SIGINT, SIGTERM and SIGHUP, once per signal
/// (`SA_RESETHAND`: a second signal ends the process the default way).
fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler
        // only does async-signal-safe things (atomic loads/stores, _exit); sigaction with
        // a valid signal number and pointers to live values has no other precondition.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[derive(Parser)]
#[command(
    name = "bpfkit",
    version,
    about = "A pure-Rust eBPF toolchain for XDP programs",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Disassemble eBPF instructions (raw .bin or ELF .o).
    Disasm(commands::disasm::Args),
    /// Assemble eBPF assembler text into raw instruction bytes.
    Asm(commands::asm::Args),
    /// Show the programs, maps, relocations and BTF of an ELF object.
    Inspect(commands::inspect::Args),
    /// Run a program on given memory or a packet.
    Run(commands::run::Args),
    /// Statically verify programs as the Linux verifier would.
    Verify(commands::verify::Args),
    /// Replay a pcap/pcapng capture through an XDP program (interp, jit or kernel).
    Replay(commands::replay::Args),
    /// Load an object's maps and programs into the running kernel.
    Load(commands::load::Args),
    /// Load an object and attach an XDP program to a network interface.
    Attach(commands::attach::Args),
    /// Detach XDP programs from a network interface.
    Detach(commands::detach::Args),
    /// Show the XDP programs attached to network interfaces (like xdp-loader status).
    Status(commands::status::Args),
    /// Remove the XDP programs of an interface (like xdp-loader unload).
    Unload(commands::unload::Args),
    /// List the programs loaded in the kernel.
    Prog(commands::prog::Args),
    /// Dump, look up, update or delete entries of a kernel map.
    Map(commands::map::Args),
    /// Probe what the running kernel offers XDP programs (a probe file for --kernel).
    Probe(commands::probe::Args),
}

/// Exit status of a subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: success.
    Ok,
    /// 1: the input was judged bad.
    Bad,
    /// 2: usage or I/O error.
    Usage,
    /// 128 + signal: stopped by SIGINT/SIGTERM/SIGHUP (outputs completed).
    Interrupted(i32),
}

/// An error a subcommand reports: the message and the exit status it maps to.
#[derive(Debug)]
pub struct CliError {
    pub status: Status,
    pub message: String,
}

impl CliError {
    pub fn bad(message: impl Into<String>) -> Self {
        CliError {
            status: Status::Bad,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            status: Status::Usage,
            message: message.into(),
        }
    }
}

pub type CliResult = Result<Status, CliError>;

fn main() -> ExitCode {
    install_signal_handlers();
    let cli = Cli::parse();
    let result: CliResult = match cli.command {
        Command::Disasm(a) => commands::disasm::run(a),
        Command::Asm(a) => commands::asm::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Load(a) => commands::load::run(a),
        Command::Attach(a) => commands::attach::run(a),
        Command::Detach(a) => commands::detach::run(a),
        Command::Status(a) => commands::status::run(a),
        Command::Unload(a) => commands::unload::run(a),
        Command::Prog(a) => commands::prog::run(a),
        Command::Map(a) => commands::map::run(a),
        Command::Probe(a) => commands::probe::run(a),
    };
    // What is still in stdout's line buffer (text without a final newline).
    if let Err(e) = std::io::stdout().flush() {
        stdout_failed(e);
    }
    match result {
        Ok(s) => code(s),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", e.message);
            code(e.status)
        }
    }
}

fn code(s: Status) -> ExitCode {
    match s {
        Status::Ok => ExitCode::SUCCESS,
        Status::Bad => ExitCode::from(1),
        Status::Usage => ExitCode::from(2),
        Status::Interrupted(sig) => ExitCode::from((128 + sig.clamp(1, 127)) as u8),
    }
}
