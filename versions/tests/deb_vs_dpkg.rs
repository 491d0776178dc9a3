//! Debian ordering checked against the real `dpkg --compare-versions`.
//!
//! A few thousand pairs are generated deterministically from lists of
//! components (epochs, upstream parts, tails with `~`, `+`, `.`, letters and
//! digits, revisions with and without `-`), plus hand-picked pairs that probe
//! dpkg's edge cases and its handling of malformed input. For each pair the
//! test asks dpkg whether the relation this crate computes holds (`lt`, `eq` or
//! `gt`): dpkg answering "true" confirms the whole three-way result, since the
//! three relations are exclusive. Where this crate reports an error, dpkg must
//! refuse the version too (exit status 2). The calls are batched into one shell
//! script per core, so the run takes seconds.

mod common;

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{ordering_name, pairs, product, sh_quote};
use periscope_versions::{Scheme, compare};

#[rustfmt::skip]
const EPOCHS: &[&str] = &["", "0:", "1:", "2:", "00:", "10:"];
#[rustfmt::skip]
const UPSTREAM_HEADS: &[&str] = &[
    "0", "1", "01", "1.0", "1.00", "1.0.0", "1.2", "1.9", "1.10", "2", "10", "007",
    "123456789012345678901234567890", "9999999999999999999",
];
#[rustfmt::skip]
const UPSTREAM_TAILS: &[&str] = &[
    "", "~", "~~", "~rc1", "~beta2", "~~a", "a", "A", "z", "Z", "a1", "+", "+dfsg", "+b1",
    "+git20230101", ".", ".0", ".a", ".1~", "~1", "-",
];
#[rustfmt::skip]
const REVISIONS: &[&str] = &[
    "", "-0", "-1", "-01", "-2", "-10", "-1ubuntu1", "-1+b1", "-1~bpo11+1", "-0.1", "-1.1", "-a",
    "-1~",
];

/// Pairs chosen by hand: Policy's examples, dpkg's leniencies and its refusals.
#[rustfmt::skip]
const HAND_PICKED: &[(&str, &str)] = &[
    ("1.0~rc1", "1.0"),
    ("1:0", "0:9"),
    ("1.0", "1.0-0"),
    ("1.0", "1.0-"),
    ("1.0~", "1.0"),
    ("1.0~~a", "1.0~"),
    ("~~", "~~~"),
    ("9~", "9"),
    ("1.2.3~", "1.2.3-0"),
    ("0001", "1"),
    ("1.0.", "1.0"),
    ("1.0a", "1.0A"),
    ("1.0+~", "1.0+"),
    ("5.2.15-2+b2", "5.2.15-2"),
    ("5.2.15-2+b2", "5.2.15-2+b10"),
    ("1.2.3-0ubuntu0.22.04.1", "1.2.3-0ubuntu0.20.04.1"),
    ("2:1.0", "1:99"),
    ("1.0~beta1~rc", "1.0~beta1"),
    ("123456789012345678901234567890", "123456789012345678901234567891"),
    ("0.000000000000000000000000001", "0.1"),
    ("1.0-1-1", "1.0-1"),
    ("1.0--1", "1.0-1"),
    ("1.0-1.2.3-4", "1.0-1.2.3-5"),
    // dpkg's "no version": the empty string and <unknown>.
    ("", "0"),
    ("", ""),
    ("<unknown>", ""),
    ("<unknown>", "0~"),
    ("0:<unknown>", "1"),
    // Warnings only: dpkg still compares.
    ("abc", "1"),
    ("~", "0"),
    ("1:a", "1"),
    ("1::1", "1"),
    ("1:1:1", "1:1"),
    ("1.0_1", "1.0"),
    ("1.0!", "1.0#"),
    ("1.0%", "1.0~"),
    ("1.0'", "1.0\""),
    ("1.0$", "1.0`"),
    ("1.0-a:b", "1"),
    ("1:1.0-a:b", "1"),
    ("1é", "1z"),
    ("1é", "1+"),
    ("1é", "1é"),
    ("1ß", "1é"),
    ("1\u{3000}", "1"),
    // Blanks: trimmed at the ends, refused inside; other whitespace is a character.
    (" 1.0", "1.0"),
    ("1.0 ", "1.0"),
    ("\t1.0", "1.0"),
    ("1.0\t", "1.0"),
    ("\n1", "1"),
    ("1\n", "1"),
    ("1\r", "1"),
    ("\r1", "1"),
    ("1\u{b}", "1"),
    ("1\u{c}", "1"),
    ("\u{b}1", "1"),
    ("1\n0", "1"),
    ("\n1:2", "1:2"),
    ("1 0", "1"),
    ("1\t0", "1"),
    ("  ", "1"),
    ("1 :2", "1"),
    ("1: 2", "1"),
    // Epochs, read the way strtol reads them.
    ("+1:2", "1:2"),
    ("-0:1", "1"),
    ("-1:1", "1"),
    ("00:1", "0:1"),
    ("2147483647:1", "1"),
    ("2147483648:1", "1"),
    ("99999999999999999999:1", "1"),
    ("-99999999999999999999:1", "1"),
    ("0x1:1", "1"),
    ("1a:1", "1"),
    ("+:1", "1"),
    ("-:1", "1"),
    // Refusals.
    (":1", "1"),
    (" :1", "1"),
    ("a:1", "1"),
    ("1:", "1"),
    ("0:", "1"),
    ("-1", "1"),
    ("1:-1", "1"),
    ("1.0-", "1"),
    ("1-", "1"),
    ("-", "1"),
];

/// Runs `dpkg --compare-versions -- A REL B` for every (A, REL, B), one shell
/// per chunk, and returns the exit statuses in order.
fn dpkg_statuses(queries: &[(String, &'static str, String)]) -> Vec<i32> {
    let workers = 2;
    let chunk = queries.len().div_ceil(workers).max(1);
    let handles: Vec<_> = queries
        .chunks(chunk)
        .map(|part| {
            let script: String = part
                .iter()
                .map(|(a, rel, b)| {
                    format!("dpkg --compare-versions -- {} {rel} {} 2>/dev/null; echo $?\n", sh_quote(a), sh_quote(b))
                })
                .collect();
            let expected = part.len();
            std::thread::spawn(move || {
                let mut child =
                    Command::new("sh").arg("-s").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("run sh");
                child.stdin.take().unwrap().write_all(script.as_bytes()).expect("feed sh");
                let out = child.wait_with_output().expect("wait for sh");
                let statuses: Vec<i32> = String::from_utf8(out.stdout)
                    .expect("statuses are ASCII")
                    .lines()
                    .map(|l| l.trim().parse().expect("exit status"))
                    .collect();
                assert_eq!(statuses.len(), expected, "one status per dpkg call");
                statuses
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().expect("dpkg worker")).collect()
}

/// dpkg's own three-way answer, for the report of a disagreement.
fn dpkg_says(a: &str, b: &str) -> String {
    let q: Vec<_> = ["lt", "eq", "gt"].iter().map(|r| (a.to_string(), *r, b.to_string())).collect();
    match dpkg_statuses(&q).as_slice() {
        [0, _, _] => "lt".into(),
        [_, 0, _] => "eq".into(),
        [_, _, 0] => "gt".into(),
        [2, ..] => "error".into(),
        other => format!("no relation holds ({other:?})"),
    }
}

#[test]
fn deb_matches_dpkg() {
    let dpkg = Command::new("dpkg").arg("--version").output().ok();
    let Some(dpkg) = dpkg.filter(|o| o.status.success()) else {
        panic!("dpkg is not runnable here; it is the oracle for this test (install the `dpkg` package)");
    };
    let dpkg_version = String::from_utf8_lossy(&dpkg.stdout).lines().next().unwrap_or("").to_string();

    let versions = product(&[EPOCHS, UPSTREAM_HEADS, UPSTREAM_TAILS, REVISIONS]);
    let generated = pairs(&versions, 4000, 0x0dd_c0ffee);
    let mut corpus: Vec<(String, String)> = HAND_PICKED.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    corpus.extend(generated);

    let ours: Vec<_> = corpus.iter().map(|(a, b)| compare(Scheme::Deb, a, b)).collect();
    let queries: Vec<_> = corpus
        .iter()
        .zip(&ours)
        .map(|((a, b), r)| {
            let rel = match r {
                Ok(o) => ordering_name(*o),
                Err(_) => "lt",
            };
            (a.clone(), rel, b.clone())
        })
        .collect();
    let statuses = dpkg_statuses(&queries);

    let mut disagreements = Vec::new();
    let mut errors = 0;
    for (((a, b), r), status) in corpus.iter().zip(&ours).zip(&statuses) {
        let agrees = match r {
            Ok(_) => *status == 0,
            Err(_) => {
                errors += 1;
                *status == 2
            }
        };
        if !agrees {
            let ours = match r {
                Ok(o) => ordering_name(*o).to_string(),
                Err(e) => format!("error ({e})"),
            };
            disagreements.push(format!("{a:?} vs {b:?}: ours {ours}, dpkg {}", dpkg_says(a, b)));
        }
    }
    println!(
        "deb_vs_dpkg: checked {} pairs ({} hand-picked, {} generated from {} versions; {} refused by both) against {dpkg_version}",
        corpus.len(),
        HAND_PICKED.len(),
        corpus.len() - HAND_PICKED.len(),
        versions.len(),
        errors,
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} pairs disagree with dpkg:\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
    // The corpus must exercise all three outcomes, or it proves little.
    for want in [Ordering::Less, Ordering::Equal, Ordering::Greater] {
        assert!(ours.contains(&Ok(want)), "corpus has no {want:?} pair");
    }
}
