//! `periscope vulns import PATH...`: OSV records from JSON files, directories
//! of them (walked), and zip archives such as the per-ecosystem `all.zip`
//! osv.dev publishes, into the stored tables ([`crate::store`]).
//!
//! A record is stored when its id is new or its `modified` time is newer than
//! the stored one; an older or equal one is counted unchanged. Withdrawn
//! records are stored too (with their `withdrawn` time), so they stop
//! matching. A file that does not read or parse is counted and named in the
//! summary; the rest of the import still lands. Inputs are bounded: a record
//! file or zip member above [`MAX_RECORD_BYTES`] is refused unread.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::ecosystem::{self, name_key};
use crate::eval::Entry;
use crate::osv::{self, Record};
use crate::store::{ADVISORIES_SCHEMA, AFFECTED_SCHEMA, Rows, Val, Writer};

/// The largest record file or zip member read (the biggest real OSV records,
/// Linux kernel advisories with long version lists, are a few MB).
pub const MAX_RECORD_BYTES: u64 = 32 << 20;

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

/// Reads every record under `paths` and stores what is new into the data
/// directory `data`.
pub fn import(data: &Path, paths: &[PathBuf]) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut found: HashMap<String, (Record, String)> = HashMap::new();
    let mut take = |rec: Record, source: String, summary: &mut Summary| {
        summary.records += 1;
        let Some(m) = osv::micros(&rec.modified) else {
            summary.errors.push(format!("{source}: {}: modified time {:?} is not RFC 3339", rec.id, rec.modified));
            return;
        };
        // The same id twice in one import: the newer record wins.
        match found.get(&rec.id) {
            Some((old, _)) if osv::micros(&old.modified).is_some_and(|o| o >= m) => summary.unchanged += 1,
            Some(_) => {
                summary.unchanged += 1;
                found.insert(rec.id.clone(), (rec, source));
            }
            None => {
                found.insert(rec.id.clone(), (rec, source));
            }
        }
    };
    for p in paths {
        read_path(
            p,
            0,
            &mut |bytes, source, summary| match osv::parse(bytes) {
                Ok(records) => records.into_iter().for_each(|r| take(r, source.to_string(), summary)),
                Err(e) => summary.errors.push(format!("{source}: {e}")),
            },
            &mut summary,
        );
    }
    let writer = Writer::open(data)?;
    let (stored, newest) = writer.stored()?;
    let now = chrono::Utc::now().timestamp_micros();
    let stamp = now.max(newest.saturating_add(1));
    let mut advisories = Rows::new(&ADVISORIES_SCHEMA);
    let mut affected = Rows::new(&AFFECTED_SCHEMA);
    let mut ids: Vec<&String> = found.keys().collect();
    ids.sort();
    for id in ids {
        let (rec, source) = &found[id];
        let modified = osv::micros(&rec.modified).expect("checked when read");
        match stored.get(id) {
            Some(&s) if s >= modified => {
                summary.unchanged += 1;
                continue;
            }
            Some(_) => summary.updated += 1,
            None => summary.new += 1,
        }
        let withdrawn = rec.withdrawn.as_deref().and_then(osv::micros);
        summary.withdrawn += u64::from(rec.withdrawn.is_some());
        let rated = rec.rated();
        advisories.push(&[
            Val::Text(Some(id)),
            Val::Time(Some(modified)),
            Val::Time(rec.published.as_deref().and_then(osv::micros)),
            // A withdrawn time that does not read still withdraws: the record's modified time stands in.
            Val::Time(rec.withdrawn.as_ref().map(|_| withdrawn.unwrap_or(modified))),
            Val::List(&rec.aliases),
            Val::Text(rec.summary.as_deref()),
            Val::Text(rec.details.as_deref()),
            Val::Text(rated.rating.as_deref()),
            Val::Text(rated.vector.as_deref()),
            Val::Float(rated.score),
            Val::Text(rated.database.as_deref()),
            Val::Text(Some(source)),
            Val::Time(Some(stamp)),
        ]);
        for a in &rec.affected {
            let Some(pkg) = &a.package else {
                *summary.unmatched.entry("entry names no package".into()).or_default() += 1;
                continue;
            };
            *summary.affected.entry(pkg.ecosystem.clone()).or_default() += 1;
            let target = ecosystem::of_advisory(&pkg.ecosystem);
            let mut why: Vec<String> = Vec::new();
            match &target {
                None => why.push(format!("ecosystem {:?} not matched: Periscope has no packages of it", pkg.ecosystem)),
                Some(t) if t.scheme.is_none() => {
                    why.push(format!("ecosystem {:?} not matched: no version order for it yet", pkg.ecosystem))
                }
                Some(t) => {
                    let scheme = t.scheme.expect("checked above");
                    why.extend(Entry::new(&t.key, scheme, &a.ranges).unmatched);
                }
            }
            for w in &why {
                // Counted by kind, not by the version that did not read.
                let kind = w.split(':').next().unwrap_or(w).to_string();
                *summary.unmatched.entry(kind).or_default() += 1;
            }
            let ranges = serde_json::to_string(&a.ranges).expect("ranges serialize");
            let key = target.as_ref().map(|t| t.key.as_str());
            let unmatched = (!why.is_empty()).then(|| why.join("; "));
            affected.push(&[
                Val::Text(Some(id)),
                Val::Time(Some(modified)),
                Val::Time(Some(stamp)),
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
    }
    writer.append(stamp, advisories.finish(), affected.finish())?;
    Ok(summary)
}

type Sink<'a> = dyn FnMut(&[u8], &str, &mut Summary) + 'a;

fn read_path(path: &Path, depth: usize, sink: &mut Sink<'_>, summary: &mut Summary) {
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
            if e.is_dir() || name.ends_with(".json") || name.ends_with(".zip") {
                read_path(&e, depth + 1, sink, summary);
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
        return read_zip(path, sink, summary);
    }
    match std::fs::read(path) {
        Ok(bytes) => sink(&bytes, &shown, summary),
        Err(e) => summary.errors.push(format!("{shown}: {e}")),
    }
}

fn read_zip(path: &Path, sink: &mut Sink<'_>, summary: &mut Summary) {
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
    for i in 0..zip.len() {
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
        match (&mut member).take(MAX_RECORD_BYTES + 1).read_to_end(&mut buf) {
            Ok(n) if n as u64 > MAX_RECORD_BYTES => {
                summary.errors.push(format!("{source}: over the {MAX_RECORD_BYTES}-byte limit, not read"))
            }
            Ok(_) => sink(&buf, &source, summary),
            Err(e) => summary.errors.push(format!("{source}: {e}")),
        }
    }
}
