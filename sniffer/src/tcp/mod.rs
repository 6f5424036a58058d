//! TCP: sequence numbers ([`seq`]) and stream reassembly ([`assembler`]).

pub mod assembler;
pub mod seq;

pub use seq::SeqNum;
