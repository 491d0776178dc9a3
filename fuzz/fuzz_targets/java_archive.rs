#![no_main]
//! Fuzz target: the Java archive reader (zip central directory, nested
//! archives, pom.properties and manifests) must not panic on any input.

use libfuzzer_sys::fuzz_target;
use periscope_agent::collectors::java;

fuzz_target!(|data: &[u8]| {
    let _ = java::read_archive(&data.to_vec(), "", "x.jar", 0, &mut java::Work::default());
});
