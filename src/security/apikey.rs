//! API keys (security.md §1.4): the format rule, the key id `ak_<16 hex>`, and
//! a lookup table that stores only keyed hashes. At build time a random
//! HMAC-SHA256 key is drawn; each configured key becomes `tag = HMAC(k, key)`.
//! A lookup computes the tag of the presented value and compares it with every
//! stored tag, branch-free and without early exit, selecting the owner only
//! after the loop: time depends on the number of entries, not on their content.
//!
//! Owns: format, hashing, constant-time selection. Must not: keep a presented or
//! configured key after hashing it, hash a value longer than 256 bytes, use
//! `ring::constant_time::verify_slices_are_equal` (deprecated), or log.

use std::fmt;
use std::sync::Arc;

use ring::hmac;
use ring::rand::SystemRandom;

use super::reason::Reason;
use crate::config::Secret;

pub const MIN_KEY_BYTES: usize = 32;
pub const MAX_KEY_BYTES: usize = 256;
/// Most configured keys.
pub const MAX_KEYS: usize = 1024;

/// `[A-Za-z0-9_-]{32,256}` (S4).
pub fn valid_key_format(key: &str) -> bool {
    (MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `ak_` + the first 16 hex digits of SHA-256(key): names a key in logs, audit and revocations.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn of(key: &str) -> KeyId {
        let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        KeyId(format!("ak_{hex}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A matched key: its owner and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyMatch {
    pub owner: Arc<str>,
    pub id: KeyId,
}

struct Entry {
    tag: [u8; 32],
    owner: Arc<str>,
    id: KeyId,
}

/// The configured keys as keyed hashes. `Debug` shows owners and ids only.
pub struct ApiKeys {
    hmac: hmac::Key,
    entries: Vec<Entry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<(&str, &str)> = self.entries.iter().map(|e| (&*e.owner, e.id.as_str())).collect();
        f.debug_struct("ApiKeys").field("entries", &ids).finish()
    }
}

/// Building the table failed: the system random generator is unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomUnavailable;

fn tag(key: &hmac::Key, value: &[u8]) -> [u8; 32] {
    let t = hmac::sign(key, value);
    let mut out = [0u8; 32];
    out.copy_from_slice(t.as_ref());
    out
}

/// 1 if `a == b`, else 0, without data-dependent branches.
#[inline(never)]
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> usize {
    let mut diff = 0u8;
    for i in 0..32 {
        diff |= a[i] ^ b[i];
    }
    let diff = std::hint::black_box(diff);
    // diff == 0 → (0 - 1) >> 8 has bit 0 set; diff in 1..=255 → bit 0 clear
    ((u16::from(diff).wrapping_sub(1) >> 8) & 1) as usize
}

impl ApiKeys {
    /// Hash `(owner, key)` pairs under a fresh random HMAC key. Format and uniqueness are the
    /// config layer's job (S4); entries beyond [`MAX_KEYS`] are ignored.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, &'a Secret)>) -> Result<ApiKeys, RandomUnavailable> {
        let hmac = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new()).map_err(|_| RandomUnavailable)?;
        let entries = keys
            .into_iter()
            .take(MAX_KEYS)
            .map(|(owner, key)| Entry {
                tag: tag(&hmac, key.expose().as_bytes()),
                owner: Arc::from(owner),
                id: KeyId::of(key.expose()),
            })
            .collect();
        Ok(ApiKeys { hmac, entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Find the owner of a presented key. Too long → `KeyMalformed` without hashing; wrong
    /// characters → `KeyMalformed`; no entry → `UnknownKey`. Revocation is the caller's check.
    pub fn lookup(&self, presented: &str) -> Result<KeyMatch, Reason> {
        if presented.len() > MAX_KEY_BYTES || !valid_key_format(presented) {
            return Err(Reason::KeyMalformed);
        }
        let t = tag(&self.hmac, presented.as_bytes());
        let mut found = 0usize;
        let mut selected = 0usize;
        for (i, e) in self.entries.iter().enumerate() {
            let eq = ct_eq(&t, &e.tag);
            let mask = eq.wrapping_neg(); // all ones when equal
            selected = (selected & !mask) | (i & mask);
            found |= eq;
        }
        let (found, selected) = std::hint::black_box((found, selected));
        if found == 1 {
            if let Some(e) = self.entries.get(selected) {
                return Ok(KeyMatch { owner: e.owner.clone(), id: e.id.clone() });
            }
        }
        Err(Reason::UnknownKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Secret {
        Secret::new(v.to_string())
    }

    #[test]
    fn format_rule() {
        assert!(valid_key_format(&"a".repeat(32)));
        assert!(valid_key_format(&"Z9_-".repeat(64)));
        assert!(!valid_key_format(&"a".repeat(31)), "31 chars");
        assert!(!valid_key_format(&"a".repeat(257)));
        assert!(!valid_key_format(&format!("{}.", "a".repeat(32))), "dot");
        assert!(!valid_key_format(&format!("{}+", "a".repeat(32))), "plus");
        assert!(!valid_key_format(&format!("{} ", "a".repeat(32))), "space");
    }

    #[test]
    fn lookup_selects_the_right_owner() {
        let (alice, alice2, bot) = (s(&"a".repeat(40)), s(&"b".repeat(40)), s(&"c".repeat(40)));
        let keys = ApiKeys::new([("alice", &alice), ("ci-bot", &bot), ("alice", &alice2)]).unwrap();
        assert_eq!(keys.len(), 3);
        let m = keys.lookup(&"c".repeat(40)).unwrap();
        assert_eq!(&*m.owner, "ci-bot");
        assert_eq!(m.id, KeyId::of(&"c".repeat(40)));
        assert_eq!(&*keys.lookup(&"b".repeat(40)).unwrap().owner, "alice");
        assert_eq!(&*keys.lookup(&"a".repeat(40)).unwrap().owner, "alice");
        // §1.8: wrong but well-formed, 300 bytes, wrong charset
        assert_eq!(keys.lookup("wrong-but-well-formed-key-000000000000000"), Err(Reason::UnknownKey));
        assert_eq!(keys.lookup(&"a".repeat(300)), Err(Reason::KeyMalformed));
        assert_eq!(keys.lookup(&format!("{}.x", "a".repeat(40))), Err(Reason::KeyMalformed));
        assert_eq!(keys.lookup(&"a".repeat(39)), Err(Reason::UnknownKey), "a prefix is not the key");
        let empty = ApiKeys::new(std::iter::empty()).unwrap();
        assert_eq!(empty.lookup(&"a".repeat(40)), Err(Reason::UnknownKey));
    }

    #[test]
    fn key_id_and_redaction() {
        let id = KeyId::of("hpk_example_key_0123456789abcdefghijklmnop");
        assert!(id.as_str().starts_with("ak_"));
        assert_eq!(id.as_str().len(), 19);
        let secret = s(&"q".repeat(40));
        let keys = ApiKeys::new([("alice", &secret)]).unwrap();
        let dbg = format!("{keys:?}");
        assert!(!dbg.contains(&"q".repeat(40)) && dbg.contains("alice") && dbg.contains("ak_"));
        // two tables hash the same key differently (per-process random HMAC key)
        let other = ApiKeys::new([("alice", &secret)]).unwrap();
        assert_ne!(keys.entries[0].tag, other.entries[0].tag);
    }

    #[test]
    fn ct_eq_matches_equality() {
        let a = [7u8; 32];
        let mut b = a;
        assert_eq!(ct_eq(&a, &b), 1);
        for i in 0..32 {
            for bit in 0..8 {
                b = a;
                b[i] ^= 1 << bit;
                assert_eq!(ct_eq(&a, &b), 0);
            }
        }
    }
}
