//! RPM ordering checked against rpm's own comparison, through Debian's
//! `python3-rpm` bindings to librpm.
//!
//! Pairs are generated deterministically from lists of epochs, versions (with
//! `~`, `^`, letters, separators, leading zeros, long digit runs) and releases
//! (including none, an empty one, and extra hyphens), plus hand-picked ones.
//! One `/usr/bin/python3` process reads every pair from stdin, lets rpm parse
//! each string (`rpm.ver`, rpm's own `[E:]V[-R]` split) and compares them with
//! `rpm.labelCompare` on the parsed (epoch or "0", version, release); it also
//! checks that `rpm.ver`'s own ordering agrees wherever both answer, so the
//! two rpm entry points cannot silently diverge under us. What rpm refuses
//! (`rpm.ver` refuses the empty string, `labelCompare` an empty version part
//! such as in `1:` or `-1`) must be an error here too.
//!
//! Needs `python3-rpm` (installed by `scripts/install-test-deps.sh`). The
//! Debian interpreter is called by its full path because a `python3` earlier
//! on PATH (pyenv, a venv) does not see Debian's bindings.

mod common;

use std::cmp::Ordering;

use std::process::Command;

use common::{oracle_lines, ordering_name, pairs, product, verdict};
use periscope_versions::{Scheme, compare};

const PYTHON: &str = "/usr/bin/python3";

#[rustfmt::skip]
const EPOCHS: &[&str] = &["", "0:", "1:", "2:", "01:", "10:", ":"];
#[rustfmt::skip]
const VERSION_HEADS: &[&str] = &[
    "0", "1", "01", "1.0", "1.00", "1.01", "1.1", "1.9", "1.10", "1.0.0", "2", "10", "1a", "1.a",
    "a", "A", "1.0A", "1_0", "1..0", "1.2.3.4", "123456789012345678901234567890",
];
#[rustfmt::skip]
const VERSION_TAILS: &[&str] = &[
    "", "~", "~~", "~rc1", "^", "^git1", "^^", "^1~2", "~^", ".", "a", "+1", ".0", "b2", "~1^2",
];
#[rustfmt::skip]
const RELEASES: &[&str] = &[
    "", "-1", "-2", "-10", "-01", "-1.el8", "-1.el8_2", "-1.fc30", "-1~beta", "-1^post1", "-", "-0",
    "-a", "-1-2",
];

#[rustfmt::skip]
const HAND_PICKED: &[(&str, &str)] = &[
    ("1.0~rc1-1", "1.0-1"),
    ("1.0^git1-1", "1.0-1"),
    ("1.0^git1-1", "1.0.1-1"),
    ("1.0", "1.0-1"),
    ("1.0", "1.0-"),
    ("1.0-", "1.0-0"),
    ("1.0", "1.0-~1"),
    ("1.0", "1.0-^1"),
    ("0:1.0", "1.0"),
    (":1.0", "0:1.0"),
    ("1:1.0", "2.0"),
    ("1:", "0:1"),
    ("1:-1", "1:"),
    ("-1", "0-1"),
    ("-", "-"),
    ("a:1", "1"),
    ("x:y:z", "x:y:z"),
    ("1:2:3", "1:2:4"),
    ("1-2:3", "1-2:4"),
    ("5.2.15-2.el9_3", "5.2.15-2.el9"),
    ("2.02-0.87.el7.centos", "2.02-0.86.el7.centos"),
    ("1.0.0", "1.0"),
    ("1.0.", "1.0"),
    ("1.0a", "1.0.a"),
    ("1é", "1"),
    ("1é2", "1.2"),
    ("1 2", "1.2"),
    (" ", "\t"),
    ("~", ""),
    ("^", "~"),
    ("", "1"),
    ("", ""),
    ("00000000000000000000000001", "1"),
    ("99999999999999999999999999", "100000000000000000000000000"),
];

/// rpm's verdict per pair: `Ok(ordering)` or `Err(why rpm refused)`.
fn rpm_verdicts(corpus: &[(String, String)]) -> Vec<Result<Ordering, String>> {
    const SCRIPT: &str = r#"
import sys, rpm
out = []
for line in sys.stdin.read().splitlines():
    ha, hb = line.split(" ")
    a, b = bytes.fromhex(ha).decode(), bytes.fromhex(hb).decode()
    try:
        va, vb = rpm.ver(a), rpm.ver(b)
    except Exception as e:
        out.append("E " + str(e))
        continue
    try:
        by_label = rpm.labelCompare((va.e or "0", va.v, va.r), (vb.e or "0", vb.v, vb.r))
    except Exception as e:
        out.append("E labelCompare: " + str(e))
        continue
    by_ver = (va > vb) - (va < vb)
    out.append(str(by_label) if by_ver == by_label else "X rpm.ver says %d, labelCompare %d" % (by_ver, by_label))
sys.stdout.write("\n".join(out) + "\n")
"#;
    let lines = oracle_lines(Command::new(PYTHON).args(["-c", SCRIPT]), corpus, "rpm");
    lines
        .iter()
        .map(|l| {
            assert!(!l.starts_with("X "), "rpm disagrees with itself: {l}");
            verdict(l)
        })
        .collect()
}

#[test]
fn rpm_matches_librpm() {
    let probe = Command::new(PYTHON).args(["-c", "import rpm; print(rpm.__version__)"]).output();
    let rpm_version = match probe {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => panic!(
            "{PYTHON} cannot `import rpm`: this test's oracle is Debian's python3-rpm. \
             Run scripts/install-test-deps.sh (or `apt-get install python3-rpm`)."
        ),
    };

    let versions = product(&[EPOCHS, VERSION_HEADS, VERSION_TAILS, RELEASES]);
    let mut corpus: Vec<(String, String)> = HAND_PICKED.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    corpus.extend(pairs(&versions, 4000, 0x0005_eed0_f2fa));

    let verdicts = rpm_verdicts(&corpus);
    let mut disagreements = Vec::new();
    let mut refused = 0;
    let mut seen = [false; 3];
    for ((a, b), theirs) in corpus.iter().zip(&verdicts) {
        let ours = compare(Scheme::Rpm, a, b);
        match (&ours, theirs) {
            (Ok(o), Ok(t)) if o == t => seen[(*o as i8 + 1) as usize] = true,
            (Err(_), Err(_)) => refused += 1,
            _ => {
                let ours = match &ours {
                    Ok(o) => ordering_name(*o).to_string(),
                    Err(e) => format!("error ({e})"),
                };
                let theirs = match theirs {
                    Ok(t) => ordering_name(*t).to_string(),
                    Err(e) => format!("error ({e})"),
                };
                disagreements.push(format!("{a:?} vs {b:?}: ours {ours}, rpm {theirs}"));
            }
        }
    }
    println!(
        "rpm_vs_rpm: checked {} pairs ({} hand-picked, {} generated from {} versions; {} refused by both) against rpm {rpm_version}",
        corpus.len(),
        HAND_PICKED.len(),
        corpus.len() - HAND_PICKED.len(),
        versions.len(),
        refused,
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} pairs disagree with rpm:\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.iter().take(60).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(seen.iter().all(|s| *s), "corpus must exercise lt, eq and gt");
}
