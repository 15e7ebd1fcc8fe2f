//! One module per subcommand.

pub mod asm;
pub mod attach;
pub mod detach;
pub mod disasm;
pub mod inspect;
pub mod load;
pub mod map;
pub mod probe;
pub mod prog;
pub mod replay;
pub mod run;
pub mod status;
pub mod unload;
pub mod verify;

/// Hex bytes of an option (whitespace and `0x` prefixes ignored, as
/// `bpfkit_replay::hex::decode_arg`); a syntax error is a usage error (2) that starts
/// with `what` and names the first character that is not a hex digit.
pub fn parse_hex_arg(what: &str, s: &str) -> Result<Vec<u8>, crate::CliError> {
    bpfkit_replay::hex::decode_arg(s).map_err(|e| crate::CliError::usage(format!("{what}: {e}")))
}

/// Options that change an object before it is linked, as a loader would: program type
/// for unknown sections and map sizes set at load time. Shared by verify, replay, run and
/// load.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ObjectArgs {
    /// Treat programs in sections libbpf does not recognise (e.g. `SEC("xdp_foo")`) as
    /// this type, as libxdp-based loaders and `bpftool prog load ... type xdp` do.
    #[arg(long, value_name = "TYPE", value_parser = ["xdp"])]
    pub prog_type: Option<String>,
    /// Set a map's max_entries before load, as libbpf's bpf_map__set_max_entries
    /// (maps declared with max_entries = 0); repeatable: `--map-max-entries rxq=64`.
    #[arg(long = "map-max-entries", value_name = "NAME=N")]
    pub map_max_entries: Vec<String>,
}

impl ObjectArgs {
    /// Applies the options to `obj`, printing a warning per program whose type was set.
    pub fn apply(
        &self,
        obj: &mut bpfkit_object::Object,
        shown: &str,
    ) -> Result<(), crate::CliError> {
        if self.prog_type.is_some() {
            for w in obj.set_unknown_prog_type(bpfkit_object::model::prog_type::XDP) {
                eprintln!("warning: {shown}: {w}");
            }
        }
        for spec in &self.map_max_entries {
            let (name, n) = spec.split_once('=').ok_or_else(|| {
                crate::CliError::usage(format!("--map-max-entries `{spec}`: expected NAME=N"))
            })?;
            let n: u32 = n.trim().parse().map_err(|_| {
                crate::CliError::usage(format!(
                    "--map-max-entries `{spec}`: `{n}` is not a number from 1 to 4294967295"
                ))
            })?;
            obj.set_max_entries(name.trim(), n)
                .map_err(|e| crate::CliError::usage(format!("--map-max-entries: {shown}: {e}")))?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.prog_type.is_none() && self.map_max_entries.is_empty()
    }
}
