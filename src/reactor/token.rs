//! Typed mio tokens: `kind | generation | slab index` packed in a usize, so a
//! readiness event for a slot that was freed and reused in the same poll
//! batch is recognised as stale.

use mio::Token;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Waker,
    Conn,
    Stdout,
    Stderr,
    Stdin,
    /// An outbound HTTP connection to a managed endpoint (`http_client`).
    Http,
}

impl Kind {
    fn bits(self) -> usize {
        match self {
            Kind::Waker => 0,
            Kind::Conn => 1,
            Kind::Stdout => 2,
            Kind::Stderr => 3,
            Kind::Stdin => 4,
            Kind::Http => 5,
        }
    }

    fn from_bits(b: usize) -> Option<Kind> {
        Some(match b {
            0 => Kind::Waker,
            1 => Kind::Conn,
            2 => Kind::Stdout,
            3 => Kind::Stderr,
            4 => Kind::Stdin,
            5 => Kind::Http,
            _ => return None,
        })
    }
}

const INDEX_BITS: u32 = 32;
const GEN_BITS: u32 = 28;
const GEN_MASK: usize = (1 << GEN_BITS) - 1;

pub const WAKER: Token = Token(0);

/// A slab slot plus the generation it had when the token was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub idx: usize,
    pub generation: u32,
}

pub fn make(kind: Kind, key: Key) -> Token {
    Token((kind.bits() << (INDEX_BITS + GEN_BITS)) | ((key.generation as usize & GEN_MASK) << INDEX_BITS) | key.idx)
}

pub fn split(t: Token) -> Option<(Kind, Key)> {
    let kind = Kind::from_bits(t.0 >> (INDEX_BITS + GEN_BITS))?;
    let generation = ((t.0 >> INDEX_BITS) & GEN_MASK) as u32;
    let idx = t.0 & ((1 << INDEX_BITS) - 1);
    Some((kind, Key { idx, generation }))
}

/// Generation numbers fitting the token's field.
pub fn next_gen(counter: &mut u32) -> u32 {
    *counter = (*counter + 1) & GEN_MASK as u32;
    if *counter == 0 {
        *counter = 1;
    }
    *counter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for kind in [Kind::Conn, Kind::Stdout, Kind::Stderr, Kind::Stdin, Kind::Http] {
            let key = Key { idx: 123_456, generation: (1 << 28) - 1 };
            assert_eq!(split(make(kind, key)), Some((kind, key)));
        }
        assert_eq!(split(WAKER), Some((Kind::Waker, Key { idx: 0, generation: 0 })));
    }
}
