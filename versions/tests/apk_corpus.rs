//! Alpine ordering checked against apk-tools' own test corpus
//! (`tests/data/apk-version.data`, copied from apk-tools' `test/version.data`;
//! no apk binary is needed). Every pair is checked in both directions, and
//! every version in the corpus is then sorted and checked to form one
//! consistent order, which `sort_by` and SQL's ORDER BY rely on.

use std::cmp::Ordering;

use periscope_versions::{Scheme, compare};

const DATA: &str = include_str!("data/apk-version.data");

fn corpus() -> Vec<(&'static str, Ordering, &'static str)> {
    DATA.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [a, op, b] = fields[..] else { panic!("not `A OP B`: {line:?}") };
            let op = match op {
                "<" => Ordering::Less,
                "=" => Ordering::Equal,
                ">" => Ordering::Greater,
                other => panic!("unknown operator {other:?} in {line:?}"),
            };
            (a, op, b)
        })
        .collect()
}

#[test]
fn apk_matches_apk_tools_corpus() {
    let pairs = corpus();
    assert!(pairs.len() > 700, "the corpus file lost lines: {}", pairs.len());
    let mut wrong = Vec::new();
    for &(a, want, b) in &pairs {
        for (x, y, want) in [(a, b, want), (b, a, want.reverse())] {
            let got = compare(Scheme::Apk, x, y).expect("apk always compares");
            if got != want {
                wrong.push(format!("{x} vs {y}: ours {got:?}, apk-tools {want:?}"));
            }
        }
    }
    println!(
        "apk_corpus: checked {} apk-tools pairs in both directions ({} comparisons)",
        pairs.len(),
        2 * pairs.len()
    );
    assert!(wrong.is_empty(), "{} disagreements with apk-tools:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn apk_corpus_sorts_consistently() {
    let mut versions: Vec<&str> = corpus().iter().flat_map(|&(a, _, b)| [a, b]).collect();
    versions.sort_unstable();
    versions.dedup();
    versions.sort_by(|a, b| compare(Scheme::Apk, a, b).unwrap());
    let mut checked = 0;
    for (i, a) in versions.iter().enumerate() {
        for b in &versions[i + 1..] {
            checked += 1;
            assert_ne!(
                compare(Scheme::Apk, a, b).unwrap(),
                Ordering::Greater,
                "{a} sorted before {b} but compares greater"
            );
        }
    }
    println!("apk_corpus: {} distinct versions form one order ({checked} pairs checked)", versions.len());
}
