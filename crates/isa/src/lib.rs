//! The eBPF instruction set: raw 8-byte instruction slots, opcode constants, and (in
//! [`insn`]) a typed decoded form with encoding back to raw slots.
//!
//! Every other bpfkit crate builds on [`RawInsn`]: the object reader produces them, the
//! VM and JIT execute them, the assembler emits them.

pub mod helper;
pub mod insn;
pub mod kfunc;
pub mod opcode;

pub use insn::{
    decode, decode_all, decode_one, encode_all, AluOp, AtomicOp, DecodeError, DecodeReason, Endian,
    Field, Insn, JmpCond, LdImmKind, Operand, Size,
};

/// One 8-byte instruction slot, exactly as stored in an object file (little-endian).
///
/// `lddw` occupies two slots; the second has `code == 0` and carries the upper 32 bits
/// of the immediate in `imm`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RawInsn {
    pub code: u8,
    /// Destination register (low nibble of byte 1).
    pub dst: u8,
    /// Source register (high nibble of byte 1).
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub const SIZE: usize = 8;

    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    pub fn from_bytes(b: [u8; 8]) -> Self {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn to_bytes(&self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    #[inline]
    pub const fn class(&self) -> u8 {
        opcode::class(self.code)
    }

    /// True for the first slot of a 64-bit immediate load.
    #[inline]
    pub const fn is_lddw(&self) -> bool {
        self.code == opcode::LDDW
    }
}

impl std::fmt::Debug for RawInsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RawInsn {{ code: {:#04x}, dst: {}, src: {}, off: {}, imm: {} }}",
            self.code, self.dst, self.src, self.off, self.imm
        )
    }
}

/// Error for a byte buffer that is not a whole number of instruction slots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instruction bytes: length {len} is not a multiple of 8 ({rem} trailing bytes at offset {offset:#x})")]
pub struct RawLengthError {
    pub len: usize,
    pub rem: usize,
    pub offset: usize,
}

/// Splits a little-endian byte buffer into instruction slots.
pub fn parse_raw(bytes: &[u8]) -> Result<Vec<RawInsn>, RawLengthError> {
    let rem = bytes.len() % RawInsn::SIZE;
    if rem != 0 {
        return Err(RawLengthError {
            len: bytes.len(),
            rem,
            offset: bytes.len() - rem,
        });
    }
    Ok(bytes
        .chunks_exact(RawInsn::SIZE)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

/// Serialises instruction slots to little-endian bytes.
pub fn to_bytes(insns: &[RawInsn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip() {
        let b = [0x61, 0x12, 0x04, 0x00, 0xff, 0xff, 0xff, 0x7f];
        let i = RawInsn::from_bytes(b);
        assert_eq!(
            (i.code, i.dst, i.src, i.off, i.imm),
            (0x61, 2, 1, 4, 0x7fff_ffff)
        );
        assert_eq!(i.to_bytes(), b);
    }

    #[test]
    fn odd_length_is_an_error() {
        let e = parse_raw(&[0u8; 12]).unwrap_err();
        assert_eq!((e.len, e.rem, e.offset), (12, 4, 8));
    }
}
