//! One module per subcommand.

pub mod asm;
pub mod disasm;
pub mod inspect;
pub mod replay;
pub mod run;
pub mod verify;
