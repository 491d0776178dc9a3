#!/usr/bin/env python3
"""Builds the row, CPU and memory bombs of issue 24 (items 3, 4 and 6) as root
filesystems under DIR, to measure what a crawl of each costs (peak RSS, CPU):

    python3 benches/hostile-bombs.py DIR
    for b in statusd apk rpm longpaths ffnames dpkgff manyexec manyssh desc; do
        /usr/bin/time -f "$b %e s wall %U+%S s CPU %M KB" \
            periscope-agent crawl --print --scope image --scope-id $b --root DIR/$b > /dev/null
    done

statusd: one distroless status.d file of 2,000 stanzas with 200-byte names and a
         2,000-line md5sums (4 million package_files rows when read per stanza);
apk:     a 64 KB F: directory followed by 40,000 one-letter R: lines
         (2.6 GB of joined paths from a 220 KB database);
rpm:     a 700 KB rpmdb.sqlite whose 20,000 rows store no blob and take a
         260 KB header (20,000 files) from the column's DEFAULT;
longpaths: 60 nested 255-byte directory names under /etc/ssh and under /usr/lib,
         15,000 empty executables with 255-byte names at the bottom of each
         (15 KB paths: every file is kept by `files` or `unowned_files`);
ffnames: the same with names of 0xff bytes (61 KB of escaped text per path),
         8,000 files each;
dpkgff:  a 256,000,000-byte /var/lib/dpkg/status of 0xff bytes (under the
         256 MiB per-file budget);
manyexec: 500,000 empty executables in /usr/bin (issue 21: 500,000
         unowned_files rows);
manyssh: 500,000 empty files under /etc/ssh (all matched by the files
         collector's /etc/ssh/**);
desc:    a 190 MB dpkg status of two packages, one with a 190 MB
         Description (issue 21).
Nothing here is run by the test suite; the regression tests build smaller
bombs of their own (agent/tests/hostile.rs, agent/src/collectors/).
"""
import os
import sqlite3
import struct
import sys


def header(name, files):
    """An rpm header blob (no lead, no magic): NAME, VERSION, RELEASE and a file list."""
    entries, data = [], bytearray()

    def add(tag, ty, count, payload, align=1):
        while len(data) % align:
            data.append(0)
        entries.append((tag, ty, len(data), count))
        data.extend(payload)

    def strs(v):
        return b"".join(s.encode() + b"\0" for s in v)

    add(1000, 6, 1, strs([name]))
    add(1001, 6, 1, strs(["1"]))
    add(1002, 6, 1, strs(["1"]))
    add(1116, 4, len(files), b"".join(struct.pack(">I", 0) for _ in files), 4)
    add(1117, 8, len(files), strs(files))
    add(1118, 8, 1, strs(["/usr/share/bomb/"]))
    out = struct.pack(">II", len(entries), len(data))
    out += b"".join(struct.pack(">IIII", *e) for e in entries)
    return out + bytes(data)


def deep_tree(start, name, depth, files):
    """`depth` directories named `name` nested under `start`, then `files`
    empty executables with 255-byte names (made through descriptors: the
    paths outgrow PATH_MAX). Left as is when already there."""
    os.makedirs(start, exist_ok=True)
    fd = os.open(start, os.O_DIRECTORY)
    for _ in range(depth):
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
        except FileExistsError:
            pass
        sub = os.open(name, os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    for i in range(files):
        f = b"%06d" % i + name[:249]
        os.close(os.open(f, os.O_CREAT | os.O_WRONLY, 0o755, dir_fd=fd))
    os.close(fd)


def main(top):
    d = os.path.join(top, "statusd/var/lib/dpkg/status.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "bomb"), "w") as f:
        f.write(("Package: " + "n" * 200 + "\nVersion: 1\n\n") * 2000)
    with open(os.path.join(d, "bomb.md5sums"), "w") as f:
        f.writelines(f"d41d8cd98f00b204e9800998ecf8427e  usr/lib/f{i}\n" for i in range(2000))

    d = os.path.join(top, "apk/lib/apk/db")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "installed"), "w") as f:
        f.write("P:bomb\nV:1\nF:" + "d" * 65000 + "\n" + "R:a\n" * 40000 + "\n")

    d = os.path.join(top, "rpm/var/lib/rpm")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "rpmdb.sqlite")
    if os.path.exists(path):
        os.remove(path)
    blob = header("bomb", [f"f{i:08d}" for i in range(20000)])
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT)")
    db.executemany("INSERT INTO Packages DEFAULT VALUES", ([] for _ in range(20000)))
    db.commit()
    db.execute(f"ALTER TABLE Packages ADD COLUMN blob BLOB NOT NULL DEFAULT x'{blob.hex()}'")
    db.commit()
    db.close()
    for b, name, files in [("longpaths", b"d" * 255, 15000), ("ffnames", b"\xff" * 255, 8000)]:
        for under in ["etc/ssh", "usr/lib"]:
            deep_tree(os.path.join(top, b, under), name, 60, files)

    d = os.path.join(top, "dpkgff/var/lib/dpkg")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "status"), "wb") as f:
        chunk = b"\xff" * (1 << 20)
        for _ in range(256_000_000 // len(chunk)):
            f.write(chunk)
        f.write(b"\xff" * (256_000_000 % len(chunk)))
    for b, d in [("manyexec", "usr/bin"), ("manyssh", "etc/ssh")]:
        d = os.path.join(top, b, d)
        os.makedirs(d, exist_ok=True)
        fd = os.open(d, os.O_DIRECTORY)
        for i in range(500_000):
            try:
                os.close(os.open("e%07d" % i, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o755, dir_fd=fd))
            except FileExistsError:
                pass
        os.close(fd)

    d = os.path.join(top, "desc/var/lib/dpkg")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "status"), "wb") as f:
        f.write(b"Package: big\nStatus: install ok installed\nVersion: 1\nDescription: ")
        chunk = b"x" * (1 << 20)
        for _ in range(190):
            f.write(chunk)
        f.write(b"\n more\n\nPackage: small\nStatus: install ok installed\nVersion: 2\n")
    for b in ["statusd", "apk", "rpm", "longpaths", "ffnames", "dpkgff", "manyexec", "manyssh", "desc"]:
        os.makedirs(os.path.join(top, b, "etc"), exist_ok=True)
        with open(os.path.join(top, b, "etc/os-release"), "w") as f:
            f.write("ID=bomb\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/bombs")
