//! The agent's disk spool: every batch is written here (numbered, fsynced)
//! before it is sent, and removed only once the server acknowledged it. While
//! the server is unreachable batches accumulate; on reconnect they drain in
//! the order they were written. A crash at any point loses nothing that
//! reached the spool: a file is visible only after its bytes are durable
//! (write, fsync, rename, fsync the directory), and a half-written one is
//! discarded at the next start. The spool is bounded: when full, the oldest
//! batches are evicted and counted.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use periscope_proto::v1::Batch;
use prost::Message;

const SUFFIX: &str = ".batch";

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (file number, size), oldest first.
    files: std::collections::VecDeque<(u64, u64)>,
    bytes: u64,
    next: u64,
    /// Batches evicted since the spool was opened.
    pub evicted: u64,
}

fn name(n: u64) -> String {
    format!("{n:020}{SUFFIX}")
}

impl Spool {
    /// Opens (creating) a spool directory, keeping the batches a previous run left.
    pub fn open(dir: impl AsRef<Path>, max_bytes: u64) -> std::io::Result<Spool> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let fname = e.file_name();
            let fname = fname.to_string_lossy();
            if fname.ends_with(".tmp") {
                // Written but never renamed: the crash came before it counted.
                let _ = fs::remove_file(e.path());
                continue;
            }
            if let Some(n) = fname.strip_suffix(SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
                files.push((n, e.metadata()?.len()));
            }
        }
        files.sort();
        let bytes = files.iter().map(|f| f.1).sum();
        let next = files.last().map_or(0, |f| f.0 + 1);
        Ok(Spool { dir, max_bytes, files: files.into(), bytes, next, evicted: 0 })
    }

    /// Batches waiting to be acknowledged.
    pub fn depth(&self) -> usize {
        self.files.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `batches` durably, in order; returns how many older batches
    /// were evicted to stay within the size limit.
    pub fn push(&mut self, batches: &[Batch]) -> std::io::Result<u64> {
        let mut w = self.writer();
        for b in batches {
            w.write(b)?;
        }
        w.finish()
    }

    /// Appends batches one at a time (each durable once its file is renamed);
    /// [`Writer::finish`] syncs the directory and evicts what no longer fits.
    pub fn writer(&mut self) -> Writer<'_> {
        Writer { spool: self, written: 0 }
    }

    /// Up to `max_bytes` (at least one) of the oldest batches, with their file numbers.
    /// A file that cannot be read back is dropped, counted as evicted.
    pub fn peek(&mut self, max_bytes: u64) -> Vec<(u64, Batch)> {
        let mut out = Vec::new();
        let mut total = 0;
        let mut bad = Vec::new();
        for &(n, len) in &self.files {
            if !out.is_empty() && total + len > max_bytes {
                break;
            }
            match fs::read(self.dir.join(name(n))).map(|b| Batch::decode(b.as_slice())) {
                Ok(Ok(b)) => {
                    total += len;
                    out.push((n, b));
                }
                _ => bad.push(n),
            }
        }
        for n in bad {
            tracing::warn!("spool file {} is unreadable; dropped", name(n));
            self.evicted += 1;
            self.remove(n);
        }
        out
    }

    /// Forgets an acknowledged batch.
    pub fn remove(&mut self, n: u64) {
        if let Some(i) = self.files.iter().position(|f| f.0 == n) {
            let (_, len) = self.files.remove(i).expect("index in range");
            self.bytes -= len;
            let _ = fs::remove_file(self.dir.join(name(n)));
        }
    }
}

/// Batches being appended to a [`Spool`] (see [`Spool::writer`]).
pub struct Writer<'a> {
    spool: &'a mut Spool,
    written: usize,
}

impl Writer<'_> {
    pub fn write(&mut self, b: &Batch) -> std::io::Result<()> {
        let s = &mut *self.spool;
        let n = s.next;
        s.next += 1;
        let tmp = s.dir.join(format!(".{}.tmp", name(n)));
        let bytes = b.encode_to_vec();
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, s.dir.join(name(n)))?;
        s.files.push_back((n, bytes.len() as u64));
        s.bytes += bytes.len() as u64;
        self.written += 1;
        Ok(())
    }

    /// Takes back the batches this writer wrote (a send that failed part
    /// way must not leave half of a crawl to be delivered), then finishes.
    pub fn abandon(self) -> std::io::Result<u64> {
        let s = &mut *self.spool;
        for _ in 0..self.written {
            let (n, len) = s.files.pop_back().expect("written here");
            let _ = fs::remove_file(s.dir.join(name(n)));
            s.bytes -= len;
        }
        Writer { spool: self.spool, written: 0 }.finish()
    }

    /// Makes the new files' names durable; returns how many older batches
    /// were evicted to stay within the size limit.
    pub fn finish(self) -> std::io::Result<u64> {
        let s = self.spool;
        File::open(&s.dir)?.sync_all()?;
        let mut evicted = 0;
        // Oldest first, but never the batches just written.
        while s.bytes > s.max_bytes && s.files.len() > self.written {
            let (n, len) = s.files.pop_front().expect("non-empty");
            let _ = fs::remove_file(s.dir.join(name(n)));
            s.bytes -= len;
            evicted += 1;
        }
        s.evicted += evicted;
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(seq: u64, size: usize) -> Batch {
        Batch { seq, arrow_ipc: vec![7; size], table: "os".into(), ..Default::default() }
    }

    #[test]
    fn batches_survive_a_reopen_in_order_and_acknowledged_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.push(&[batch(1, 10), batch(2, 10)]).unwrap();
        s.push(&[batch(3, 10)]).unwrap();
        // A crash mid-write leaves a temporary file; it never counts.
        fs::write(dir.path().join(".00000000000000000009.batch.tmp"), b"partial").unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.depth(), 3);
        let got = s.peek(u64::MAX);
        assert_eq!(got.iter().map(|(_, b)| b.seq).collect::<Vec<_>>(), [1, 2, 3]);
        s.remove(got[0].0);
        s.push(&[batch(4, 10)]).unwrap();
        let s2 = Spool::open(dir.path(), 1 << 20).unwrap();
        drop(s2);
        assert_eq!(s.peek(u64::MAX).iter().map(|(_, b)| b.seq).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(!dir.path().join(".00000000000000000009.batch.tmp").exists());
        // peek bounds the bytes it reads, but always returns at least one.
        assert_eq!(s.peek(1).len(), 1);
    }

    #[test]
    fn a_full_spool_evicts_the_oldest_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(1, 1000).encode_to_vec().len() as u64;
        let mut s = Spool::open(dir.path(), 3 * one).unwrap();
        assert_eq!(s.push(&[batch(1, 1000), batch(2, 1000), batch(3, 1000)]).unwrap(), 0);
        assert_eq!(s.push(&[batch(4, 1000), batch(5, 1000)]).unwrap(), 2);
        assert_eq!(s.evicted, 2);
        assert_eq!(s.peek(u64::MAX).iter().map(|(_, b)| b.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(s.bytes() <= 3 * one);
    }
}
