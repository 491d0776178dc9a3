//! Digit runs, which every scheme compares as unbounded whole numbers.

use std::cmp::Ordering;

/// Splits off the leading run of ASCII digits.
pub(crate) fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

/// Compares two runs of ASCII digits as unbounded non-negative integers
/// (an empty run is zero).
pub(crate) fn compare_numbers(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let a = &a[strip(a)..];
    let b = &b[strip(b)..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
