//! Helpers shared by the oracle tests: a deterministic corpus of version pairs
//! built from lists of components, and quoting for the shell.

#![allow(dead_code)]

use std::cmp::Ordering;

/// splitmix64: small, deterministic, and good enough to pick pairs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every concatenation of one entry from each list, in nested order, so that
/// neighbours in the result differ only in their last components.
pub fn product(lists: &[&[&str]]) -> Vec<String> {
    let mut out = vec![String::new()];
    for list in lists {
        out = out.iter().flat_map(|prefix| list.iter().map(move |part| format!("{prefix}{part}"))).collect();
    }
    out
}

/// `count` pairs drawn from `versions`: half near neighbours (which share a
/// long prefix, so the comparison is decided late), a tenth identical, the rest
/// anywhere.
pub fn pairs(versions: &[String], count: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = Rng::new(seed);
    let n = versions.len();
    (0..count)
        .map(|_| {
            let i = rng.below(n);
            let j = match rng.below(10) {
                0 => i,
                1..=5 => (i + 1 + rng.below(40)) % n,
                _ => rng.below(n),
            };
            if rng.below(2) == 0 {
                (versions[i].clone(), versions[j].clone())
            } else {
                (versions[j].clone(), versions[i].clone())
            }
        })
        .collect()
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Hex of the UTF-8 bytes, to pass any string through a line-based pipe.
pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn ordering_name(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "lt",
        Ordering::Equal => "eq",
        Ordering::Greater => "gt",
    }
}

/// The repository's top directory (for scripts/).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// What `oracle` (a reference implementation's program) prints for each pair
/// of `corpus`, one line per pair: the pairs go to its stdin hex-encoded, `A B`
/// per line, from a thread of their own so that neither side waits on a full pipe.
pub fn oracle_lines(oracle: &mut std::process::Command, corpus: &[(String, String)], what: &str) -> Vec<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = oracle
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run the {what} oracle: {e}"));
    let input: String = corpus.iter().map(|(a, b)| format!("{} {}\n", hex(a), hex(b))).collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait for the oracle");
    writer.join().unwrap().unwrap_or_else(|e| panic!("feed the {what} oracle: {e}"));
    assert!(out.status.success(), "the {what} oracle failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> =
        String::from_utf8(out.stdout).expect("oracle output is UTF-8").lines().map(str::to_string).collect();
    assert_eq!(lines.len(), corpus.len(), "one verdict per pair");
    lines
}

/// An oracle's `-1`, `0` or `1` as an ordering; `E why` (it refused a version) as the reason.
pub fn verdict(line: &str) -> Result<Ordering, String> {
    match line {
        "-1" => Ok(Ordering::Less),
        "0" => Ok(Ordering::Equal),
        "1" => Ok(Ordering::Greater),
        other => Err(other.trim_start_matches("E ").to_string()),
    }
}
