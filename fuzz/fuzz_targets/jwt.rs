//! cargo-fuzz target `jwt` (security.md §13 `jwt_verify`): token bytes through
//! the JWT verifier with fixed keys and clock.
//!
//! TODO(lead): built only with `--features auth` (scripts/fuzz.sh adds it when
//! `hotplex::security::jwt::fuzz_jwt` exists); once the auth branch is merged,
//! remove `required-features` in fuzz/Cargo.toml and add `jwt` to
//! `hotplex::fuzzing::TARGETS` so tests/fuzz_corpus.rs replays its seeds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::security::jwt::fuzz_jwt(data));
