//! TCP: stream reassembly in offsets ([`assembler`]), and one direction's sequence-number
//! bookkeeping on top of it ([`stream`]). Sequence numbers themselves are on the ground
//! floor ([`crate::wire::SeqNum`]), since decoding reads them too.

pub mod assembler;
pub mod stream;

pub use assembler::{Assembler, AssemblerStats, CapacityError, Sink};
pub use stream::HalfStream;

pub use crate::wire::SeqNum;
