//! Every parser of untrusted bytes, fed thousands of mutations of valid
//! inputs (bit flips, truncations, splices, repeated and deleted ranges):
//! none may panic. A deterministic, CI-sized cousin of the cargo-fuzz targets
//! in fuzz/ (see fuzz/README.md for the long-running version).

mod common;

use periscope_agent::collectors::{accounts, apk, dpkg, gem, java, os, rpm};

/// xorshift64*: deterministic, so a failure reproduces with the printed case number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(len + 1)),
            2 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0x00, 0xff, 0x7f, 0x80, b'\n', b':', b' '][rng.below(7)];
            }
            3 if len > 1 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a).min(64);
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk.iter().cycle().take(chunk.len() * (1 + rng.below(4))).copied());
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let b = a + rng.below(len - a);
                v.drain(a..b);
            }
            _ => {
                let at = rng.below(len + 1);
                let bytes: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    v
}

fn run(name: &str, seeds: &[Vec<u8>], cases: usize, f: impl Fn(&[u8])) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for s in seeds {
        f(s);
    }
    for case in 0..cases {
        let seed = &seeds[case % seeds.len()];
        let input = mutate(seed, &mut rng);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input)));
        assert!(
            r.is_ok(),
            "{name}: panic on mutation case {case} (input {} bytes: {:?}...)",
            input.len(),
            &input[..input.len().min(64)]
        );
    }
}

fn text(f: impl Fn(&str)) -> impl Fn(&[u8]) {
    move |b| f(&String::from_utf8_lossy(b))
}

#[test]
fn text_parsers_never_panic() {
    let root = common::debian_rootfs();
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    let status = read("var/lib/dpkg/status");
    run(
        "dpkg",
        &[status[..status.len().min(20_000)].to_vec(), b"Package: a\nVersion: 1:2-3\nSource: b (4)\n".to_vec()],
        3000,
        |t| {
            let _ = dpkg::parse_status(t);
        },
    );
    let apk_db = b"C:Q1x=\nP:musl\nV:1.2.5-r0\nA:x86_64\nS:1\nI:2\nT:t\nF:lib\nR:ld.so\na:0:0:755\nR:libc.so\n\nP:b\nV:1\nF:usr/bin\nR:x\n".to_vec();
    run("apk", &[apk_db], 3000, |t| {
        let _ = apk::parse_installed(t);
    });
    let accts = [read("etc/passwd"), read("etc/group"), read("etc/shadow")];
    run(
        "accounts",
        &accts,
        3000,
        text(|t| {
            let _ = accounts::parse_passwd(t);
            let _ = accounts::parse_group(t);
            let _ = accounts::parse_shadow(t);
        }),
    );
    run(
        "os-release",
        &[read("usr/lib/os-release")],
        2000,
        text(|t| {
            let _ = os::parse_os_release(t);
        }),
    );
}

#[test]
fn rpm_readers_never_panic() {
    // Seeds are garbage-shaped headers here; the rpm module's own tests build valid ones.
    let mut header = Vec::new();
    header.extend(2u32.to_be_bytes());
    header.extend(8u32.to_be_bytes());
    for (tag, ty, off, count) in [(1000u32, 6u32, 0u32, 1u32), (1003, 4, 4, 1)] {
        for x in [tag, ty, off, count] {
            header.extend(x.to_be_bytes());
        }
    }
    header.extend(b"bash\0\0\0\0");
    let seeds = vec![
        header.clone(),
        [b"RpmP".as_slice(), &[0; 60]].concat(),
        [[0u8; 12].as_slice(), &0x061561u32.to_le_bytes(), &[0; 496]].concat(),
    ];
    run("rpm header", &seeds, 3000, |b| {
        let _ = rpm::parse_header(b);
    });
    run("rpm ndb", &seeds, 1500, |b| {
        let _ = rpm::read_ndb(b);
    });
    run("rpm bdb", &seeds, 1500, |b| {
        let _ = rpm::read_bdb(b);
    });
    run("rpm sqlite", &[b"SQLite format 3\0".to_vec()], 300, |b| {
        let _ = rpm::read_sqlite(b);
    });
}

/// Java archives: small real jars of this host's /usr/share/java, and one of
/// them stored inside another (the nested path), mutated anywhere — the
/// central directory, local headers, deflate streams, pom.properties.
#[test]
fn java_archive_reader_never_panics() {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir("/usr/share/java")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jar") && !p.is_symlink())
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() < 16 << 10))
        .take(4)
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    if seeds.is_empty() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "no small jar in /usr/share/java");
        eprintln!("SKIPPED java_archive_reader_never_panics: no small jar in /usr/share/java");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inner.jar"), &seeds[0]).unwrap();
    let zipped = std::process::Command::new("zip")
        .args(["-q", "-0", "outer.jar", "inner.jar"])
        .current_dir(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if zipped {
        seeds.push(std::fs::read(dir.path().join("outer.jar")).unwrap());
    }
    run("java archives", &seeds, 3000, |b| {
        let _ = java::read_archive(&b.to_vec(), "", "x.jar", 0, &mut java::Work::default());
    });
    run(
        "java text",
        &[
            b"groupId=g\nartifactId=a\\\n  b\nversion=\\u0031\n".to_vec(),
            b"Manifest-Version: 1.0\r\nBundle-Version: 1\r\n x\r\n\r\n".to_vec(),
        ],
        3000,
        text(|t| {
            let _ = java::parse_properties(t);
            let _ = java::from_manifest(&java::parse_manifest(t), t);
        }),
    );
}

#[test]
fn gemspec_reader_never_panics() {
    let seed = b"# stub: rake 13.0.6 ruby lib\nGem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = '13.0.6'\n  s.licenses = [\"MIT\".freeze, 'a\\'b']\n  s.summary = \"x\\\"y\\n\".freeze\nend\n";
    run(
        "gemspec",
        &[seed.to_vec()],
        3000,
        text(|t| {
            let _ = gem::parse(t);
        }),
    );
}

/// The library banner scanner: no panic, and the same findings whether a
/// file comes in one piece or in chunks split anywhere (banners across reads).
#[test]
fn banner_scanner_never_panics_and_chunking_never_changes_what_it_finds() {
    let seeds: Vec<Vec<u8>> = [
        &b"\0OpenSSL 3.0.19 27 Jan 2026\0\x003.0.19\0 deflate 1.2.13 Copyright 1995-2022 Jean-loup Gailly \0"[..],
        b"\0OpenSSL 1.1.1 (compatible; BoringSSL)\0\0LibreSSL 3.8.2\0\0libcurl/7.88.1\0CLIENT libcurl 7.88.1\r\n",
        b"\nlibpng version 1.6.39\n\0expat_2.5.0\0BusyBox v1.35.0 (Debian)\0",
        b"GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n\0musl libc (x86_64)\0\x001.2.3\0",
        b"\x003.40.1\0SQLite format 3\0::20914\0compiled against libxml %d using libxml %d\n\0",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    let split = std::cell::Cell::new(0u64);
    run("banners", &seeds, 20_000, |b| {
        let whole = periscope_banners::scan_bytes(b);
        let s = split.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        split.set(s);
        let size = 1 + (s >> 33) as usize % (b.len() + 1);
        let mut scanner = periscope_banners::Scanner::new();
        for chunk in b.chunks(size) {
            scanner.feed(chunk);
        }
        assert_eq!(scanner.finish(), whole, "chunks of {size}");
    });
}
