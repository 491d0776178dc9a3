#![no_main]
//! Fuzz target: the text and JSON readers of application packages
//! (gemspecs, Composer's installed.json, .NET deps.json, pom.properties,
//! MANIFEST.MF) must not panic on any input.

use libfuzzer_sys::fuzz_target;
use periscope_agent::collectors::{composer, gem, java, nuget};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = gem::parse(&text);
    let _ = composer::parse(data);
    let _ = nuget::parse(data);
    let _ = java::parse_properties(&text);
    let _ = java::from_manifest(&java::parse_manifest(&text), &text);
});
