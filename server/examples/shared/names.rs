//! Package names of the benchmarks' synthetic hosts: a Debian base system's.

pub const NAMES: &[&str] = &[
    "bash",
    "coreutils",
    "libc6",
    "openssl",
    "libssl3",
    "zlib1g",
    "tzdata",
    "ca-certificates",
    "curl",
    "libcurl4",
    "python3.11",
    "perl-base",
    "gzip",
    "tar",
    "sed",
    "grep",
    "dpkg",
    "apt",
    "libsystemd0",
    "util-linux",
];
