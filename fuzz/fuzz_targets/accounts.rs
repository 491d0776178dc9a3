#![no_main]
//! Fuzz target: the passwd, group and shadow parsers must not panic on any input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = periscope_agent::collectors::accounts::parse_passwd(&text);
    let _ = periscope_agent::collectors::accounts::parse_group(&text);
    let _ = periscope_agent::collectors::accounts::parse_shadow(&text);
});
