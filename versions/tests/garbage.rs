//! Garbage in, no panic out: every scheme gets hostile strings (empty, blanks,
//! NUL, separators only, huge digit runs, non-ASCII, control characters) and
//! thousands of random ones, in every pairing. Each answer must be an `Ok` or
//! an `Err`, and the answers must be those of an order: a version equals
//! itself, swapping the arguments reverses the result, and an error on one
//! side is an error either way round.

use std::cmp::Ordering;

use periscope_versions::{Scheme, compare, ge, gt, le, lt};

const SCHEMES: [Scheme; 9] = [
    Scheme::Deb,
    Scheme::Rpm,
    Scheme::Apk,
    Scheme::Semver,
    Scheme::Golang,
    Scheme::Pep440,
    Scheme::Maven,
    Scheme::Rubygems,
    Scheme::Composer,
];

fn hostile() -> Vec<String> {
    #[rustfmt::skip]
    let short = [
        "",
        " ",
        "\t",
        "\n",
        "\0",
        "1\0",
        "\0:1",
        ":",
        "::",
        "-",
        "--",
        "~",
        "^",
        "_",
        ".",
        "+",
        "~~~~",
        "^^^",
        "-r",
        "_p",
        "_alpha",
        "~~:~~-~~",
        "1:",
        ":1",
        "1-",
        "-1",
        "1:-",
        "1.0-r",
        "1.0_",
        "1.0~",
        "v",
        "vv1.0.0",
        "1.0.0-",
        "1.0.0+",
        "<unknown>",
        "1é",
        "ß",
        "🦀",
        "1.0\u{202e}",
        "\u{feff}1.0",
        "1\r\n",
        "\u{7f}",
        "2147483648:1",
        "-0:0",
        "+0:0",
        "0x10",
        "1e10",
        "NaN",
        "%s%n",
        "'; DROP TABLE",
    ];
    short.iter().map(|s| s.to_string()).collect()
}

/// Very long strings, paired only with the short hostile ones to keep the
/// (unoptimised) test quick.
fn huge() -> Vec<String> {
    vec![
        "9".repeat(20_000),
        format!("1.{}", "0".repeat(10_000)),
        "~".repeat(5_000),
        "1.".repeat(5_000),
        format!("{}:1", "9".repeat(5_000)),
        "a-".repeat(5_000),
        "1_p".repeat(3_000),
    ]
}

/// Random strings over an alphabet rich in every scheme's separators.
fn random(count: usize) -> Vec<String> {
    #[rustfmt::skip]
    const ALPHABET: &[char] = &[
        '0', '1', '2', '9', '0', '1', 'a', 'b', 'p', 'r', 'z', 'A', 'Z', '.', '.', '-', '-', ':',
        '~', '^', '_', '+', ' ', '\t', '\0', 'é', '🦀', 'v',
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() % 12) as usize;
            (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize]).collect()
        })
        .collect()
}

fn check_pair(scheme: Scheme, a: &str, b: &str) {
    let ab = compare(scheme, a, b);
    let ba = compare(scheme, b, a);
    match (&ab, &ba) {
        (Ok(x), Ok(y)) => assert_eq!(*x, y.reverse(), "{scheme}: {a:?} vs {b:?} is not antisymmetric"),
        (Err(_), Err(_)) => {}
        _ => panic!("{scheme}: {a:?} vs {b:?} gives {ab:?} one way and {ba:?} the other"),
    }
    assert_eq!(lt(scheme, a, b).ok(), ab.as_ref().ok().map(|o| o.is_lt()));
    assert_eq!(le(scheme, a, b).ok(), ab.as_ref().ok().map(|o| o.is_le()));
    assert_eq!(gt(scheme, a, b).ok(), ab.as_ref().ok().map(|o| o.is_gt()));
    assert_eq!(ge(scheme, a, b).ok(), ab.as_ref().ok().map(|o| o.is_ge()));
}

#[test]
fn garbage_never_panics() {
    let hostile = hostile();
    let huge = huge();
    let random = random(300);
    let mut checked = 0;
    for scheme in SCHEMES {
        for a in hostile.iter().chain(&huge).chain(&random) {
            match compare(scheme, a, a) {
                Ok(o) => assert_eq!(o, Ordering::Equal, "{scheme}: {a:?} is not equal to itself"),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
            checked += 1;
        }
        for a in &hostile {
            for b in hostile.iter().chain(&random) {
                check_pair(scheme, a, b);
                checked += 1;
            }
        }
        for a in &huge {
            for b in hostile.iter().chain(&huge) {
                check_pair(scheme, a, b);
                checked += 1;
            }
        }
        for (i, a) in random.iter().enumerate() {
            for b in &random[i + 1..] {
                check_pair(scheme, a, b);
                checked += 1;
            }
        }
    }
    println!("garbage: checked {checked} pairs across 4 schemes without a panic");
}
