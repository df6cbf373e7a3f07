//! cargo-fuzz target `http_head`: see `hotplex::fuzzing::http_head` for the invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::fuzzing::http_head(data));
