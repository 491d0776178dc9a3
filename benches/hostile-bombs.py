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
         Description (issue 21);
and the second review's roots (see `review_bombs`): rpmsparse, rpmsqlsparse,
rpmold, rpmsort, composer4, composer30, nuget15, group16, passwd16, owners,
rpmsqlpad, rpmpaths.
The review's nested .ear and 100-layer image are built by the tests
(agent/tests/memory.rs, agent/src/layers.rs).
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


def rpm_blob(name, add_entries=(), tail=b""):
    """An rpm header blob of NAME, VERSION, RELEASE and `add_entries`
    ((tag, type, count, payload) each), then `tail` bytes of data."""
    entries, data = [], bytearray()
    for tag, ty, count, payload in [(1000, 6, 1, name.encode() + b"\0"), (1001, 6, 1, b"1\0"), (1002, 6, 1, b"1\0"),
                                    *add_entries]:
        entries.append((tag, ty, len(data), count))
        data.extend(payload)
    data.extend(tail)
    return struct.pack(">II", len(entries), len(data)) + b"".join(struct.pack(">IIII", *e) for e in entries) + data


def sqlite_db(path, schema, rows=(), default_blob=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    db.execute(schema)
    db.executemany("INSERT INTO Packages (hnum) VALUES (?)", ((h,) for h in rows))
    db.commit()
    if default_blob is not None:
        db.execute(f"ALTER TABLE Packages ADD COLUMN blob BLOB NOT NULL DEFAULT x'{default_blob.hex()}'")
        db.commit()
    return db


def review_bombs(top):
    """The second review's roots (issue 24): each was a few MB of input, or
    compresses to that in an image layer."""
    def put(root, rel, data):
        p = os.path.join(top, root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    # rpm databases of 250 MB, sparse: BerkeleyDB, and sqlite with its magic.
    os.truncate(put("rpmsparse", "var/lib/rpm/Packages", b""), 250 << 20)
    os.truncate(put("rpmsqlsparse", "var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0"), 250 << 20)
    # A header of 3,000,000 empty OLDFILENAMES (3 MB).
    db = sqlite_db(os.path.join(top, "rpmold/var/lib/rpm/rpmdb.sqlite"),
                   "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
    db.execute("INSERT INTO Packages VALUES (1, ?)", (rpm_blob("old", [(1027, 8, 3_000_000, b"\0" * 3_000_000)]),))
    db.commit()
    # hnum not the table's key, 200,000 rows taking a 1 MiB header from the column DEFAULT (4 MB).
    sqlite_db(os.path.join(top, "rpmsort/var/lib/rpm/rpmdb.sqlite"), "CREATE TABLE Packages (hnum INTEGER)",
              range(200_000, 0, -1), rpm_blob("s", [(1009, 4, 1, b"\0\0\0\1")], b"\0" * (1 << 20))).close()
    # JSON manifests: [0,0,…] as installed.json (4 and 30 MB), 1.3M keys in a deps.json (16 MB).
    for name, mb in [("composer4", 4), ("composer30", 30)]:
        put(name, "app/vendor/composer/installed.json", b"[" + b"0," * ((mb << 20) // 2 - 2) + b"0]")
    put("nuget15", "app/x.deps.json", b'{"libraries":{' + b",".join(b'"%x/1":0' % i for i in range(1_300_000)) + b"}}")
    # Account files: 16 MB of one-letter group members, a million passwd lines.
    line = b"g:x:1:" + b"a," * 32000 + b"\n"
    put("group16", "etc/group", line * ((16 << 20) // len(line)))
    put("passwd16", "etc/passwd", b"a:x:0:0:b:/c:/d\n" * ((16 << 20) // 16))
    # One dpkg package owning 1,000,000 paths through the merged-/usr /bin link (12 MB).
    put("owners", "var/lib/dpkg/status", b"Package: p\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n")
    put("owners", "var/lib/dpkg/info/p.list", b"".join(b"/bin/%07d\n" % i for i in range(1_000_000)))
    os.makedirs(os.path.join(top, "owners/usr/bin"), exist_ok=True)
    if not os.path.islink(os.path.join(top, "owners/bin")):
        os.symlink("usr/bin", os.path.join(top, "owners/bin"))
    # A valid one-package rpmdb.sqlite padded with zeros to 250 MB (a few hundred KB in a layer).
    sqlite_db(os.path.join(top, "rpmsqlpad/var/lib/rpm/rpmdb.sqlite"),
              "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)").close()
    db = sqlite3.connect(os.path.join(top, "rpmsqlpad/var/lib/rpm/rpmdb.sqlite"))
    db.execute("INSERT INTO Packages VALUES (1, ?)", (rpm_blob("pad"),))
    db.commit()
    db.close()
    os.truncate(os.path.join(top, "rpmsqlpad/var/lib/rpm/rpmdb.sqlite"), 250 << 20)
    # 200 headers of 100,000 files each in one 18-byte directory: every header's
    # list within the 8x expansion its data allows (0.5 MB of data, 5 MB of
    # paths), 1 GB of paths in all from a 100 MB file of mostly zeros.
    n = 100_000
    files = [(1116, 4, n, b"\0" * (4 * n)), (1117, 8, n, b"\0" * n), (1118, 8, 1, b"/" + b"d" * 16 + b"/\0")]
    db = sqlite_db(os.path.join(top, "rpmpaths/var/lib/rpm/rpmdb.sqlite"),
                   "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
    db.executemany("INSERT INTO Packages VALUES (?, ?)", ((i, rpm_blob("p%02d" % (i % 100), files)) for i in range(200)))
    db.commit()
    db.close()
    for b in ["rpmsparse", "rpmsqlsparse", "rpmold", "rpmsort", "composer4", "composer30", "nuget15", "group16",
              "passwd16", "owners", "rpmsqlpad", "rpmpaths"]:
        put(b, "etc/os-release", b"ID=bomb\n")


if __name__ == "__main__":
    top = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/bombs"
    main(top)
    review_bombs(top)
