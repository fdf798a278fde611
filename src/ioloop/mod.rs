//! Placeholder: the IOLoop (being written).
/// Connection id: slab key + generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId { key: u32, gen: u32 }
/// Something registered with the loop.
pub trait Pollable {}
