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
pub mod verify;
