pub mod btf;
pub mod case;
pub mod kernel;
