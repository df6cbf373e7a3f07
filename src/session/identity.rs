//! Session identity (aep-v1.md §4.1, security.md §2.2): server ids are
//! UUIDv5 of `owner|worker_type|client_key`; a session is homed on reactor
//! `hash(id) mod N`; `owner_hash` names an owner in paths and logs.

use uuid::Uuid;

/// The UUIDv5 namespace fixed by aep-v1.md §4.1 (the RFC 4122 DNS namespace).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6ba7b810_9dad_11d1_80b4_00c04fd430c8);

/// Owner of every connection in auth mode `none`.
pub const ANONYMOUS: &str = "anonymous";

/// `UUIDv5(ns, owner|worker_type|client_key)`.
pub fn derive(owner: &str, worker_type: &str, client_key: &str) -> Uuid {
    let name = format!("{owner}|{worker_type}|{client_key}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// A fresh id for a session created without `init.session_id`: the client
/// key is `r` + 32 random hex chars, never stored or sent.
pub fn random(owner: &str, worker_type: &str) -> Uuid {
    let key = format!("r{}", uuid::Uuid::new_v4().simple());
    derive(owner, worker_type, &key)
}

/// A client-chosen key: printable ASCII 0x21–0x7E except `|`, 1–`max` bytes.
pub fn valid_client_key(key: &str, max: usize) -> bool {
    !key.is_empty() && key.len() <= max && key.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'|')
}

/// Parse a server session id: a lowercase hyphenated UUID and nothing else.
pub fn parse_server_id(s: &str) -> Option<Uuid> {
    if s.len() != 36 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Uuid::parse_str(s).ok()
}

/// The reactor a session lives on.
pub fn home(id: &Uuid, reactors: usize) -> usize {
    let b = id.as_bytes();
    let h = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
        ^ u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    (h % reactors.max(1) as u64) as usize
}

/// First 16 hex chars of SHA-256("hotplex-owner\0" ‖ owner).
pub fn owner_hash(owner: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"hotplex-owner\0");
    ctx.update(owner.as_bytes());
    let d = ctx.finish();
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        assert_eq!(derive("anonymous", "claude_code", "sess_test").to_string(), "db8d034f-02b6-56e0-8a6a-bcadc4b6ec00");
        assert_eq!(derive("alice", "claude_code", "my-chat-001").to_string(), "bbd854a2-0a27-5677-893e-276fa6b73afd");
        assert_eq!(derive("bob", "claude_code", "my-chat-001").to_string(), "d1ebee76-9ba8-5bfd-bde4-ea32a829b18f");
    }

    #[test]
    fn random_ids_are_distinct_v5() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| random("alice", "claude_code")).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|u| u.get_version_num() == 5));
    }

    #[test]
    fn client_keys() {
        assert!(valid_client_key("my-chat-001", 128));
        assert!(!valid_client_key("a|b", 128));
        assert!(!valid_client_key("a b", 128));
        assert!(!valid_client_key("", 128));
        assert!(!valid_client_key(&"x".repeat(129), 128));
        assert!(!valid_client_key("é", 128));
    }

    #[test]
    fn server_id_parsing() {
        assert!(parse_server_id("bbd854a2-0a27-5677-893e-276fa6b73afd").is_some());
        assert!(parse_server_id("BBD854A2-0A27-5677-893E-276FA6B73AFD").is_none());
        assert!(parse_server_id("bbd854a20a275677893e276fa6b73afd").is_none());
        assert!(parse_server_id("my-chat").is_none());
    }

    #[test]
    fn owner_hash_shape() {
        let h = owner_hash("alice");
        assert_eq!(h.len(), 16);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(h, owner_hash("bob"));
    }

    #[test]
    fn home_is_stable_and_in_range() {
        let id = derive("alice", "claude_code", "x");
        for n in 1..8 {
            assert!(home(&id, n) < n);
            assert_eq!(home(&id, n), home(&id, n));
        }
    }
}
