#![no_main]
//! Fuzz target: the os-release parser must not panic on any input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = periscope_agent::collectors::os::parse_os_release(&String::from_utf8_lossy(data));
});
