//! cargo-fuzz target `claude_line`: see `hotplex::fuzzing::claude_line` for the invariants.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| hotplex::fuzzing::claude_line(data));
