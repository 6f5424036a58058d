//! TCP: sequence numbers ([`seq`]), stream reassembly in offsets ([`assembler`]), and one
//! direction's sequence-number bookkeeping on top of it ([`stream`]).

pub mod assembler;
pub mod seq;
pub mod stream;

pub use assembler::{Assembler, AssemblerStats, CapacityError, Sink};
pub use seq::SeqNum;
pub use stream::HalfStream;
