pub mod case;
pub mod kernel;
