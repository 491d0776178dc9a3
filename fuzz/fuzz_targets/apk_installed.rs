#![no_main]
//! Fuzz target: the apk installed-database parser must not panic on any input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = periscope_agent::collectors::apk::parse_installed(data);
});
