//! The reader's error type: every variant names where in the file the problem is.

/// An error reading or linking an eBPF object. Every variant names the section (or ELF
/// structure), the offset and the field involved, so that a user can find the bad bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A problem in the ELF file header or section header table.
    #[error("ELF header: {field} at file offset {offset:#x}: {reason}")]
    Header {
        offset: u64,
        field: &'static str,
        reason: String,
    },

    /// A problem inside one section (its header, its data, or a record in it).
    /// `offset` is relative to the start of the section's data.
    #[error("section `{section}` (index {index}), offset {offset:#x}, {field}: {reason}")]
    Section {
        section: String,
        index: usize,
        offset: u64,
        field: String,
        reason: String,
    },

    /// A relocation that cannot be applied. `section` is the section being relocated,
    /// `offset` the relocation's `r_offset` in it.
    #[error(
        "relocation in `{rel_section}` for section `{section}`, offset {offset:#x} (insn {insn_index}), symbol `{symbol}`: {reason}"
    )]
    Reloc {
        rel_section: String,
        section: String,
        offset: u64,
        insn_index: u64,
        symbol: String,
        reason: String,
    },

    /// A map definition that cannot be understood.
    #[error("map `{map}` in section `{section}`, field `{field}`: {reason}")]
    Map {
        section: String,
        map: String,
        field: String,
        reason: String,
    },

    /// A problem met while linking a program (e.g. a call to nowhere).
    #[error("program `{program}` (section `{section}`), insn {insn_index}: {reason}")]
    Link {
        program: String,
        section: String,
        insn_index: usize,
        reason: String,
    },
}

impl ObjectError {
    pub(crate) fn section(
        section: &str,
        index: usize,
        offset: u64,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ObjectError::Section {
            section: section.to_string(),
            index,
            offset,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ObjectError>;
