//! Composer version ordering checked against Composer's own library:
//! `composer/semver` as Debian's php-composer-semver ships it (the code
//! Composer runs), through PHP's CLI. For each pair the oracle normalizes
//! both versions with `VersionParser::normalize` (an exception: the version
//! is refused) and orders them with `Comparator`; a branch (`dev-…`) has no
//! order in Composer and must be an error here. Everywhere else the order
//! must be Composer's.
//!
//! The corpus: versions from composer/semver's own VersionParserTest and
//! ComparatorTest data (published test data), versions real PHP packages
//! carry, generated combinations of numbers, modifiers and separators, and
//! strings Composer refuses.

mod common;

use std::path::Path;
use std::process::Command;

use common::{oracle_lines, pairs, product, verdict};
use periscope_versions::{Scheme, compare};

#[rustfmt::skip]
const HAND_PICKED: &[&str] = &[
    // VersionParserTest::successfulNormalizedVersions and ComparatorTest.
    "1.0.0", "1.2.3.4", "1.0.0RC1dev", "1.0.0-rC15-dev", "1.0.0.RC.15-dev", "1.0.0-rc1", "1.0.0.pl3-dev",
    "1", "1.0", "1.0.0.0", "2010-01-02", "2010.01.02", "2010.1.555", "2010.10.200", "1.0.0-beta.5+foo",
    "1.0.0+foo", "1.0.0-alpha.3.1+foo", "1.0.0-alpha2.1+0123", "1.0.0-alpha-2.1-3+foo", "1.0.0+foo as 2.0",
    "00.01.03.04", "000.001.003.004", "0", "0000", "1.0.0-beta", "1.0.0-b", "1.0.0-p1", "1.0.0-pl1",
    "1.0.0-patch1", "1.0.0-stable", "1.0.0-STABLE", "1.0.0-alpha", "1.0.0-a", "1.0.0-a2", "1.0.0-alpha2",
    "1.0.0.0-dev", "1.0.0-dev", "1.0-dev", "1.x-dev", "1.2.x-dev", "2.*-dev", "v1.0.0", "V1.0.0", "v2",
    "1.0.0@dev", "1.0.0@stable", "1.0.0-beta@beta", "20100102", "20100102-203040", "20100102203040-10",
    "201903.0", "201903.0-beta", "201903.0-p2", "99999", "100000", "1.25.0", "1.24.0", "1.10", "1.9",
    // Real packages.
    "1.1.4", "3.0.0", "v5.4.53", "v6.4.1", "2.9.1", "9.5.28", "10.0.0-RC1", "1.27.0", "1.5.0", "7.4.5",
    "4.0.0-beta1", "4.0.0-beta.2", "4.0.0-alpha.3",
    // Branches and refused strings.
    "dev-master", "dev-main", "master", "trunk", "default", "dev-feature/x", "", " ", "foo", "1.0.0.0.0",
    "1.0-foo", "a.b.c", "1.0.0-beta.x", "1.0.0+", "1,0", "1.0 as", "v", "-1", "1.0.0-alpha-beta",
];

#[rustfmt::skip]
const NUMBERS: &[&str] = &["0", "1", "1.0", "1.2", "1.10", "v1.2.3", "2.0.0.1", "2010-01"];
#[rustfmt::skip]
const SEPARATORS: &[&str] = &["", ".", "-", "_"];
#[rustfmt::skip]
const MODIFIERS: &[&str] = &["", "alpha", "a", "beta", "b", "RC", "rc", "patch", "pl", "p", "stable", "dev", "x"];
#[rustfmt::skip]
const SUFFIXES: &[&str] = &["", "1", "2", ".1", "-1", "10", "-dev", "1-dev", "+build"];

const AUTOLOAD: &str = "/usr/share/php/Composer/Semver/autoload.php";

const SCRIPT: &str = r#"
require getenv('SEMVER_AUTOLOAD');
use Composer\Semver\VersionParser;
use Composer\Semver\Comparator;
$p = new VersionParser();
$out = [];
while (($line = fgets(STDIN)) !== false) {
    [$ha, $hb] = explode(' ', rtrim($line, "\n"));
    $a = hex2bin($ha); $b = hex2bin($hb);
    try {
        $na = $p->normalize($a); $nb = $p->normalize($b);
    } catch (UnexpectedValueException $e) {
        $out[] = 'E ' . str_replace("\n", ' ', $e->getMessage());
        continue;
    }
    if (strpos($na, 'dev-') === 0 || strpos($nb, 'dev-') === 0) {
        $out[] = 'E branch';
        continue;
    }
    $out[] = Comparator::lessThan($na, $nb) ? '-1' : (Comparator::greaterThan($na, $nb) ? '1' : '0');
}
echo implode("\n", $out), "\n";
"#;

#[test]
fn composer_matches_composer_semver() {
    let php_ok = Command::new("php").arg("--version").output().is_ok_and(|o| o.status.success());
    if !php_ok || !Path::new(AUTOLOAD).exists() {
        let why = "no php with composer/semver (scripts/install-test-deps.sh installs composer)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED composer_matches_composer_semver: {why}");
        return;
    }
    let versions: Vec<String> = HAND_PICKED.iter().map(|s| s.to_string()).collect();
    let mut corpus: Vec<(String, String)> =
        versions.iter().flat_map(|a| versions.iter().map(move |b| (a.clone(), b.clone()))).collect();
    let generated = product(&[NUMBERS, SEPARATORS, MODIFIERS, SUFFIXES]);
    corpus.extend(pairs(&generated, 20_000, 0x636f_6d70));
    let lines = oracle_lines(
        Command::new("php").args(["-r", SCRIPT]).env("SEMVER_AUTOLOAD", AUTOLOAD),
        &corpus,
        "composer/semver",
    );
    let mut wrong = Vec::new();
    let (mut ordered, mut refused) = (0, 0);
    for ((a, b), line) in corpus.iter().zip(&lines) {
        match (compare(Scheme::Composer, a, b), verdict(line)) {
            (Ok(ours), Ok(theirs)) if ours == theirs => ordered += 1,
            (Err(_), Err(_)) => refused += 1,
            (ours, theirs) => wrong.push(format!("{a:?} vs {b:?}: ours {ours:?}, Composer {theirs:?}")),
        }
    }
    assert!(wrong.is_empty(), "{} of {} pairs differ from Composer:\n{}", wrong.len(), corpus.len(), wrong.join("\n"));
    assert!(ordered > 10_000 && refused > 1_000, "{ordered} ordered, {refused} refused");
    println!("composer: {ordered} pairs ordered and {refused} refused as Composer does");
}
