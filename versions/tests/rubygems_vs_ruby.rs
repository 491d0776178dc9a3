//! RubyGems version ordering checked against Ruby's own `Gem::Version`
//! (Debian's ruby; scripts/install-test-deps.sh installs it): one Ruby
//! process reads every pair and answers with `<=>`, or the ArgumentError
//! `Gem::Version.new` raised. What Ruby refuses must be an error here too;
//! everywhere else the order must be Ruby's.
//!
//! The corpus: RubyGems' own test_gem_version.rb cases (published test data:
//! `1.0.a` pre-releases, `-` as `.pre.`, trailing zeros, case), versions real
//! gems carry, generated combinations of numbers, separators and letter runs,
//! and strings Ruby refuses.

mod common;

use std::process::Command;

use common::{oracle_lines, pairs, product, verdict};
use periscope_versions::{Scheme, compare};

#[rustfmt::skip]
const HAND_PICKED: &[&str] = &[
    // test_gem_version.rb
    "1.0", "1", "1.0.0", "1.0.a", "1.0.a.1", "1.0.b1", "1.0.b2", "1.0.a10", "1.0.a2", "1.0.A", "1.0.Z", "1.0.z",
    "0.beta.1", "0.0.beta", "0.0.beta.1", "5.a", "5.x", "5.0.0.rc1", "5.0.0", "1.9.3", "1.9.3.0", "1.10",
    "1.0-1", "1.0.pre.1", "1.0-a", "1.0-rc1", "1.0.rc1", "1.0.0.rc.1", "1.0.0.rc.0.1", "0.0.0.0.1", "0.1",
    "", " ", "  1.0  ", "1.0\n", "\t2\t", "0", "00", "01", "1.01", "1.001", "9999999999999999999999",
    "9999999999999999999998", "1-a-b", "1.0-a.1-b", "1.2.3-4", "1.2.3.pre.4",
    // Real gems.
    "13.0.6", "13.0.10", "2.6.3", "3.1.2", "7.0.4.3", "7.1.0.beta1", "7.1.0.rc1", "7.1.0", "1.15.4",
    "1.15.4-x86_64-linux", "2.0.0.pre.alpha", "0.9.0.dev", "1.0.0.beta.2", "4.0.0.alpha.1",
    // Refused by Ruby.
    "a", "1..2", "1.", ".1", "1.2-", "1 2", "1_2", "-1", "1.0-rc..1", "v1.0", "1.0+1", "1,2", "é", "1.é",
    "1.0.", "junk 1", "1.0 junk",
];

#[rustfmt::skip]
const NUMBERS: &[&str] = &["0", "1", "01", "1.0", "1.1", "1.10", "2", "10"];
#[rustfmt::skip]
const SEPARATORS: &[&str] = &["", ".", "-"];
#[rustfmt::skip]
const WORDS: &[&str] = &["", "a", "A", "b", "pre", "rc", "rc1", "beta", "beta.2", "0", "1", "z", "x.1"];

fn ruby() -> Option<()> {
    match Command::new("ruby").arg("--version").output() {
        Ok(o) if o.status.success() => Some(()),
        other => {
            let why = format!("no ruby to compare with ({other:?}); scripts/install-test-deps.sh installs it");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("SKIPPED rubygems_matches_gem_version: {why}");
            None
        }
    }
}

const SCRIPT: &str = r#"
out = []
STDIN.each_line do |line|
  ha, hb = line.chomp.split(/ /, -1)
  a, b = [ha, hb].map { |h| [h].pack("H*").force_encoding("UTF-8") }
  begin
    out << (Gem::Version.new(a) <=> Gem::Version.new(b)).to_s
  rescue ArgumentError => e
    out << "E " + e.message.tr("\n", " ")
  end
end
STDOUT.write(out.join("\n") + "\n")
"#;

#[test]
fn rubygems_matches_gem_version() {
    let Some(()) = ruby() else { return };
    let versions: Vec<String> = HAND_PICKED.iter().map(|s| s.to_string()).collect();
    let mut corpus: Vec<(String, String)> =
        versions.iter().flat_map(|a| versions.iter().map(move |b| (a.clone(), b.clone()))).collect();
    let generated = product(&[NUMBERS, SEPARATORS, WORDS, SEPARATORS, &["", "1", "2"]]);
    corpus.extend(pairs(&generated, 20_000, 0x7275_6279));
    let lines = oracle_lines(Command::new("ruby").args(["-e", SCRIPT]), &corpus, "Gem::Version");
    let mut wrong = Vec::new();
    let (mut ordered, mut refused) = (0, 0);
    for ((a, b), line) in corpus.iter().zip(&lines) {
        match (compare(Scheme::Rubygems, a, b), verdict(line)) {
            (Ok(ours), Ok(theirs)) if ours == theirs => ordered += 1,
            (Err(_), Err(_)) => refused += 1,
            (ours, theirs) => wrong.push(format!("{a:?} vs {b:?}: ours {ours:?}, Ruby {theirs:?}")),
        }
    }
    assert!(wrong.is_empty(), "{} of {} pairs differ from Ruby:\n{}", wrong.len(), corpus.len(), wrong.join("\n"));
    assert!(refused > 5_000 && ordered > 10_000, "{ordered} ordered, {refused} refused");
    println!("rubygems: {ordered} pairs ordered and {refused} refused as Ruby does");
}
