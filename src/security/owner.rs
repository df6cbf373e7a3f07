//! Owner ids (security.md §2.1): the rule every API-key owner and JWT `sub`
//! must satisfy, and the reserved `anonymous` id of auth mode `none`.
//!
//! Owns: that rule. Must not: normalise or rewrite an id (ids are compared byte-exact).

pub use crate::session::identity::ANONYMOUS;

/// Largest owner id in bytes.
pub const MAX_OWNER_BYTES: usize = 256;

/// UTF-8, 1–256 bytes, no leading/trailing whitespace, no control characters
/// (U+0000–U+001F, U+007F–U+009F). `|` is allowed. Says nothing about `anonymous`.
pub fn valid_owner_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_OWNER_BYTES
        && !id.starts_with(char::is_whitespace)
        && !id.ends_with(char::is_whitespace)
        && !id.chars().any(|c| matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'))
}

/// An id a credential may resolve to: [`valid_owner_id`] and not [`ANONYMOUS`].
pub fn valid_credential_owner(id: &str) -> bool {
    valid_owner_id(id) && id != ANONYMOUS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in ["alice", "auth0|5f7c8ec7c33c6c004bbafe82", "ci-bot", "Ünïcødé", &"a".repeat(256)] {
            assert!(valid_credential_owner(ok), "{ok}");
        }
        for bad in ["", " alice", "alice ", "alice\n", "a\u{0}", "a\u{7f}b", "a\u{85}b", "\u{a0}x", &"a".repeat(257)] {
            assert!(!valid_owner_id(bad), "{bad:?}");
        }
        assert!(valid_owner_id("anonymous"));
        assert!(!valid_credential_owner("anonymous"));
    }
}
