//! Change-only sends. The agent remembers, per (scope, table), a digest of
//! the rows it last handed to the spool (which delivers them, in order, or
//! says it evicted them, and then everything is forgotten). A table whose rows are the same
//! again is not resent: the crawl carries one `unchanged` row naming it and
//! the crawl that last sent it, and the server's current-state views read it
//! from there. A table that emptied is simply absent from the new crawl.
//! `inherited` rows are always sent: each crawl names the tables it shares
//! with its image itself.

use std::collections::HashMap;

use arrow_array::RecordBatch;
use periscope_proto::tables::{self, CRAWLS, INHERITED, UNCHANGED};

use crate::collectors::Sink;
use crate::crawl::{Crawl, table_of};
use crate::encode::Value;
use crate::rows::Rows;

type Key = (String, String, String, &'static str);

/// What one scope's table last looked like on the server: the digest of its
/// rows and the crawl_time of the crawl that carried them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sent {
    digest: [u8; 32],
    since_us: i64,
}

#[derive(Debug, Default)]
pub struct Tracker {
    sent: HashMap<Key, Sent>,
}

/// A crawl rewritten for sending, and what to remember once it is spooled.
#[derive(Debug, Default)]
pub struct Reduced<'a> {
    /// What to send, in order: a crawl's table is read back (see [`Rows`]) only as it is sent.
    pub parts: Vec<Part<'a>>,
    pub tables_sent: usize,
    pub tables_unchanged: usize,
    /// Of the unchanged, those not even read (see [`crate::fingerprint`]).
    pub tables_unread: usize,
    pending: Vec<(Key, Option<Sent>)>,
}

/// Batches to send: one made for the send, or one table of a crawl.
#[derive(Debug)]
pub enum Part<'a> {
    Batch(RecordBatch),
    Table(&'a Rows, &'static tables::Table),
}

impl Part<'_> {
    fn table(&self) -> &'static tables::Table {
        match self {
            Part::Batch(b) => table_of(b),
            Part::Table(_, t) => t,
        }
    }
}

impl<'a> Reduced<'a> {
    pub fn extend(&mut self, other: Reduced<'a>) {
        self.parts.extend(other.parts);
        self.tables_sent += other.tables_sent;
        self.tables_unchanged += other.tables_unchanged;
        self.tables_unread += other.tables_unread;
        self.pending.extend(other.pending);
    }

    /// Every batch to send, all in memory at once (for tests).
    pub fn batches(&self) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for p in &self.parts {
            match p {
                Part::Batch(b) => out.push(b.clone()),
                Part::Table(rows, t) => out.extend(rows.of_table(t).map(|b| b.expect("spilled rows read back"))),
            }
        }
        out
    }
}

/// Merges batches of one table into one batch, so many small scopes cost one
/// schema and one set of compressed buffers on the wire. Data tables keep
/// their first-seen order; `unchanged` and then `crawls` go last, so every
/// crawl's completion marker still arrives after its rows.
pub fn coalesce(batches: Vec<RecordBatch>) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    coalesce_into(batches.into_iter().map(Part::Batch).collect(), |b| {
        out.push(b);
        Ok(())
    })
    .expect("batches in memory");
    out
}

/// [`coalesce`] of `parts`, each merged batch handed to `emit` as soon as it
/// is made: a crawl's spilled tables are read back one batch at a time, so
/// what this holds is bounded by [`MERGE_BYTES`], not by the crawls' size.
pub fn coalesce_into(
    parts: Vec<Part<'_>>,
    mut emit: impl FnMut(RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut groups: Vec<(&'static tables::Table, Vec<Part<'_>>)> = Vec::new();
    for p in parts {
        let t = p.table();
        match groups.iter_mut().find(|(x, _)| x.name == t.name) {
            Some((_, v)) => v.push(p),
            None => groups.push((t, vec![p])),
        }
    }
    let rank = |t: &tables::Table| match t.name {
        n if n == UNCHANGED.name => 1,
        n if n == CRAWLS.name => 2,
        _ => 0,
    };
    groups.sort_by_key(|(t, _)| rank(t));
    for (_, v) in groups {
        // Merged up to a bound: many scopes' rows of one table must not make
        // a string column past Arrow's 2 GiB offsets (a panic in concat).
        let mut run: Vec<RecordBatch> = Vec::new();
        let mut size = 0;
        let mut add = |b: RecordBatch, run: &mut Vec<RecordBatch>| -> anyhow::Result<()> {
            let n = b.get_array_memory_size();
            if !run.is_empty() && size + n > MERGE_BYTES {
                emit(merge(std::mem::take(run)))?;
                size = 0;
            }
            size += n;
            run.push(b);
            Ok(())
        };
        for p in v {
            match p {
                Part::Batch(b) => add(b, &mut run)?,
                Part::Table(rows, t) => {
                    for b in rows.of_table(t) {
                        let b =
                            b.map_err(|e| anyhow::anyhow!("cannot read back a crawl's spilled {} rows: {e}", t.name))?;
                        add(b, &mut run)?;
                    }
                }
            }
        }
        if !run.is_empty() {
            emit(merge(run))?;
        }
    }
    Ok(())
}

/// Most bytes of batches [`coalesce`] merges into one (and so holds at once).
pub const MERGE_BYTES: usize = 8 << 20;

fn merge(v: Vec<RecordBatch>) -> RecordBatch {
    if v.len() == 1 {
        v.into_iter().next().expect("one")
    } else {
        arrow_select::concat::concat_batches(v[0].schema_ref(), &v).expect("batches of one declared schema")
    }
}

impl Tracker {
    /// The batches to send for `crawl`: changed tables in full, an
    /// `unchanged` row for each table equal to what the server has, the
    /// `crawls` row last.
    pub fn reduce<'a>(&self, crawl: &'a Crawl) -> Reduced<'a> {
        let c = &crawl.common;
        let key = |t: &'static str| (c.host.clone(), c.scope.clone(), c.scope_id.clone(), t);
        let rows = &crawl.batches;
        let tables = rows.tables();
        let mut out = Reduced::default();
        let mut marker = Sink::new(c.clone());
        let mut crawls_parts = Vec::new();
        for &t in &tables {
            if t.name == CRAWLS.name {
                crawls_parts.push(Part::Table(rows, t));
                continue;
            }
            if t.name == INHERITED.name {
                // A few bytes, always sent: a crawl's inherited tables stand
                // for its rows, so the server never follows them back in time.
                out.parts.push(Part::Table(rows, t));
                continue;
            }
            let d = rows.digest(t).expect("a table with rows has a digest");
            match self.sent.get(&key(t.name)) {
                Some(prev) if prev.digest == d => {
                    marker.row(&UNCHANGED, &[("table_name", t.name.into()), ("since", Value::Int(prev.since_us))]);
                    out.tables_unchanged += 1;
                }
                _ => {
                    out.parts.push(Part::Table(rows, t));
                    out.pending.push((key(t.name), Some(Sent { digest: d, since_us: c.crawl_time_us })));
                    out.tables_sent += 1;
                }
            }
        }
        // Tables not read again because their inputs did not change: as they were.
        for t in &crawl.unread {
            if let Some(prev) = self.sent.get(&key(t.name)) {
                marker.row(&UNCHANGED, &[("table_name", t.name.into()), ("since", Value::Int(prev.since_us))]);
                out.tables_unchanged += 1;
                out.tables_unread += 1;
            }
        }
        // Tables the server has rows of that this crawl has none of: nothing
        // to send (the new crawl's own rows are what counts), but forget them.
        for (k, _) in self.sent.iter().filter(|(k, _)| k.0 == c.host && k.1 == c.scope && k.2 == c.scope_id) {
            if !tables.iter().any(|t| t.name == k.3) && !crawl.unread.iter().any(|t| t.name == k.3) {
                out.pending.push((k.clone(), None));
            }
        }
        out.parts.extend(marker.finish().into_iter().map(Part::Batch));
        out.parts.extend(crawls_parts);
        out
    }

    /// Remembers what was spooled for the server.
    pub fn commit(&mut self, reduced: Reduced<'_>) {
        for (k, s) in reduced.pending {
            match s {
                Some(s) => self.sent.insert(k, s),
                None => self.sent.remove(&k),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Common;
    use periscope_proto::tables::PACKAGES;

    fn crawl(time: i64, versions: &[&str]) -> Crawl {
        let common = Common { host: "h".into(), scope: "image".into(), scope_id: "i".into(), crawl_time_us: time };
        let mut sink = Sink::new(common.clone());
        for v in versions {
            sink.row(&PACKAGES, &[("name", "bash".into()), ("version", (*v).into())]);
        }
        let mut batches = sink.finish();
        let mut m = Sink::new(common.clone());
        m.row(&CRAWLS, &[("rows", (versions.len() as i64).into())]);
        batches.extend(m.finish());
        Crawl {
            batches: Rows::from(batches),
            rows: versions.len(),
            errors: 0,
            complete: true,
            common,
            root: String::new(),
            duration_ms: 0,
            fingerprints: Vec::new(),
            unread: Vec::new(),
        }
    }

    fn tables(r: &Reduced<'_>) -> Vec<&'static str> {
        names(&r.batches())
    }

    fn names(batches: &[RecordBatch]) -> Vec<&'static str> {
        batches.iter().map(|b| table_of(b).name).collect()
    }

    #[test]
    fn only_changed_tables_are_resent_and_only_after_an_ack() {
        let mut t = Tracker::default();
        let first_crawl = crawl(1, &["5.2"]);
        let first = t.reduce(&first_crawl);
        assert_eq!(tables(&first), ["packages", "crawls"]);
        // Not acknowledged: the next crawl sends everything again.
        assert_eq!(tables(&t.reduce(&crawl(2, &["5.2"]))), ["packages", "crawls"]);
        t.commit(first);
        let same_crawl = crawl(3, &["5.2"]);
        let same = t.reduce(&same_crawl);
        assert_eq!(tables(&same), ["unchanged", "crawls"]);
        assert_eq!((same.tables_sent, same.tables_unchanged), (0, 1));
        let sent = same.batches();
        let since = sent[0].column_by_name("since").unwrap();
        assert_eq!(
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::TimestampMicrosecondType>(since).value(0),
            1,
            "points at the crawl that carried the rows"
        );
        t.commit(same);
        // Still 1 after an unchanged crawl was acknowledged.
        let again_crawl = crawl(4, &["5.2"]);
        let again = t.reduce(&again_crawl);
        assert_eq!(tables(&again), ["unchanged", "crawls"]);
        let changed_crawl = crawl(5, &["5.3"]);
        let changed = t.reduce(&changed_crawl);
        assert_eq!(tables(&changed), ["packages", "crawls"]);
        t.commit(changed);
        // Emptied, then back to the old rows: sent again, not marked unchanged against a forgotten crawl.
        let empty_crawl = crawl(6, &[]);
        let empty = t.reduce(&empty_crawl);
        assert_eq!(tables(&empty), ["crawls"]);
        t.commit(empty);
        assert_eq!(tables(&t.reduce(&crawl(7, &["5.3"]))), ["packages", "crawls"]);
    }

    #[test]
    fn inherited_rows_are_sent_with_every_crawl() {
        let mut t = Tracker::default();
        let with_inherited = |time: i64| {
            let mut c = crawl(time, &["5.2"]);
            let mut s = Sink::new(c.common.clone());
            s.row(&INHERITED, &[("table_name", "os".into()), ("image_id", "sha256:i".into())]);
            let mut all = s.finish();
            all.extend(c.batches.to_vec());
            c.batches = Rows::from(all);
            c
        };
        let first_crawl = with_inherited(1);
        let first = t.reduce(&first_crawl);
        t.commit(first);
        assert_eq!(tables(&t.reduce(&with_inherited(2))), ["inherited", "unchanged", "crawls"]);
    }

    #[test]
    fn coalesce_merges_per_table_and_keeps_crawls_last() {
        let mut t = Tracker::default();
        let a_crawl = crawl(1, &["1"]);
        let a = t.reduce(&a_crawl);
        t.commit(a);
        let second = crawl(2, &["1"]);
        let mut batches = t.reduce(&second).batches(); // unchanged, crawls
        batches.extend(crawl(3, &["2", "3"]).batches.to_vec()); // packages, crawls
        let merged = coalesce(batches);
        assert_eq!(names(&merged), ["packages", "unchanged", "crawls"]);
        assert_eq!(merged.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), [2, 1, 2]);
    }
}
