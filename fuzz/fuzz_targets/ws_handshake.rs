//! cargo-fuzz target `ws_handshake`: see `hotplex::fuzzing::ws_handshake` for the invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::fuzzing::ws_handshake(data));
