//! cargo-fuzz target `ssrf_url`: see `hotplex::fuzzing::ssrf_url` for the invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::fuzzing::ssrf_url(data));
