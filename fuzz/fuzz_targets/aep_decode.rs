//! cargo-fuzz target `aep_decode`: see `hotplex::fuzzing::aep_decode` for the invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::fuzzing::aep_decode(data));
