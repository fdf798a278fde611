//! `ConnId`: a slab key plus a generation, so that a stale id (an event,
//! a timer or a handler holding the id of a closed connection) never
//! reaches a newer connection that reuses the slot (calloop's
//! `same_source_as` idea).

use std::fmt;

use mio::Token;

// A token carries the slab key and the slot's generation, 32 bits each, so
// that an event for a closed connection never reaches the one reusing its
// slot: a `usize` of 64 bits is needed.
#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "cyclone needs a 64-bit target: a mio token holds a 32-bit key and a 32-bit generation"
);

/// Identifies one registration in an [`IOLoop`](super::IOLoop): a
/// connection, a listener or a handler added with `add_handler`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) gen: u32,
}

impl ConnId {
    pub(crate) fn new(key: usize, gen: u32) -> ConnId {
        ConnId {
            key: key as u32,
            gen,
        }
    }

    /// The mio token: key in the low 32 bits, generation in the high ones.
    pub(crate) fn token(self) -> Token {
        Token(((self.gen as usize) << 32) | self.key as usize)
    }

    pub(crate) fn from_token(t: Token) -> ConnId {
        ConnId {
            key: (t.0 & 0xffff_ffff) as u32,
            gen: (t.0 >> 32) as u32,
        }
    }

    /// The slab key (reused after the connection closes).
    pub fn key(self) -> usize {
        self.key as usize
    }

    /// The generation of the slot when this id was handed out.
    pub fn generation(self) -> u32 {
        self.gen
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key, self.gen)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let id = ConnId::new(12345, 0xdead_beef);
        assert_eq!(ConnId::from_token(id.token()), id);
        assert_ne!(ConnId::new(1, 1).token(), ConnId::new(1, 2).token());
    }
}
