//! One module per subcommand.

pub mod asm;
pub mod attach;
pub mod detach;
pub mod disasm;
pub mod inspect;
pub mod load;
pub mod map;
pub mod prog;
pub mod replay;
pub mod run;
pub mod status;
pub mod unload;
pub mod verify;
