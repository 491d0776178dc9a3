#![no_main]
//! Fuzz target: the dpkg status parser must not panic on any input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = periscope_agent::collectors::dpkg::parse_status(data);
});
