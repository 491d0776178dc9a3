//! npm's versions (manager `npm`, ordered as [`Scheme::Semver`]) checked
//! against node-semver, the implementation npm itself uses, run by `node`.
//!
//! node-semver is found where npm bundles it (`<npm root -g>/npm/node_modules/semver`)
//! or as Debian's node-semver (/usr/share/nodejs/semver). One `node` process
//! reads every pair (hex, one per line) and answers `semver.compare(a, b)` or
//! ERR when it throws (an invalid version, in its default strict mode).
//!
//! Where the two differ by design (listed in [`DIFFERENT`], each checked to
//! really differ): node-semver trims blanks around a version and refuses
//! numbers above 2^53-1 (JavaScript's safe integers), where the Semver scheme
//! refuses blanks and orders any u64. Neither reaches an inventory: npm's
//! registry only holds normalized versions, and the collector trims.

mod common;

use std::process::Command;

use common::{oracle_lines, ordering_name, pairs, product};
use periscope_versions::{Scheme, compare, guess_scheme};

#[rustfmt::skip]
const HEADS: &[&str] = &[
    "0.0.0", "0.0.1", "0.1.0", "1.0.0", "1.2.3", "1.2.10", "1.10.2", "2.0.0", "10.0.0", "v1.2.3",
    "=1.2.3", "01.2.3", "1.2", "1", "V1.2.3", "vv1.2.3", "9007199254740991.0.0", "x.1.2",
];
#[rustfmt::skip]
const TAILS: &[&str] = &[
    "", "-0", "-1", "-01", "-10", "-alpha", "-alpha.1", "-alpha.beta", "-beta.2", "-beta.11", "-rc.1",
    "-rc.1.2", "-A", "-a-b", "-0a", "-", "beta", "-a..b", "+build", "+build.1", "-rc.1+b.2", "+",
    ".4",
];

/// Pairs that node-semver answers and the Semver scheme refuses (see the module doc).
const DIFFERENT: &[(&str, &str)] = &[(" 1.2.3", "1.2.3"), ("1.2.3 ", "1.2.3"), ("9007199254740992.0.0", "1.0.0")];

const CANDIDATES: &[&str] = &[
    "/usr/lib/node_modules/npm/node_modules/semver",
    "/usr/local/lib/node_modules/npm/node_modules/semver",
    "/usr/share/nodejs/semver",
];

fn verdicts(semver: &str, corpus: &[(String, String)]) -> Vec<String> {
    let script = format!(
        r#"const s = require({semver:?});
const h = x => Buffer.from(x, "hex").toString();
const out = [];
for (const line of require("fs").readFileSync(0, "utf8").split("\n")) {{
  if (!line) continue;
  const [a, b] = line.split(" ");
  try {{ out.push(["lt", "eq", "gt"][s.compare(h(a), h(b)) + 1]); }} catch (e) {{ out.push("ERR"); }}
}}
process.stdout.write(out.join("\n") + "\n");"#
    );
    oracle_lines(Command::new("node").args(["-e", &script]), corpus, "node-semver")
}

#[test]
fn npm_versions_order_as_node_semver() {
    assert_eq!(guess_scheme("npm"), Some(Scheme::Semver));
    assert_eq!("npm".parse::<Scheme>(), Ok(Scheme::Semver));
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let semver = CANDIDATES.iter().find(|c| std::path::Path::new(c).join("package.json").exists());
    let (true, Some(semver)) = (node, semver) else {
        let why = format!("needs node and node-semver (one of {CANDIDATES:?})");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{why}");
        }
        println!("npm_vs_node_semver: skipped: {why}");
        return;
    };
    let versions = product(&[HEADS, TAILS]);
    let mut corpus: Vec<(String, String)> = DIFFERENT.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    corpus.extend(pairs(&versions, 4000, 0x6e70_6d5e_6d76));
    let theirs = verdicts(semver, &corpus);
    assert_eq!(theirs.len(), corpus.len());
    let mut disagreements = Vec::new();
    let (mut refused, mut seen) = (0, [false; 3]);
    for (i, ((a, b), t)) in corpus.iter().zip(&theirs).enumerate() {
        let ours = match compare(Scheme::Semver, a, b) {
            Ok(o) => {
                seen[(o as i8 + 1) as usize] = true;
                ordering_name(o).to_string()
            }
            Err(_) => "ERR".to_string(),
        };
        refused += usize::from(ours == "ERR" && t == "ERR");
        let expected_difference = i < DIFFERENT.len();
        if (ours == *t) == expected_difference {
            disagreements.push(format!("{a:?} vs {b:?}: ours {ours}, node-semver {t}"));
        }
    }
    println!("npm_vs_node_semver: {} pairs against {semver} ({refused} refused by both)", corpus.len());
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
    assert!(seen.iter().all(|s| *s), "corpus must exercise lt, eq and gt");
    assert!(refused > 100, "corpus must exercise refusals: {refused}");
}
