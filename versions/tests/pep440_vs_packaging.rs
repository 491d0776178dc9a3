//! PEP 440 ordering checked against Python's own `packaging` library (the
//! code pip uses), installed from PyPI by `scripts/python-clients.sh`.
//!
//! Pairs are generated deterministically from lists of epochs, releases,
//! pre-releases (every spelling PEP 440 normalizes: `a`/`alpha`, `c`/`rc`/
//! `pre`/`preview`, separators, implicit numbers), post-releases (`-1`,
//! `.post`, `rev`, `r`), dev-releases and local versions, plus hand-picked
//! pairs and strings `packaging` refuses. One Python process reads every pair
//! and answers with `Version(a)` vs `Version(b)` or the `InvalidVersion` it
//! raised; what `packaging` refuses must be an error here too.

mod common;

use std::cmp::Ordering;

use std::process::{Command, Stdio};

use common::{oracle_lines, ordering_name, pairs, product, verdict};
use periscope_versions::{Scheme, compare};

#[rustfmt::skip]
const EPOCHS: &[&str] = &["", "0!", "1!", "01!", "v", "V1!"];
#[rustfmt::skip]
const RELEASES: &[&str] = &["0", "1", "1.0", "1.0.0", "1.0.0.0", "01.0", "1.1", "1.10", "1.9", "2", "10.0", "1.0.1"];
#[rustfmt::skip]
const PRES: &[&str] = &[
    "", "a", "a1", "a2", "a10", "A1", ".a1", "-a1", "_a1", "alpha1", "b0", "b1", "beta2", "c1", "rc1", "RC1",
    "pre1", "preview1", "rc", "-rc.2",
];
#[rustfmt::skip]
const POSTS: &[&str] = &["", ".post1", "post2", "-1", "-post1", ".rev1", "r1", ".post", "_post3", ".POST1"];
#[rustfmt::skip]
const DEVS: &[&str] = &["", ".dev0", ".dev1", "dev2", "-dev1", ".dev"];
#[rustfmt::skip]
const LOCALS: &[&str] = &["", "+1", "+abc", "+abc.1", "+1.abc", "+ubuntu-1", "+local_2", "+2", "+1.0"];

#[rustfmt::skip]
const HAND_PICKED: &[(&str, &str)] = &[
    ("1.0", "1.0.0"),
    ("1.0RC1", "1.0rc1"),
    ("1.0.dev1", "1.0a1"),
    ("1.0a1.dev1", "1.0a1"),
    ("1.0a1", "1.0"),
    ("1.0", "1.0.post1.dev1"),
    ("1.0.post1.dev1", "1.0.post1"),
    ("1.0+local", "1.0"),
    ("1.0+local", "1.0.post1"),
    ("1.0+1", "1.0+a"),
    ("1.0+1.1", "1.0+1"),
    ("1.0+abc", "1.0+ABC"),
    ("1.0+a-b_c", "1.0+a.b.c"),
    ("1!0.1", "2.0"),
    ("0!1.0", "1.0"),
    ("1.0-1", "1.0.post1"),
    ("1.0-1", "1.0.post1"),
    ("2.0.0", "10.0"),
    ("v1.0", "1.0"),
    (" 1.0 ", "1.0"),
    ("1.0\n", "1.0"),
    ("1.0c1", "1.0rc1"),
    ("1.0a", "1.0a0"),
    ("1.0.post", "1.0.post0"),
    ("1.0.dev", "1.0.dev0"),
    ("00001.0", "1.0"),
    ("1.0.0.0.0.0.0.0.1", "1.0"),
    ("2023.7.22", "2024.2.2"),
    ("2.31.0", "2.28.1"),
    ("1.26.12", "2.0.7"),
    ("", "1.0"),
    ("1.0-", "1.0"),
    ("1..0", "1.0"),
    ("1.0.", "1.0"),
    ("1.0b2-346", "1.0b2.post346"),
    ("foo", "1.0"),
    ("1.0+", "1.0"),
    ("1.0+-", "1.0"),
    ("1.0 1", "1.0"),
    ("1.0.*", "1.0"),
    ("1.0a1b1", "1.0"),
    ("1.0-dev", "1.0.dev0"),
    ("1.0_rc_1", "1.0rc1"),
    ("2.0.0-rc.1", "2.0.0rc1"),
    ("é", "1"),
    ("1.0\u{0}", "1.0"),
    ("18446744073709551615", "18446744073709551614"),
];

fn python() -> Option<String> {
    let script = common::repo_root().join("scripts/python-clients.sh");
    match Command::new(&script).stderr(Stdio::inherit()).output() {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        other => {
            assert!(std::env::var("CI").is_err(), "{} failed in CI: {other:?}", script.display());
            eprintln!("SKIPPED: {} failed ({other:?}): no `packaging` to compare with", script.display());
            None
        }
    }
}

/// `packaging`'s verdict per pair: `Ok(ordering)` or `Err(why it refused)`.
fn packaging_verdicts(python: &str, corpus: &[(String, String)]) -> Vec<Result<Ordering, String>> {
    const SCRIPT: &str = r#"
import sys
from packaging.version import Version, InvalidVersion
out = []
for line in sys.stdin.read().splitlines():
    ha, hb = line.split(" ")
    a, b = bytes.fromhex(ha).decode(), bytes.fromhex(hb).decode()
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion as e:
        out.append("E " + str(e).replace("\n", " "))
        continue
    out.append(str((va > vb) - (va < vb)))
sys.stdout.write("\n".join(out) + "\n")
"#;
    let lines = oracle_lines(Command::new(python).args(["-c", SCRIPT]), corpus, "packaging");
    lines.iter().map(|l| verdict(l)).collect()
}

#[test]
fn pep440_matches_packaging() {
    let Some(python) = python() else { return };
    let probe = Command::new(&python).args(["-c", "import packaging; print(packaging.__version__)"]).output();
    let packaging_version = match probe {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => panic!("{python} cannot `import packaging`: scripts/python-clients.sh installs it"),
    };
    let versions = product(&[EPOCHS, RELEASES, PRES, POSTS, DEVS, LOCALS]);
    let mut corpus: Vec<(String, String)> = HAND_PICKED.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    corpus.extend(pairs(&versions, 20_000, 0x0000_9e94_40aa));

    let verdicts = packaging_verdicts(&python, &corpus);
    let mut disagreements = Vec::new();
    let (mut refused, mut seen) = (0, [false; 3]);
    for ((a, b), theirs) in corpus.iter().zip(&verdicts) {
        let ours = compare(Scheme::Pep440, a, b);
        match (&ours, theirs) {
            (Ok(o), Ok(t)) if o == t => seen[(*o as i8 + 1) as usize] = true,
            (Err(_), Err(_)) => refused += 1,
            _ => {
                let ours =
                    ours.as_ref().map(|o| ordering_name(*o).to_string()).unwrap_or_else(|e| format!("error ({e})"));
                let theirs =
                    theirs.as_ref().map(|t| ordering_name(*t).to_string()).unwrap_or_else(|e| format!("error ({e})"));
                disagreements.push(format!("{a:?} vs {b:?}: ours {ours}, packaging {theirs}"));
            }
        }
    }
    println!(
        "pep440_vs_packaging: checked {} pairs ({} hand-picked, {} generated from {} versions; {refused} refused by both) against packaging {packaging_version}",
        corpus.len(),
        HAND_PICKED.len(),
        corpus.len() - HAND_PICKED.len(),
        versions.len(),
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} pairs disagree with packaging:\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(seen.iter().all(|s| *s), "corpus must exercise lt, eq and gt");
    assert!(refused > 0, "corpus must exercise versions packaging refuses");
}
