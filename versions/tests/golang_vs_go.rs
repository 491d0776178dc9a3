//! Go module version ordering checked against Go's own implementation:
//! `golang.org/x/mod/semver`, as vendored in the Go toolchain's source tree
//! (`$GOROOT/src/cmd/vendor/golang.org/x/mod/semver`, Debian's golang-go;
//! scripts/install-test-deps.sh installs it), compiled into a small program
//! that compares every pair of a corpus of tricky versions. Where Go's
//! `IsValid` says no, ours must refuse; everywhere else the order must be Go's.

use std::io::Write;
use std::process::{Command, Stdio};

use periscope_versions::{Scheme, compare};

const CORPUS: &[&str] = &[
    "v0.0.0",
    "v0.0.1",
    "v0.1",
    "v0.1.0",
    "v1",
    "v1.0",
    "v1.0.0",
    "v1.0.0-alpha",
    "v1.0.0-alpha.1",
    "v1.0.0-alpha.beta",
    "v1.0.0-beta",
    "v1.0.0-beta.2",
    "v1.0.0-beta.11",
    "v1.0.0-rc.1",
    "v1.0.0-0",
    "v1.0.0-1",
    "v1.0.0-11",
    "v1.0.0-a-b",
    "v1.0.0-A",
    "v1.0.0+build.1",
    "v1.0.0-rc.1+build.1",
    "v1.2.3",
    "v1.2.4-0.20191109021931-daa7c04131f5",
    "v1.2.4-pre.0.20191109021931-daa7c04131f5",
    "v1.2.4",
    "v0.0.0-20191109021931-daa7c04131f5",
    "v0.0.0-20200101000000-000000000000",
    "v2.0.0+incompatible",
    "v2.0.0",
    "v2.0.1-0.20200101000000-abcdefabcdef+incompatible",
    "v10.0.0",
    "v9.99.999",
    "v18446744073709551616.0.0",
    "v18446744073709551615.0.0",
    // Invalid, as Go says: each must be refused.
    "1.0.0",
    "v",
    "v1.2-pre",
    "v1.2+meta",
    "v01.0.0",
    "v1.00.0",
    "v1.0.0-01",
    "v1.0.0-",
    "v1.0.0+",
    "v1.0.0-a..b",
    "v1.0.0-a_b",
    "v1.0.0+a+b",
    "V1.0.0",
    "(devel)",
    "",
];

const MAIN_GO: &str = r#"package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"oracle/semver"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.SplitN(in.Text(), "\t", 2)
		fmt.Println(semver.Compare(f[0], f[1]), semver.IsValid(f[0]), semver.IsValid(f[1]))
	}
}
"#;

/// A scratch directory removed when dropped.
struct Scratch(std::path::PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn golang_matches_x_mod_semver() {
    let goroot = Command::new("go").args(["env", "GOROOT"]).output();
    let Ok(goroot) = goroot.map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string()) else {
        let why = "no go toolchain (scripts/install-test-deps.sh installs golang-go)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED golang_matches_x_mod_semver: {why}");
        return;
    };
    let src = std::path::Path::new(&goroot).join("src/cmd/vendor/golang.org/x/mod/semver/semver.go");
    let dir = Scratch(std::env::temp_dir().join(format!("periscope-go-semver-{}", std::process::id())));
    std::fs::create_dir_all(dir.0.as_path().join("semver")).unwrap();
    std::fs::copy(&src, dir.0.as_path().join("semver/semver.go")).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    std::fs::write(dir.0.as_path().join("go.mod"), "module oracle\n\ngo 1.19\n").unwrap();
    std::fs::write(dir.0.as_path().join("main.go"), MAIN_GO).unwrap();
    let pairs: Vec<(&str, &str)> = CORPUS.iter().flat_map(|&a| CORPUS.iter().map(move |&b| (a, b))).collect();
    let mut child = Command::new("go")
        .args(["run", "."])
        .current_dir(dir.0.as_path())
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), pairs.len());
    let (mut wrong, mut checked) = (Vec::new(), 0);
    for ((a, b), line) in pairs.iter().zip(&lines) {
        let f: Vec<&str> = line.split(' ').collect();
        let (go, valid) = (f[0].parse::<i32>().unwrap(), f[1] == "true" && f[2] == "true");
        match (compare(Scheme::Golang, a, b), valid) {
            (Ok(o), true) => {
                checked += 1;
                if o as i32 != go {
                    wrong.push(format!("{a:?} vs {b:?}: ours {o:?}, Go {go}"));
                }
            }
            (Err(_), false) => {}
            (r, _) => wrong.push(format!("{a:?} vs {b:?}: ours {r:?}, Go valid={valid}")),
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(wrong.is_empty(), "{} of {} pairs differ:\n{}", wrong.len(), pairs.len(), wrong.join("\n"));
}
