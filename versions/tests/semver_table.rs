//! Semantic Versioning ordering: a table of SemVer 2.0.0 precedence rules
//! (the spec's own examples first), equalities, and strings that are not
//! strict SemVer and must be refused with a reason.

use std::cmp::Ordering;

use periscope_versions::{Scheme, VersionError, compare};

/// Each list is in strictly increasing precedence (SemVer 2.0.0 §11).
#[rustfmt::skip]
const CHAINS: &[&[&str]] = &[
    // The spec's example of pre-release precedence.
    &[
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ],
    // The spec's example of major/minor/patch precedence.
    &["1.0.0", "2.0.0", "2.1.0", "2.1.1"],
    // Numeric identifiers sort numerically and before alphanumeric ones;
    // alphanumeric ones sort in ASCII order (uppercase first, a10 before a9).
    &[
        "1.0.0-2",
        "1.0.0-10",
        "1.0.0-Z",
        "1.0.0-a",
        "1.0.0-a10",
        "1.0.0-a9",
        "1.0.0-a9.0",
    ],
    &[
        "0.0.0", "0.0.1", "0.1.0", "0.9.0", "0.10.0", "1.0.0-0", "1.0.0", "9.0.0", "10.0.0",
    ],
    &["18446744073709551614.0.0", "18446744073709551615.0.0"],
];

/// Equal in precedence: build metadata and a leading `v` are ignored.
#[rustfmt::skip]
const EQUAL: &[(&str, &str)] = &[
    ("v1.2.3", "1.2.3"),
    ("1.0.0+build.1", "1.0.0"),
    ("1.0.0+a", "1.0.0+b"),
    ("1.0.0-rc.1+x.7", "v1.0.0-rc.1"),
    ("1.0.0-x-y-z.--", "1.0.0-x-y-z.--"),
];

/// Not strict SemVer.
#[rustfmt::skip]
const INVALID: &[&str] = &[
    "",
    "v",
    "1",
    "1.2",
    "1.2.3.4",
    "01.2.3",
    "1.02.3",
    "1.2.03",
    "1.2.3-",
    "1.2.3+",
    "1.2.3-01",
    "1.2.3-a..b",
    "V1.2.3",
    "vv1.2.3",
    " 1.2.3",
    "1.2.3 ",
    "1.2.3-α",
    "18446744073709551616.0.0",
    "-1.0.0",
    "1.0.0~rc1",
    "1:1.0.0",
    "latest",
];

#[test]
fn semver_precedence_table() {
    let mut checked = 0;
    for chain in CHAINS {
        for (i, a) in chain.iter().enumerate() {
            for (j, b) in chain.iter().enumerate() {
                assert_eq!(compare(Scheme::Semver, a, b), Ok(i.cmp(&j)), "{a} vs {b}");
                checked += 1;
            }
        }
    }
    for (a, b) in EQUAL {
        assert_eq!(compare(Scheme::Semver, a, b), Ok(Ordering::Equal), "{a} vs {b}");
        assert_eq!(compare(Scheme::Semver, b, a), Ok(Ordering::Equal), "{b} vs {a}");
        checked += 2;
    }
    for bad in INVALID {
        for (x, y) in [(*bad, "1.0.0"), ("1.0.0", *bad)] {
            match compare(Scheme::Semver, x, y) {
                Err(VersionError::Invalid { scheme: "semver", version, reason }) => {
                    assert_eq!(version, *bad);
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} should be refused, got {other:?}"),
            }
            checked += 1;
        }
    }
    let message = compare(Scheme::Semver, "1.2", "1.2.0").unwrap_err().to_string();
    assert!(message.contains("invalid semver version \"1.2\""), "{message}");
    println!("semver_table: checked {checked} pairs");
}
