#![no_main]
//! Fuzz target: the rpm NDB Packages.db reader must not panic on any input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = periscope_agent::collectors::rpm::read_ndb(data);
});
