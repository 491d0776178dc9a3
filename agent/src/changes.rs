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
use periscope_proto::tables::{self, COMMON_COLUMNS, CRAWLS, INHERITED, UNCHANGED};
use sha2::{Digest, Sha256};

use crate::collectors::Sink;
use crate::crawl::{Crawl, table_of};
use crate::encode::Value;

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
pub struct Reduced {
    pub batches: Vec<RecordBatch>,
    pub tables_sent: usize,
    pub tables_unchanged: usize,
    /// Of the unchanged, those not even read (see [`crate::fingerprint`]).
    pub tables_unread: usize,
    pending: Vec<(Key, Option<Sent>)>,
}

impl Reduced {
    pub fn extend(&mut self, other: Reduced) {
        self.batches.extend(other.batches);
        self.tables_sent += other.tables_sent;
        self.tables_unchanged += other.tables_unchanged;
        self.tables_unread += other.tables_unread;
        self.pending.extend(other.pending);
    }
}

/// Digest of a table's rows without the common columns (which name the
/// scope and the crawl, and so differ every time).
fn digest(batches: &[&RecordBatch]) -> [u8; 32] {
    let mut h = Sha256::new();
    for b in batches {
        let keep: Vec<usize> = (0..b.num_columns())
            .filter(|&i| !COMMON_COLUMNS.iter().any(|c| c.name == b.schema().field(i).name()))
            .collect();
        let b = b.project(&keep).expect("projection of existing columns");
        // IPC bytes are a deterministic function of the values: equal rows, equal bytes.
        let bytes = periscope_proto::ipc::encode(b.schema_ref(), std::slice::from_ref(&b)).expect("IPC encoding");
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

/// Merges batches of one table into one batch, so many small scopes cost one
/// schema and one set of compressed buffers on the wire. Data tables keep
/// their first-seen order; `unchanged` and then `crawls` go last, so every
/// crawl's completion marker still arrives after its rows.
pub fn coalesce(batches: Vec<RecordBatch>) -> Vec<RecordBatch> {
    let mut groups = by_table(batches);
    let rank = |t: &tables::Table| match t.name {
        n if n == UNCHANGED.name => 1,
        n if n == CRAWLS.name => 2,
        _ => 0,
    };
    groups.sort_by_key(|(t, _)| rank(t));
    let mut out = Vec::new();
    for (_, v) in groups {
        // Merged up to a bound: many scopes' rows of one table must not make
        // a string column past Arrow's 2 GiB offsets (a panic in concat).
        let mut run: Vec<RecordBatch> = Vec::new();
        let mut size = 0;
        for b in v {
            let n = b.get_array_memory_size();
            if !run.is_empty() && size + n > MERGE_BYTES {
                out.push(merge(std::mem::take(&mut run)));
                size = 0;
            }
            size += n;
            run.push(b);
        }
        if !run.is_empty() {
            out.push(merge(run));
        }
    }
    out
}

/// Most bytes of batches [`coalesce`] merges into one.
pub const MERGE_BYTES: usize = 64 << 20;

fn merge(v: Vec<RecordBatch>) -> RecordBatch {
    if v.len() == 1 {
        v.into_iter().next().expect("one")
    } else {
        arrow_select::concat::concat_batches(v[0].schema_ref(), &v).expect("batches of one declared schema")
    }
}

/// Batches grouped by table, tables in first-seen order.
fn by_table<B: std::borrow::Borrow<RecordBatch>>(
    batches: impl IntoIterator<Item = B>,
) -> Vec<(&'static tables::Table, Vec<B>)> {
    let mut groups: Vec<(&'static tables::Table, Vec<B>)> = Vec::new();
    for b in batches {
        let t = table_of(b.borrow());
        match groups.iter_mut().find(|(x, _)| x.name == t.name) {
            Some((_, v)) => v.push(b),
            None => groups.push((t, vec![b])),
        }
    }
    groups
}

impl Tracker {
    /// The batches to send for `crawl`: changed tables in full, an
    /// `unchanged` row for each table equal to what the server has, the
    /// `crawls` row last.
    pub fn reduce(&self, crawl: &Crawl) -> Reduced {
        let c = &crawl.common;
        let key = |t: &'static str| (c.host.clone(), c.scope.clone(), c.scope_id.clone(), t);
        let by_table = by_table(crawl.batches.iter());
        let mut out = Reduced::default();
        let mut marker = Sink::new(c.clone());
        let mut crawls_batches = Vec::new();
        for (t, batches) in &by_table {
            if t.name == CRAWLS.name {
                crawls_batches.extend(batches.iter().map(|b| (*b).clone()));
                continue;
            }
            if t.name == INHERITED.name {
                // A few bytes, always sent: a crawl's inherited tables stand
                // for its rows, so the server never follows them back in time.
                out.batches.extend(batches.iter().map(|b| (*b).clone()));
                continue;
            }
            let d = digest(batches);
            match self.sent.get(&key(t.name)) {
                Some(prev) if prev.digest == d => {
                    marker.row(&UNCHANGED, &[("table_name", t.name.into()), ("since", Value::Int(prev.since_us))]);
                    out.tables_unchanged += 1;
                }
                _ => {
                    out.batches.extend(batches.iter().map(|b| (*b).clone()));
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
            if !by_table.iter().any(|(t, _)| t.name == k.3) && !crawl.unread.iter().any(|t| t.name == k.3) {
                out.pending.push((k.clone(), None));
            }
        }
        out.batches.extend(marker.finish());
        out.batches.extend(crawls_batches);
        out
    }

    /// Remembers what was spooled for the server.
    pub fn commit(&mut self, reduced: Reduced) {
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
            batches,
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

    fn tables(r: &Reduced) -> Vec<&'static str> {
        r.batches.iter().map(|b| table_of(b).name).collect()
    }

    #[test]
    fn only_changed_tables_are_resent_and_only_after_an_ack() {
        let mut t = Tracker::default();
        let first = t.reduce(&crawl(1, &["5.2"]));
        assert_eq!(tables(&first), ["packages", "crawls"]);
        // Not acknowledged: the next crawl sends everything again.
        assert_eq!(tables(&t.reduce(&crawl(2, &["5.2"]))), ["packages", "crawls"]);
        t.commit(first);
        let same = t.reduce(&crawl(3, &["5.2"]));
        assert_eq!(tables(&same), ["unchanged", "crawls"]);
        assert_eq!((same.tables_sent, same.tables_unchanged), (0, 1));
        let since = same.batches[0].column_by_name("since").unwrap();
        assert_eq!(
            arrow_array::cast::AsArray::as_primitive::<arrow_array::types::TimestampMicrosecondType>(since).value(0),
            1,
            "points at the crawl that carried the rows"
        );
        t.commit(same);
        // Still 1 after an unchanged crawl was acknowledged.
        let again = t.reduce(&crawl(4, &["5.2"]));
        assert_eq!(tables(&again), ["unchanged", "crawls"]);
        let changed = t.reduce(&crawl(5, &["5.3"]));
        assert_eq!(tables(&changed), ["packages", "crawls"]);
        t.commit(changed);
        // Emptied, then back to the old rows: sent again, not marked unchanged against a forgotten crawl.
        let empty = t.reduce(&crawl(6, &[]));
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
            c.batches.splice(0..0, s.finish());
            c
        };
        let first = t.reduce(&with_inherited(1));
        t.commit(first);
        assert_eq!(tables(&t.reduce(&with_inherited(2))), ["inherited", "unchanged", "crawls"]);
    }

    #[test]
    fn coalesce_merges_per_table_and_keeps_crawls_last() {
        let mut t = Tracker::default();
        let a = t.reduce(&crawl(1, &["1"]));
        t.commit(a);
        let mut batches = t.reduce(&crawl(2, &["1"])).batches; // unchanged, crawls
        batches.extend(crawl(3, &["2", "3"]).batches); // packages, crawls
        let merged = coalesce(batches);
        assert_eq!(
            tables(&Reduced { batches: merged.clone(), ..Default::default() }),
            ["packages", "unchanged", "crawls"]
        );
        assert_eq!(merged.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), [2, 1, 2]);
    }
}
