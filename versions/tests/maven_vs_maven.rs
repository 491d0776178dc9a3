//! Maven version ordering checked against Maven's own `ComparableVersion`
//! (maven-artifact, from Debian's libmaven3-core-java; run by the JDK's
//! single-file source launcher, so nothing is compiled into the repository).
//!
//! The corpus: the ascending lists of Maven's own `ComparableVersionTest`
//! (published test data: qualifiers, numbers), the pairs its regression
//! tests name (MNG-5568, MNG-6572, leading zeros, `.X` vs `-X`), versions
//! Java artifacts really carry (log4j, Spring, Guava, Jackson, Debian's
//! repacks), generated combinations of numbers, separators and qualifiers,
//! and junk. Every string is a Maven version, so every pair has Maven's order.

mod common;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{oracle_lines, pairs, product, verdict};
use periscope_versions::{Scheme, compare};

/// Maven's `ComparableVersionTest`: each list is in ascending order.
#[rustfmt::skip]
const VERSIONS_QUALIFIER: &[&str] = &[
    "1-alpha2snapshot", "1-alpha2", "1-alpha-123", "1-beta-2", "1-beta123", "1-m2", "1-m11", "1-rc", "1-cr2",
    "1-rc123", "1-SNAPSHOT", "1", "1-sp", "1-sp2", "1-sp123", "1-abc", "1-def", "1-pom-1", "1-1-snapshot", "1-1",
    "1-2", "1-123",
];
#[rustfmt::skip]
const VERSIONS_NUMBER: &[&str] = &[
    "2.0", "2.0.a", "2-1", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b", "2.1-c", "2.1-1", "2.1.0.1", "2.2", "2.123",
    "11.a2", "11.a11", "11.b2", "11.b11", "11.m2", "11.m11", "11", "11.a", "11b", "11c", "11m",
];

#[rustfmt::skip]
const HAND_PICKED: &[&str] = &[
    // ComparableVersionTest's named cases.
    "1", "1.0", "1.0.0", "1-0", "1.0-0", "1-ga", "1-GA", "1-release", "1-final", "1-FINAL", "1.0.0-ga", "1-0.ga",
    "1a", "1-a", "1.0-a", "1b", "1m", "1-b", "1.0-b", "1-m", "1a1", "1b2", "1m3", "1cr", "1-cr", "1rc", "1.0RC1",
    "1.0.RC1", "1.0-RC1", "1-RC1", "1.0.0-X1", "1.0.0.X1", "1.0.0-X2", "1.0.0.X2", "1-x1", "1x1",
    "0.9.9-SNAPSHOT", "0.9.9", "0.9.10-SNAPSHOT", "0.9.10", "1.0-alpha-2-SNAPSHOT", "1.0-alpha-2",
    "2.0-1", "2.0.1", "1-1.foo-bar1baz-.1", "0001", "01.0", "1.0000000000000000000001",
    "00000000000000000000001", "2147483647", "2147483648", "9223372036854775807", "9223372036854775808",
    "18446744073709551616", "1.7976931348623157E308", "1.0-0.1", "1-0.1", "1.0.0.0.0.0.0.1",
    // Real artifacts' versions.
    "2.14.1", "2.15.0", "2.16.0", "2.17.0", "2.17.1", "2.19.0", "2.0-beta9", "2.0-rc1", "2.0-rc2", "2.0",
    "5.3.20", "5.3.20.RELEASE", "5.3.20-RELEASE", "2.7.18", "6.0.0-M1", "6.0.0-M2", "6.0.0-RC1", "6.0.0",
    "31.1-jre", "31.1-android", "32.0.0-jre", "2.13.4.2", "2.13.4", "2.13.5", "1.2.3-debian", "3.12.0",
    "3.12.0-2+deb12u1", "9.4.50.v20221201", "9.4.51.v20230217", "1.0.b2", "4.13.2", "1.7.36", "2.0.0-alpha7",
    "Final", "1.1.1.Final", "1.1.1.SP1", "1.1.1.CR1", "3.2.0.Beta2", "1.0.0-incubating", "1.0-dev",
    "1.0_01", "1.8.0_392", "r09", "r10", "v1.0", "20030203.000129", "1.0-20230101.120000-1",
    // Junk.
    "", ".", "-", "..", "--", "-.", ".-", "1.", "1-", "1..", "1--1", "a", "A", "alpha", "ga", "sp", "é1", "1é",
    "1.ÉTÉ", " 1", "1 ", "1+1", "1_1", "1~1", "∞",
];

#[rustfmt::skip]
const NUMBERS: &[&str] = &["0", "1", "01", "2", "10", "1.0", "1.1", "2.0.0"];
#[rustfmt::skip]
const SEPARATORS: &[&str] = &["", ".", "-"];
#[rustfmt::skip]
const QUALIFIERS: &[&str] = &[
    "", "alpha", "a", "a1", "beta", "b2", "milestone", "m1", "rc", "cr", "RC1", "snapshot", "SNAPSHOT", "ga",
    "final", "release", "sp", "sp1", "1", "0", "abc", "jre", "x1",
];

/// The JDK and maven-artifact's jar, or None (with a printed reason; a failure in CI).
fn oracle() -> Option<(PathBuf, PathBuf)> {
    let jar = ["/usr/share/java/maven-artifact-3.x.jar", "/usr/share/maven/lib/maven-artifact-3.x.jar"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let java = Command::new("java").arg("-version").output().ok().filter(|o| o.status.success());
    match (jar, java) {
        (Some(jar), Some(_)) => Some((PathBuf::from("java"), jar)),
        (jar, java) => {
            let why = format!(
                "no Maven to compare with (maven-artifact jar: {jar:?}, java: {}); scripts/install-test-deps.sh installs maven",
                java.is_some()
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("SKIPPED maven_matches_comparable_version: {why}");
            None
        }
    }
}

const ORACLE: &str = r#"
import java.io.*;
import java.nio.charset.StandardCharsets;
import org.apache.maven.artifact.versioning.ComparableVersion;

public class Oracle {
    static String unhex(String h) {
        byte[] b = new byte[h.length() / 2];
        for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        return new String(b, StandardCharsets.UTF_8);
    }
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintWriter out = new PrintWriter(new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8)));
        for (String line; (line = in.readLine()) != null; ) {
            String[] f = line.split(" ", -1);
            int c = new ComparableVersion(unhex(f[0])).compareTo(new ComparableVersion(unhex(f[1])));
            out.println(Integer.signum(c));
        }
        out.flush();
    }
}
"#;

fn maven_verdicts(java: &Path, jar: &Path, corpus: &[(String, String)]) -> Vec<Ordering> {
    let dir = tempfile_dir();
    let src = dir.join("Oracle.java");
    std::fs::write(&src, ORACLE).unwrap();
    let lines = oracle_lines(Command::new(java).arg("-cp").arg(jar).arg(&src), corpus, "ComparableVersion");
    let _ = std::fs::remove_dir_all(&dir);
    lines.iter().map(|l| verdict(l).unwrap_or_else(|e| panic!("oracle said {e}"))).collect()
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("periscope-maven-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn maven_matches_comparable_version() {
    let Some((java, jar)) = oracle() else { return };
    let mut versions: Vec<String> =
        VERSIONS_QUALIFIER.iter().chain(VERSIONS_NUMBER).chain(HAND_PICKED).map(|s| s.to_string()).collect();
    let hand = versions.len();
    // Every pair of the published and hand-picked versions…
    let mut corpus: Vec<(String, String)> =
        versions.iter().flat_map(|a| versions.iter().map(move |b| (a.clone(), b.clone()))).collect();
    // …and generated ones, near neighbours and far.
    versions.extend(product(&[NUMBERS, SEPARATORS, QUALIFIERS, SEPARATORS, &["", "1", "2"]]));
    corpus.extend(pairs(&versions[hand..], 20_000, 0x006d_6176_656e));
    let theirs = maven_verdicts(&java, &jar, &corpus);
    let mut wrong = Vec::new();
    for ((a, b), want) in corpus.iter().zip(&theirs) {
        let ours = compare(Scheme::Maven, a, b).expect("every string is a Maven version");
        if ours != *want {
            wrong.push(format!("{a:?} vs {b:?}: ours {ours:?}, Maven {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{} of {} pairs differ from Maven:\n{}", wrong.len(), corpus.len(), wrong.join("\n"));
    // The published lists really ascend (a check of the oracle run as much as of us).
    for list in [VERSIONS_QUALIFIER, VERSIONS_NUMBER] {
        for w in list.windows(2) {
            assert_eq!(compare(Scheme::Maven, w[0], w[1]), Ok(Ordering::Less), "{} < {}", w[0], w[1]);
        }
    }
    println!("maven: {} pairs agree with ComparableVersion", corpus.len());
}
