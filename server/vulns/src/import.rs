//! `periscope vulns import PATH...`: OSV records from JSON files, directories
//! of them (walked), and zip archives such as the per-ecosystem `all.zip`
//! osv.dev publishes, into the stored tables ([`crate::store`]).
//!
//! A record is stored when its id is new or its `modified` time is newer than
//! the stored one (this import's earlier records included: a second copy of
//! an id is stored only when it is newer); an older or equal one is counted
//! unchanged. Withdrawn
//! records are stored too (with their `withdrawn` time), so they stop
//! matching. A file that does not read or parse is counted and named in the
//! summary; the rest of the import still lands. Inputs are bounded: a record
//! file or zip member above [`MAX_RECORD_BYTES`] is refused unread.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::ecosystem::{self, Target, name_key};
use crate::eval::Entry;
use crate::osv::{self, Record};
use crate::store::{ADVISORIES_SCHEMA, AFFECTED_SCHEMA, Rows, Val, Writer};

/// The largest record file or zip member read (the biggest real OSV records,
/// Linux kernel advisories with long version lists, are a few MB).
pub const MAX_RECORD_BYTES: u64 = 32 << 20;

/// How far ahead of the importing machine's clock a `modified` time may be.
const MAX_CLOCK_SKEW_US: i64 = 86_400_000_000;

/// The most bytes one zip archive may inflate to, all members together, and
/// the most members it may hold (osv.dev's largest archive holds a few GB in
/// a few hundred thousand records): past either the rest is not read.
pub const MAX_ARCHIVE_BYTES: u64 = 16 << 30;
pub const MAX_ARCHIVE_MEMBERS: usize = 2_000_000;

/// How deep a directory is walked.
const MAX_DEPTH: usize = 16;

/// What an import did, for the command's output and tests.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Records read and parsed.
    pub records: u64,
    /// Stored because their id was new.
    pub new: u64,
    /// Stored because their `modified` time was newer than the stored one.
    pub updated: u64,
    /// Not stored: the stored record is as new or newer.
    pub unchanged: u64,
    /// Of those stored, how many are withdrawn.
    pub withdrawn: u64,
    /// `affected` entries stored, by ecosystem as published.
    pub affected: BTreeMap<String, u64>,
    /// Parts not matched, by reason (GIT ranges, unknown ecosystems, ...), counted once per entry.
    pub unmatched: BTreeMap<String, u64>,
    /// Files or records that could not be read, with why.
    pub errors: Vec<String>,
}

/// Records buffered before they are written out as one file per table, at most.
const RECORDS_PER_FILE: usize = 20_000;

/// Bytes of text buffered before they are written out, at most (a record is
/// at most [`MAX_RECORD_BYTES`], so a file holds at most this plus one).
const BYTES_PER_FILE: usize = 64 << 20;

/// Reads every record under `paths` and stores what is new into the data
/// directory `data`. Records stream through: what is held at once is bounded
/// by [`RECORDS_PER_FILE`] and [`BYTES_PER_FILE`], plus one id and time per
/// stored record.
pub fn import(data: &Path, paths: &[PathBuf]) -> Result<Summary, String> {
    import_until(data, paths, &|| false)
}

/// [`import`], ending early (what was read is stored) once `stop` says so:
/// it is asked between files and between an archive's members.
pub fn import_until(data: &Path, paths: &[PathBuf], stop: &dyn Fn() -> bool) -> Result<Summary, String> {
    let writer = Writer::open(data)?;
    let (mut stored, newest) = writer.stored()?;
    let now = chrono::Utc::now().timestamp_micros();
    let stamp = now.max(newest.saturating_add(1));
    let mut out = Out { writer: &writer, stamp, part: 0, pending: Pending::new(), failed: None };
    let mut summary = Summary::default();
    for p in paths {
        if stop() {
            break;
        }
        read_path(
            p,
            stop,
            0,
            &mut |bytes, source, summary| match osv::parse(bytes) {
                Ok(records) => {
                    for rec in records {
                        take(&rec, source, &mut stored, &mut out, summary);
                    }
                }
                Err(e) => summary.errors.push(format!("{source}: {e}")),
            },
            &mut summary,
        );
    }
    out.flush();
    match out.failed {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// Rows waiting to be written.
struct Pending {
    advisories: Rows,
    affected: Rows,
    records: usize,
    bytes: usize,
}

impl Pending {
    fn new() -> Pending {
        Pending {
            advisories: Rows::new(&ADVISORIES_SCHEMA),
            affected: Rows::new(&AFFECTED_SCHEMA),
            records: 0,
            bytes: 0,
        }
    }
}

/// Where an import's rows go: files `import-<stamp>-<part>` of both tables.
struct Out<'a> {
    writer: &'a Writer,
    stamp: i64,
    part: u32,
    pending: Pending,
    /// The first write that failed: the import stops storing and says so.
    failed: Option<String>,
}

impl Out<'_> {
    fn flush(&mut self) {
        let p = std::mem::replace(&mut self.pending, Pending::new());
        if p.records == 0 || self.failed.is_some() {
            return;
        }
        let name = format!("import-{}-{:05}", self.stamp, self.part);
        self.part += 1;
        if let Err(e) = self.writer.append(self.stamp, &name, p.advisories.finish(), p.affected.finish()) {
            self.failed = Some(e);
        }
    }
}

/// Stores `rec` when it is new or newer than what is stored (this import's
/// earlier records included).
fn take(rec: &Record, source: &str, stored: &mut HashMap<String, i64>, out: &mut Out<'_>, summary: &mut Summary) {
    summary.records += 1;
    let Some(modified) = osv::micros(&rec.modified) else {
        summary.errors.push(format!("{source}: {}: modified time {:?} is not RFC 3339", rec.id, rec.modified));
        return;
    };
    // A record from the future would pin its id: every later correction would count as older.
    if modified > out.stamp.saturating_add(MAX_CLOCK_SKEW_US) {
        summary
            .errors
            .push(format!("{source}: {}: modified time {} is in the future, not imported", rec.id, rec.modified));
        return;
    }
    match stored.get(&rec.id) {
        Some(&s) if s >= modified => {
            summary.unchanged += 1;
            return;
        }
        Some(_) => summary.updated += 1,
        None => summary.new += 1,
    }
    stored.insert(rec.id.clone(), modified);
    summary.withdrawn += u64::from(rec.withdrawn.is_some());
    let id = &rec.id;
    let rated = rec.rated();
    let p = &mut out.pending;
    p.records += 1;
    p.bytes += id.len()
        + rec.summary.as_ref().map_or(0, String::len)
        + rec.details.as_ref().map_or(0, String::len)
        + rec.aliases.iter().map(String::len).sum::<usize>();
    p.advisories.push(&[
        Val::Text(Some(id)),
        Val::Time(Some(modified)),
        Val::Time(rec.published.as_deref().and_then(osv::micros)),
        // A withdrawn time that does not read still withdraws: the record's modified time stands in.
        Val::Time(rec.withdrawn.as_deref().map(|w| osv::micros(w).unwrap_or(modified))),
        Val::List(&rec.aliases),
        Val::Text(rec.summary.as_deref()),
        Val::Text(rec.details.as_deref()),
        Val::Text(rated.rating.as_deref()),
        Val::Text(rated.vector.as_deref()),
        Val::Float(rated.score),
        Val::Text(rated.database.as_deref()),
        Val::Text(Some(source)),
        Val::Time(Some(out.stamp)),
    ]);
    for a in &rec.affected {
        let Some(pkg) = &a.package else {
            *summary.unmatched.entry("entry names no package".into()).or_default() += 1;
            continue;
        };
        *summary.affected.entry(pkg.ecosystem.clone()).or_default() += 1;
        let target = ecosystem::of_advisory(&pkg.ecosystem);
        // (kind, why): counted by kind, not by the version that did not read.
        let mut why: Vec<(String, String)> = Vec::new();
        let eco = &pkg.ecosystem;
        match &target {
            None => why.push((format!("ecosystem {eco} not matched"), "Periscope has no packages of it".into())),
            Some(Target { scheme: None, .. }) if eco.starts_with("Ubuntu:") => why.push((
                format!("ecosystem {eco} not matched"),
                "an Ubuntu Pro or FIPS stream applies only to enrolled machines".into(),
            )),
            Some(Target { scheme: None, .. }) => {
                why.push((format!("ecosystem {eco} not matched"), "no version order for it yet".into()))
            }
            Some(Target { key, scheme: Some(scheme) }) => why.extend(
                Entry::new(key, *scheme, &a.ranges).unmatched.into_iter().map(|w| match w.split_once(": ") {
                    Some((kind, _)) => (kind.to_string(), w.clone()),
                    None => (w.clone(), w),
                }),
            ),
        }
        for (kind, _) in &why {
            *summary.unmatched.entry(kind.clone()).or_default() += 1;
        }
        let why: Vec<String> =
            why.into_iter().map(|(k, w)| if w.starts_with(&k) { w } else { format!("{k}: {w}") }).collect();
        let ranges = serde_json::to_string(&a.ranges).expect("ranges serialize");
        let key = target.as_ref().map(|t| t.key.as_str());
        let unmatched = (!why.is_empty()).then(|| why.join("; "));
        p.bytes += ranges.len() + a.versions.iter().map(String::len).sum::<usize>() + pkg.name.len();
        p.affected.push(&[
            Val::Text(Some(id)),
            Val::Time(Some(modified)),
            Val::Time(Some(out.stamp)),
            Val::Text(Some(&pkg.ecosystem)),
            Val::Text(key),
            Val::Text(Some(&pkg.name)),
            Val::Text(Some(&name_key(key.unwrap_or(""), &pkg.name))),
            Val::Text(pkg.purl.as_deref()),
            Val::Text(Some(&ranges)),
            Val::List(&a.versions),
            Val::Text(unmatched.as_deref()),
        ]);
    }
    if p.records >= RECORDS_PER_FILE || p.bytes >= BYTES_PER_FILE {
        out.flush();
    }
}

type Sink<'a> = dyn FnMut(&[u8], &str, &mut Summary) + 'a;

fn read_path(path: &Path, stop: &dyn Fn() -> bool, depth: usize, sink: &mut Sink<'_>, summary: &mut Summary) {
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return summary.errors.push(format!("{shown}: {e}")),
    };
    if meta.is_dir() {
        if depth >= MAX_DEPTH {
            return summary.errors.push(format!("{shown}: deeper than {MAX_DEPTH} directories, not read"));
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
            Err(e) => return summary.errors.push(format!("{shown}: {e}")),
        };
        entries.sort();
        for e in entries {
            let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Symlinks are not followed inside a walk; hidden files (.git) are skipped.
            let link = std::fs::symlink_metadata(&e).map(|m| m.file_type().is_symlink()).unwrap_or(true);
            if name.starts_with('.') || link {
                continue;
            }
            if stop() {
                return;
            }
            if e.is_dir() || name.ends_with(".json") || name.ends_with(".zip") {
                read_path(&e, stop, depth + 1, sink, summary);
            }
        }
        return;
    }
    if !meta.is_file() {
        return summary.errors.push(format!("{shown}: not a regular file"));
    }
    if meta.len() > MAX_RECORD_BYTES && !shown.ends_with(".zip") {
        return summary.errors.push(format!("{shown}: {} bytes, over the {MAX_RECORD_BYTES}-byte limit", meta.len()));
    }
    if shown.ends_with(".zip") {
        return read_zip(path, stop, sink, summary);
    }
    match std::fs::read(path) {
        Ok(bytes) => sink(&bytes, &shown, summary),
        Err(e) => summary.errors.push(format!("{shown}: {e}")),
    }
}

fn read_zip(path: &Path, stop: &dyn Fn() -> bool, sink: &mut Sink<'_>, summary: &mut Summary) {
    read_zip_within(path, stop, MAX_ARCHIVE_BYTES, sink, summary)
}

fn read_zip_within(path: &Path, stop: &dyn Fn() -> bool, budget: u64, sink: &mut Sink<'_>, summary: &mut Summary) {
    let shown = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return summary.errors.push(format!("{shown}: {e}")),
    };
    let mut zip = match zip::ZipArchive::new(std::io::BufReader::new(file)) {
        Ok(z) => z,
        Err(e) => return summary.errors.push(format!("{shown}: not a zip archive: {e}")),
    };
    let mut buf = Vec::new();
    let mut inflated = 0u64;
    if zip.len() > MAX_ARCHIVE_MEMBERS {
        summary.errors.push(format!("{shown}: {} members, only the first {MAX_ARCHIVE_MEMBERS} read", zip.len()));
    }
    for i in 0..zip.len().min(MAX_ARCHIVE_MEMBERS) {
        if stop() {
            return;
        }
        if inflated > budget {
            summary.errors.push(format!("{shown}: inflates past {budget} bytes; members from {i} on not read"));
            break;
        }
        let mut member = match zip.by_index(i) {
            Ok(m) => m,
            Err(e) => {
                summary.errors.push(format!("{shown}: member {i}: {e}"));
                continue;
            }
        };
        let name = match member.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                summary.errors.push(format!("{shown}: member {i}: {e}"));
                continue;
            }
        };
        if member.is_dir() || !name.ends_with(".json") {
            continue;
        }
        let source = format!("{shown}:{name}");
        buf.clear();
        // The declared size may lie: read one byte past the limit to know.
        let read = (&mut member).take(MAX_RECORD_BYTES + 1).read_to_end(&mut buf);
        inflated += buf.len() as u64;
        match read {
            Ok(n) if n as u64 > MAX_RECORD_BYTES => {
                summary.errors.push(format!("{source}: over the {MAX_RECORD_BYTES}-byte limit, not read"))
            }
            Ok(_) => sink(&buf, &source, summary),
            Err(e) => summary.errors.push(format!("{source}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive's members together may inflate only so far (a zip of
    /// overlapping members inflates terabytes from megabytes): past the
    /// budget, the rest is named and not read.
    #[test]
    fn an_archive_stops_at_its_inflation_budget() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.zip");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        for i in 0..3 {
            z.start_file(format!("{i}.json"), zip::write::SimpleFileOptions::default()).unwrap();
            z.write_all(&[b' '; 1000]).unwrap();
        }
        z.finish().unwrap();
        let mut read = Vec::new();
        let mut summary = Summary::default();
        read_zip_within(&path, &|| false, 1500, &mut |_, source, _| read.push(source.to_string()), &mut summary);
        assert_eq!(read.len(), 2, "{read:?}");
        assert!(
            summary.errors[0].contains("inflates past 1500 bytes; members from 2 on not read"),
            "{:?}",
            summary.errors
        );
        // And an import asked to stop reads nothing more.
        let (mut n, mut summary) = (0, Summary::default());
        read_zip_within(&path, &|| true, u64::MAX, &mut |_, _, _| n += 1, &mut summary);
        assert_eq!(n, 0);
    }
}
