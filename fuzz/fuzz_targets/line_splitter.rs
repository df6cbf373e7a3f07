//! cargo-fuzz target `line_splitter`: see `hotplex::fuzzing::line_splitter` for the invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::fuzzing::line_splitter(data));
