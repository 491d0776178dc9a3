#![no_main]
//! Fuzz target: the library banner scanner must not panic, and must find the
//! same whether the bytes come whole or in chunks split at the first byte's count.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = periscope_banners::scan_bytes(data);
    let size = 1 + usize::from(data.first().copied().unwrap_or(0));
    let mut s = periscope_banners::Scanner::new();
    for chunk in data.chunks(size) {
        s.feed(chunk);
    }
    assert_eq!(s.finish(), whole);
});
