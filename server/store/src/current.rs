//! Current state, maintained incrementally.
//!
//! "What is true now" is, for every live scope, its latest completed crawl —
//! and for each table, where that crawl's rows of it live: in the crawl
//! itself, in an earlier crawl of the scope (the agent sent the table
//! `unchanged`), or in the scope's image (a container whose collectors'
//! inputs its own layers did not touch sent the table `inherited`). The
//! [`Index`] holds exactly that, per scope, plus each host's container
//! listing (which containers are still there, and their names) and each
//! image's latest crawl. The store updates it as each batch becomes visible,
//! so a query never recomputes current state from history: the catalog's
//! current-state views join the history tables to the few keys the index
//! hands out.
//!
//! The index is a persistent map ([`imbl`]): a snapshot takes it in O(1), and
//! the writer updates it in O(log n) while queries read older versions. It is
//! rebuilt from the stored rows when a server opens a data directory and when
//! a reader in another process opens one ([`Index::build`]).

/// The index's maps hash with foldhash: SipHash was a fifth of the time
/// spent sharing image rows with containers (scope keys are 90-byte strings).
type Hasher = foldhash::fast::RandomState;
type HashMap<K, V> = std::collections::HashMap<K, V, Hasher>;
type IMap<K, V> = imbl::GenericHashMap<K, V, Hasher, imbl::shared_ptr::DefaultSharedPtr>;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use periscope_proto::tables::{self, CONTAINERS, CRAWLS, INHERITED, TABLES, Table, UNCHANGED, scope};

/// One scope: (host, scope, scope_id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeKey {
    pub host: Arc<str>,
    pub scope: Arc<str>,
    pub scope_id: Arc<str>,
}

/// Where a scope's rows are, as of its latest completed crawl.
#[derive(Debug, Clone, Default)]
pub struct ScopeState {
    pub crawl_time: i64,
    /// When the server received the crawl's `crawls` row (its crawl_time for
    /// crawls stored before that was kept): crawls are ordered by this, so no
    /// date an agent sends can pin its scope's state.
    pub received: i64,
    /// Tables the crawl has rows of (bit i: `TABLES[i]`), sent or unchanged.
    pub tables: u64,
    /// Tables whose rows are those of an earlier crawl: (table index, its crawl_time).
    pub since: Box<[(u8, i64)]>,
    /// Tables whose rows are the scope's image's.
    pub inherited: Inherited,
    /// Whether the crawl sent any `unchanged` rows (its current `unchanged` view rows).
    pub any_unchanged: bool,
    /// Host scopes: the containers the host's runtime listed, and their names.
    pub listing: Option<Arc<Listing>>,
}

/// A host's container listing: the `containers` rows of the crawl that carried them.
#[derive(Debug, Default)]
pub struct Listing {
    pub data_time: i64,
    pub names: HashMap<Arc<str>, Option<Arc<str>>>,
}

impl ScopeState {
    /// crawl_time of the crawl holding this scope's rows of table `t`, when it has any.
    pub fn data_time(&self, t: usize) -> Option<i64> {
        if t == UNCHANGED_IX {
            return self.any_unchanged.then_some(self.crawl_time);
        }
        if self.tables & (1 << t) == 0 {
            return None;
        }
        Some(self.since.iter().find(|(i, _)| *i as usize == t).map(|(_, s)| *s).unwrap_or(self.crawl_time))
    }

    fn inherits(&self, t: usize) -> Option<&Arc<str>> {
        self.inherited.of(t)
    }
}

/// The tables a container shares with its image, compactly: a container has
/// one image, so a bitset and that image's (interned) id, no allocation of
/// its own. A crawl naming other images for some tables (no agent sends
/// that) keeps them in `others`.
#[derive(Debug, Clone, Default)]
pub struct Inherited {
    tables: u64,
    image: Option<Arc<str>>,
    others: Box<[(u8, Arc<str>)]>,
}

impl Inherited {
    fn new(list: impl IntoIterator<Item = (u8, Arc<str>)>) -> Inherited {
        let (mut tables, mut image, mut others) = (0u64, None::<Arc<str>>, Vec::new());
        for (t, id) in list {
            match &image {
                None => image = Some(id),
                Some(i) if *i == id => {}
                Some(_) => {
                    others.push((t, id));
                    continue;
                }
            }
            tables |= 1 << t;
        }
        Inherited { tables, image, others: others.into_boxed_slice() }
    }

    /// The image whose rows of table `t` these are.
    pub fn of(&self, t: usize) -> Option<&Arc<str>> {
        if self.tables & (1 << t) != 0 {
            return self.image.as_ref();
        }
        self.others.iter().find(|(i, _)| *i as usize == t).map(|(_, id)| id)
    }

    /// The images named (each once, but for a hostile crawl's repeats in `others`).
    fn images(&self) -> impl Iterator<Item = &Arc<str>> {
        self.image.iter().chain(self.others.iter().map(|(_, id)| id))
    }
}

/// Rows of a crawl whose `crawls` row has not arrived yet.
#[derive(Debug, Default, Clone)]
struct PendingCrawl {
    crawl_time: i64,
    /// When its first row arrived here (for [`Pending::expire`]).
    arrived: Option<std::time::Instant>,
    /// Whether its scope was new to the index when it arrived: counted against its host's quota.
    counted: bool,
    since: Vec<(u8, i64)>,
    inherited: Vec<(u8, Arc<str>)>,
    any_unchanged: bool,
    listing: Option<HashMap<Arc<str>, Option<Arc<str>>>>,
}

/// The writer's side of the index: rows of crawls still in flight, newest
/// crawl per scope, counted per host (a host's quota covers these too).
#[derive(Debug, Default)]
pub struct Pending {
    crawls: HashMap<ScopeKey, PendingCrawl>,
    per_host: HashMap<Arc<str>, usize>,
}

impl Pending {
    fn remove(&mut self, key: &ScopeKey) -> Option<PendingCrawl> {
        let p = self.crawls.remove(key)?;
        if !p.counted {
            return Some(p);
        }
        if let Some(n) = self.per_host.get_mut(&key.host) {
            *n -= 1;
            if *n == 0 {
                self.per_host.remove(&key.host);
            }
        }
        Some(p)
    }

    /// The pending state of `key`'s crawl at `crawl_time`. Rows arrive crawl
    /// by crawl, so rows of another crawl than the one pending are of a later
    /// one (whatever their date): it replaces the earlier, which never completed.
    /// `new`: the scope is not in the index yet.
    fn entry(&mut self, key: ScopeKey, crawl_time: i64, new: bool) -> &mut PendingCrawl {
        let now = Some(std::time::Instant::now());
        if !self.crawls.contains_key(&key) && new {
            *self.per_host.entry(key.host.clone()).or_default() += 1;
        }
        let p =
            self.crawls.entry(key).or_insert_with(|| PendingCrawl { crawl_time, counted: new, ..Default::default() });
        if p.crawl_time != crawl_time {
            *p = PendingCrawl { crawl_time, counted: p.counted, ..Default::default() };
        }
        p.arrived = p.arrived.or(now);
        p
    }

    fn insert(&mut self, key: ScopeKey, p: PendingCrawl) {
        let (host, counted) = (key.host.clone(), p.counted);
        if self.crawls.insert(key, p).is_none() && counted {
            *self.per_host.entry(host).or_default() += 1;
        }
    }

    fn contains(&self, key: &ScopeKey) -> bool {
        self.crawls.contains_key(key)
    }

    /// Crawls in flight of `host`'s scopes that the index does not hold yet.
    pub fn of_host(&self, host: &str) -> usize {
        self.per_host.get(host).copied().unwrap_or(0)
    }

    /// Crawls in flight.
    pub fn len(&self) -> usize {
        self.crawls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.crawls.is_empty()
    }

    /// Drops crawls in flight whose first row arrived more than `ttl` ago: an
    /// agent sends a crawl's `crawls` row right after its tables, so these
    /// never complete, and must not hold memory for ever. Returns how many went.
    pub fn expire(&mut self, ttl: std::time::Duration) -> usize {
        let now = std::time::Instant::now();
        let stale = |p: &PendingCrawl| p.arrived.is_some_and(|a| now.duration_since(a) > ttl);
        let old: Vec<ScopeKey> = self.crawls.iter().filter(|(_, p)| stale(p)).map(|(k, _)| k.clone()).collect();
        for k in &old {
            self.remove(k);
        }
        old.len()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Index {
    scopes: IMap<ScopeKey, Arc<ScopeState>>,
    /// Host name → its host scope (the newest, should its machine id change).
    hosts: IMap<Arc<str>, ScopeKey>,
    /// Interned host names, scope kinds and image ids (few, each named by many scopes).
    names: IMap<Arc<str>, Arc<str>>,
    /// Host name → how many of `scopes` are its.
    per_host: IMap<Arc<str>, usize>,
    /// (host, image id) → the host's containers whose latest crawl inherits
    /// some table from the host's crawl of that image, with that crawl's
    /// state (the one `scopes` has).
    heirs: IMap<HostImage, IMap<ScopeKey, Arc<ScopeState>>>,
}

/// An image as one host crawled it. Image rows are trusted per host: a
/// container inherits only from its own host's crawl of its image, so no
/// agent can change what another host's containers show (README, "Who may
/// write what").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostImage {
    pub host: Arc<str>,
    pub image: Arc<str>,
}

impl HostImage {
    fn of(host: &Arc<str>, image: &Arc<str>) -> HostImage {
        HostImage { host: host.clone(), image: image.clone() }
    }
}

/// A [`HostImage`] borrowed: hashes as it does.
#[derive(Hash, Clone, Copy)]
struct HostImageRef<'a> {
    host: &'a str,
    image: &'a str,
}

impl equivalent::Equivalent<HostImage> for HostImageRef<'_> {
    fn equivalent(&self, k: &HostImage) -> bool {
        self.image == &*k.image && self.host == &*k.host
    }
}

/// A scope key borrowed from a row's columns: hashes as [`ScopeKey`] does, so
/// the index is searched without building one.
#[derive(Hash)]
struct KeyRef<'a> {
    host: &'a str,
    scope: &'a str,
    scope_id: &'a str,
}

impl equivalent::Equivalent<ScopeKey> for KeyRef<'_> {
    fn equivalent(&self, k: &ScopeKey) -> bool {
        self.scope_id == &*k.scope_id && self.host == &*k.host && self.scope == &*k.scope
    }
}

/// Containers of one host listing the index keeps (the rest stay in
/// history): a host that lists millions cannot take the index's memory.
pub const MAX_LISTED_CONTAINERS: usize = 100_000;

pub use crate::rows::MAX_KEY_BYTES;

const ALL_TABLES: u64 = u64::MAX;
const UNCHANGED_IX: usize = 23;
const _: () = assert!(TABLES.len() <= 64, "a table bitset is a u64");

fn table_index(name: &str) -> Option<usize> {
    TABLES.iter().position(|t| t.name == name)
}

/// Parses `crawls.tables`; null (crawls stored before the column) means every table.
fn table_bits(list: Option<&str>) -> u64 {
    match list {
        None => ALL_TABLES,
        Some(l) => l.split(',').filter_map(table_index).fold(0, |b, i| b | (1 << i)),
    }
}

/// Whether rows of `t` make entries in the index (or its pending state).
pub fn indexed(t: &Table) -> bool {
    [CRAWLS.name, UNCHANGED.name, INHERITED.name, CONTAINERS.name].contains(&t.name)
}

/// The four common columns of a batch, by position (every declared schema starts with them).
struct Common<'a> {
    host: &'a arrow_array::StringArray,
    scope: &'a arrow_array::StringArray,
    scope_id: &'a arrow_array::StringArray,
    crawl_time: &'a arrow_array::PrimitiveArray<TimestampMicrosecondType>,
}

impl<'a> Common<'a> {
    fn of(b: &'a RecordBatch) -> Option<Common<'a>> {
        let s = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>());
        Some(Common {
            host: s("host")?,
            scope: s("scope")?,
            scope_id: s("scope_id")?,
            crawl_time: b.column_by_name("crawl_time")?.as_primitive_opt::<TimestampMicrosecondType>()?,
        })
    }
}

/// Where a completed crawl stands among its scope's crawls: received later
/// is newer; crawls stored before `received` was kept (`i64::MIN`) are older
/// than any that has it, and ordered among themselves by date, as then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Arrival {
    received: i64,
    crawl_time: i64,
}

impl Arrival {
    fn of(s: &ScopeState) -> Arrival {
        Arrival { received: s.received, crawl_time: s.crawl_time }
    }
}

fn received_col(b: &RecordBatch) -> Option<&arrow_array::PrimitiveArray<TimestampMicrosecondType>> {
    b.column_by_name("received").and_then(|x| x.as_primitive_opt::<TimestampMicrosecondType>())
}

/// Row `i`'s `received`, or `i64::MIN` where there is none (see [`Arrival`]).
fn received_at(a: Option<&arrow_array::PrimitiveArray<TimestampMicrosecondType>>, i: usize) -> i64 {
    a.filter(|a| a.is_valid(i)).map_or(i64::MIN, |a| a.value(i))
}

fn string_col<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a arrow_array::StringArray> {
    b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>())
}

fn opt(a: Option<&arrow_array::StringArray>, i: usize) -> Option<&str> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
}

impl Index {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(x) = self.names.get(s) {
            return x.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.names.insert(a.clone(), a.clone());
        a
    }

    fn key(&mut self, c: &Common<'_>, i: usize) -> ScopeKey {
        let scope = self.intern(c.scope.value(i));
        let id = c.scope_id.value(i);
        let scope_id = if &*scope == scope::IMAGE { self.intern(id) } else { Arc::from(id) };
        ScopeKey { host: self.intern(c.host.value(i)), scope, scope_id }
    }

    /// Notes rows that just became visible: `unchanged`, `inherited` and the
    /// host's `containers` listing wait in `pending` for their crawl's
    /// `crawls` row, which completes the crawl. Other tables change nothing.
    pub fn apply(&mut self, pending: &mut Pending, table: &Table, batches: &[RecordBatch]) {
        for b in batches {
            let Some(c) = Common::of(b) else { continue };
            match table.name {
                n if n == CRAWLS.name => {
                    let list = string_col(b, "tables");
                    let received = received_col(b);
                    for i in 0..b.num_rows() {
                        let key = self.key(&c, i);
                        let done = pending.remove(&key);
                        let t = c.crawl_time.value(i);
                        let r = received_at(received, i);
                        let p = match done {
                            Some(p) if p.crawl_time == t => p,
                            // Rows of another crawl, which arrived after this one's: still in flight.
                            Some(p) => {
                                pending.insert(key.clone(), p);
                                PendingCrawl::default()
                            }
                            None => PendingCrawl::default(),
                        };
                        self.complete(key, Arrival { crawl_time: t, received: r }, table_bits(opt(list, i)), p);
                    }
                }
                n if n == UNCHANGED.name || n == INHERITED.name || n == CONTAINERS.name => {
                    let name = string_col(b, "table_name");
                    let since =
                        b.column_by_name("since").and_then(|x| x.as_primitive_opt::<TimestampMicrosecondType>());
                    let image = string_col(b, "image_id");
                    let (id, cname) = (string_col(b, "container_id"), string_col(b, "name"));
                    for i in 0..b.num_rows() {
                        if n == CONTAINERS.name && c.scope.value(i) != scope::HOST {
                            continue;
                        }
                        let key = self.key(&c, i);
                        let t = c.crawl_time.value(i);
                        let new = !self.scopes.contains_key(&key);
                        let p = pending.entry(key, t, new);
                        if n == CONTAINERS.name {
                            let listing = p.listing.get_or_insert_with(HashMap::default);
                            let fits = |id: &&str| listing.len() < MAX_LISTED_CONTAINERS && id.len() <= MAX_KEY_BYTES;
                            if let Some(id) = opt(id, i).filter(fits) {
                                let (id, nm) = (Arc::from(id), opt(cname, i).map(Arc::from));
                                listing.insert(id, nm);
                            }
                            continue;
                        }
                        let Some(ix) = opt(name, i).and_then(table_index) else { continue };
                        if n == UNCHANGED.name {
                            p.any_unchanged = true;
                            if let Some(s) = since.filter(|s| s.is_valid(i)) {
                                // One entry per table, however many rows say so.
                                p.since.retain(|(t, _)| *t != ix as u8);
                                p.since.push((ix as u8, s.value(i)));
                            }
                        } else if let Some(img) = opt(image, i).filter(|x| x.len() <= MAX_KEY_BYTES) {
                            p.inherited.retain(|(t, _)| *t != ix as u8);
                            p.inherited.push((ix as u8, self.intern(img)));
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// A crawl of `key` completed: it becomes the scope's current state
    /// unless a crawl received later already did.
    fn complete(&mut self, key: ScopeKey, at: Arrival, tables: u64, p: PendingCrawl) {
        self.complete_with(key, at, tables, p, None)
    }

    /// [`Index::complete`], given the listing of the earlier crawl a host's
    /// containers were unchanged since (else the scope's current one is used).
    fn complete_with(
        &mut self,
        key: ScopeKey,
        at: Arrival,
        tables: u64,
        p: PendingCrawl,
        earlier: Option<Arc<Listing>>,
    ) {
        let Arrival { crawl_time, received } = at;
        // The key the index holds for the scope, when it has one (its ids shared).
        let (key, prev) = match self.scopes.get_key_value(&key) {
            Some((k, s)) => (k.clone(), Some(s.clone())),
            None => (self.listed_id(key), None),
        };
        if prev.as_ref().is_some_and(|s| Arrival::of(s) > at) {
            return;
        }
        // A table marked unchanged has rows (in the crawl it points at), listed in `tables` or not:
        // agents that did not even read it again do not list it.
        let tables = p.since.iter().fold(tables, |b, (i, _)| b | (1 << i));
        let inherited = Inherited::new(p.inherited);
        let since = p.since.into_boxed_slice();
        let any_unchanged = p.any_unchanged;
        let mut state = ScopeState { crawl_time, received, tables, since, inherited, any_unchanged, listing: None };
        if &*key.scope == scope::HOST {
            let ix = CONTAINERS.index();
            state.listing = Some(match (p.listing, state.data_time(ix)) {
                (Some(names), _) => {
                    Arc::new(Listing { data_time: crawl_time, names: self.shared_ids(&key.host, names) })
                }
                // Unchanged since an earlier crawl: that crawl's listing.
                (None, Some(t)) if t != crawl_time => earlier
                    .or_else(|| prev.as_ref().and_then(|s| s.listing.clone()))
                    .filter(|l| l.data_time == t)
                    .unwrap_or_default(),
                _ => Arc::default(),
            });
            let newer = self.hosts.get(&key.host).and_then(|k| self.scopes.get(k)).is_none_or(|s| Arrival::of(s) <= at);
            if newer {
                self.hosts.insert(key.host.clone(), key.clone());
            }
        }
        if let Some(prev) = &prev {
            self.unlink_heir(&key, prev);
        }
        let state = Arc::new(state);
        for image in state.inherited.images() {
            self.heirs.entry(HostImage::of(&key.host, image)).or_default().insert(key.clone(), state.clone());
        }
        if prev.is_none() {
            *self.per_host.entry(key.host.clone()).or_default() += 1;
        }
        self.scopes.insert(key, state);
    }

    /// Takes `key`, whose state was `state`, off the heirs of the images it inherited from.
    fn unlink_heir(&mut self, key: &ScopeKey, state: &ScopeState) {
        for image in state.inherited.images() {
            let hi = HostImageRef { host: &key.host, image };
            if let Some(h) = self.heirs.get_mut(&hi) {
                h.remove(key);
                if h.is_empty() {
                    self.heirs.remove(&hi);
                }
            }
        }
    }

    /// A new container's `key`, its id the one its host's listing already
    /// holds rather than a copy: ids are long and each container is named in
    /// both places.
    fn listed_id(&self, key: ScopeKey) -> ScopeKey {
        if &*key.scope != scope::CONTAINER {
            return key;
        }
        let host = self.hosts.get(&key.host).and_then(|k| self.scopes.get(k));
        let listed = host.and_then(|h| h.listing.as_ref()).and_then(|l| l.names.get_key_value(&*key.scope_id));
        match listed {
            Some((id, _)) => ScopeKey { scope_id: id.clone(), ..key },
            None => key,
        }
    }

    /// A host's new listing, naming its containers by the ids their scopes hold.
    fn shared_ids(
        &self,
        host: &Arc<str>,
        names: HashMap<Arc<str>, Option<Arc<str>>>,
    ) -> HashMap<Arc<str>, Option<Arc<str>>> {
        let mut out = HashMap::with_capacity_and_hasher(names.len(), Hasher::default());
        for (id, name) in names {
            let k = KeyRef { host, scope: scope::CONTAINER, scope_id: &id };
            let id = self.scopes.get_key_value(&k).map(|(k, _)| k.scope_id.clone()).unwrap_or(id);
            out.insert(id, name);
        }
        out
    }

    /// Container scopes that have left current state for good, with the
    /// state they left in: their host (which sends host crawls) expired, or
    /// its latest listing no longer has them and they were not crawled since.
    /// Nothing reads them, and a container id is never reused, so
    /// [`Index::forget`] can drop them: without it the index would grow with
    /// every container a fleet ever ran. A host that comes back has its
    /// containers back with their next crawls, which carry their whole state.
    pub fn departed(&self, cutoff: i64) -> Vec<(ScopeKey, Arc<ScopeState>)> {
        let hosts = self.live_hosts(cutoff);
        self.scopes
            .iter()
            .filter(|(k, s)| &*k.scope == scope::CONTAINER && Self::alive(&hosts, k, s, cutoff).is_none())
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    /// Drops the scopes [`Index::departed`] found, each unless it changed
    /// since (a newer crawl, or its host back and listing it). Returns how many went.
    pub fn forget(&mut self, departed: Vec<(ScopeKey, Arc<ScopeState>)>, cutoff: i64) -> usize {
        let mut gone = 0;
        for (key, state) in departed {
            let Some(now) = self.scopes.get(&key) else { continue };
            if !Arc::ptr_eq(now, &state) {
                continue;
            }
            let host = self.host_state(&key.host, cutoff);
            let host = host.as_ref().map(|h| h.as_deref());
            if Self::alive_given(host, &key.scope, &key.scope_id, &state, cutoff).is_some() {
                continue;
            }
            self.unlink_heir(&key, &state);
            self.scopes.remove(&key);
            if let Some(n) = self.per_host.get_mut(&key.host) {
                *n -= 1;
                if *n == 0 {
                    self.per_host.remove(&key.host);
                }
            }
            gone += 1;
        }
        gone
    }

    /// The first scope of batch `b` (as "host/scope/scope_id") that neither
    /// this index nor `pending` (crawls in flight) holds.
    pub fn unknown_scope(&self, pending: &Pending, b: &RecordBatch) -> Option<String> {
        let c = Common::of(b)?;
        let mut last: Option<usize> = None;
        for i in 0..b.num_rows() {
            let same = last.is_some_and(|j| {
                c.scope_id.value(j) == c.scope_id.value(i)
                    && c.host.value(j) == c.host.value(i)
                    && c.scope.value(j) == c.scope.value(i)
            });
            last = Some(i);
            if same {
                continue;
            }
            let (host, scope, scope_id) = (c.host.value(i), c.scope.value(i), c.scope_id.value(i));
            if self.scopes.contains_key(&KeyRef { host, scope, scope_id }) {
                continue;
            }
            let key = ScopeKey { host: host.into(), scope: scope.into(), scope_id: scope_id.into() };
            if !pending.contains(&key) {
                return Some(format!("{host}/{scope}/{scope_id}"));
            }
        }
        None
    }

    /// The scopes `batches` name that neither this index nor `pending`
    /// holds, counted per host: what admitting them would add to each host's quota.
    pub fn new_scopes(&self, pending: &Pending, batches: &[RecordBatch]) -> Vec<(String, usize)> {
        let mut seen: std::collections::HashSet<ScopeKey> = std::collections::HashSet::new();
        let mut out: Vec<(String, usize)> = Vec::new();
        for b in batches {
            let Some(c) = Common::of(b) else { continue };
            let mut last: Option<usize> = None;
            for i in 0..b.num_rows() {
                let (host, scope, scope_id) = (c.host.value(i), c.scope.value(i), c.scope_id.value(i));
                let same = last.is_some_and(|j| {
                    c.scope_id.value(j) == scope_id && c.host.value(j) == host && c.scope.value(j) == scope
                });
                last = Some(i);
                if same || self.scopes.contains_key(&KeyRef { host, scope, scope_id }) {
                    continue;
                }
                let key = ScopeKey { host: host.into(), scope: scope.into(), scope_id: scope_id.into() };
                if pending.contains(&key) || !seen.insert(key) {
                    continue;
                }
                match out.iter_mut().find(|(h, _)| h == host) {
                    Some((_, n)) => *n += 1,
                    None => out.push((host.to_string(), 1)),
                }
            }
        }
        out
    }

    /// Scopes of `host` the index holds.
    pub fn host_scopes(&self, host: &str) -> usize {
        self.per_host.get(host).copied().unwrap_or(0)
    }

    /// Whether `host` has sent a completed crawl of image `id`.
    pub fn has_image(&self, host: &str, id: &str) -> bool {
        self.image(host, id).is_some()
    }

    /// `host`'s latest completed crawl of image `id`: its key and state.
    fn image(&self, host: &str, id: &str) -> Option<(&ScopeKey, &Arc<ScopeState>)> {
        self.scopes.get_key_value(&KeyRef { host, scope: scope::IMAGE, scope_id: id })
    }

    /// Number of scopes with a completed crawl.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// Each host's scope, looked up once per call rather than once per
    /// container: `Some` when alive (crawled within the expiry), `None` when
    /// expired. Hosts that send no host crawls are absent.
    fn live_hosts(&self, cutoff: i64) -> HashMap<&str, Option<&ScopeState>> {
        let mut out = HashMap::with_capacity_and_hasher(self.hosts.len(), Hasher::default());
        for (host, k) in &self.hosts {
            if let Some(h) = self.scopes.get(k) {
                out.insert(&**host, (h.crawl_time >= cutoff).then_some(&**h));
            }
        }
        out
    }

    /// Whether the scope is in current state, and the container's name when
    /// it is one: a host crawled within the expiry; a container its live host
    /// still lists (or crawled since the host's listing, or of a host that
    /// sends no host crawls); anything else (images) always. `host` is the
    /// container's host as [`Index::live_hosts`] has it.
    fn alive_given<'a>(
        host: Option<Option<&'a ScopeState>>,
        kind: &str,
        scope_id: &str,
        s: &ScopeState,
        cutoff: i64,
    ) -> Option<Option<&'a Arc<str>>> {
        match kind {
            scope::HOST => (s.crawl_time >= cutoff).then_some(None),
            scope::CONTAINER => match host {
                None => Some(None),
                Some(None) => None,
                Some(Some(h)) => match h.listing.as_ref().and_then(|l| l.names.get(scope_id)) {
                    Some(name) => Some(name.as_ref()),
                    None if s.crawl_time > h.crawl_time => Some(None),
                    None => None,
                },
            },
            _ => Some(None),
        }
    }

    fn alive<'a>(
        hosts: &HashMap<&str, Option<&'a ScopeState>>,
        key: &ScopeKey,
        s: &ScopeState,
        cutoff: i64,
    ) -> Option<Option<&'a Arc<str>>> {
        let host = if &*key.scope == scope::CONTAINER { hosts.get(&*key.host).copied() } else { None };
        Self::alive_given(host, &key.scope, &key.scope_id, s, cutoff)
    }

    /// Host `host`'s state for [`Index::alive_given`]: `None` when it sends
    /// no host crawls, `Some(None)` when expired.
    fn host_state(&self, host: &str, cutoff: i64) -> Option<Option<Arc<ScopeState>>> {
        let k = self.hosts.get(host)?;
        let h = self.scopes.get(k)?;
        Some((h.crawl_time >= cutoff).then(|| h.clone()))
    }

    /// Keys of every live scope's latest crawl: (host, scope, scope_id, crawl_time, container).
    pub fn latest(&self, cutoff: i64, all: bool) -> RecordBatch {
        let hosts = self.live_hosts(cutoff);
        let mut k = KeyBuilder::with_capacity(self.scopes.len());
        for (key, s) in &self.scopes {
            let alive = Self::alive(&hosts, key, s, cutoff);
            let container = if all { Some(alive.flatten()) } else { alive };
            if let Some(c) = container {
                k.push(key, s.crawl_time, c.map(|c| &**c));
            }
        }
        k.finish()
    }

    /// Where table `t`'s current rows are, for the scopes `only` admits (see [`Keys`]).
    pub fn keys(&self, t: &Table, cutoff: i64, only: &KeyFilter) -> Keys {
        let ix = t.index();
        let hosts = self.live_hosts(cutoff);
        // Sized for the whole index unless a filter narrows it (then grown as needed).
        let n = if only.host.is_none() && only.scope.is_none() { self.scopes.len() } else { 0 };
        let shared = if inheritable(t) { n } else { 0 };
        let mut own = KeyBuilder::with_capacity(n);
        let mut inh = KeyBuilder::with_capacity(shared);
        let mut inh_image = arrow_array::builder::UInt32Builder::with_capacity(shared);
        let mut images = ImageCols::default();
        // (host, image id) → its key in `images` (None: no current rows of `t`), resolved once each.
        let mut image_keys: HashMap<(&str, &str), Option<u32>> = HashMap::default();
        for (key, s) in &self.scopes {
            if !only.admits(key) {
                continue;
            }
            let Some(container) = Self::alive(&hosts, key, s, cutoff) else { continue };
            let container = container.map(|c| &**c);
            if let Some(t) = s.data_time(ix) {
                own.push(key, t, container);
            }
            let Some(image) = s.inherits(ix) else { continue };
            let image_key = *image_keys.entry((&*key.host, &**image)).or_insert_with(|| {
                let (ik, is) = self.image(&key.host, image)?;
                let it = is.data_time(ix)?;
                images.push(ik, it);
                Some(images.time.len() as u32 - 1)
            });
            if let Some(k) = image_key {
                inh.push(key, s.crawl_time, container);
                inh_image.append_value(k);
            }
        }
        let mut inherited = inh.finish();
        let mut cols = inherited.columns().to_vec();
        cols.push(Arc::new(inh_image.finish()));
        inherited = RecordBatch::try_new(inherited_key_schema(), cols).expect("key columns match their schema");
        Keys { own: own.finish(), inherited, images: images.finish() }
    }

    /// Rebuilds the index from stored rows: Parquet `files` of the four
    /// tables it reads, then `batches` not yet flushed (both as a snapshot
    /// lists them). Reads only the columns it needs.
    pub fn build(
        files: &impl Fn(&str) -> Vec<PathBuf>,
        batches: &impl Fn(&str) -> Vec<RecordBatch>,
    ) -> Result<(Index, Pending), String> {
        let read = |t: &Table, cols: &[&str], f: &mut dyn FnMut(&RecordBatch)| -> Result<(), String> {
            for p in files(t.name) {
                read_parquet(&p, cols, f)?;
            }
            for b in batches(t.name) {
                f(&b);
            }
            Ok(())
        };
        let mut ix = Index::default();
        // The crawl of every scope received last, the tables it has rows of,
        // and the latest date of any of its completed crawls.
        let mut latest: HashMap<ScopeKey, (i64, Arrival, u64, i64)> = HashMap::default();
        read(&CRAWLS, &["host", "scope", "scope_id", "crawl_time", "tables", "received"], &mut |b| {
            let Some(c) = Common::of(b) else { return };
            let list = string_col(b, "tables");
            let received = received_col(b);
            for i in 0..b.num_rows() {
                let key = ix.key(&c, i);
                let t = c.crawl_time.value(i);
                let at = Arrival { crawl_time: t, received: received_at(received, i) };
                let first = Arrival { crawl_time: i64::MIN, received: i64::MIN };
                let e = latest.entry(key).or_insert((i64::MIN, first, 0, i64::MIN));
                e.3 = e.3.max(t);
                if at >= e.1 {
                    *e = (t, at, table_bits(opt(list, i)), e.3);
                }
            }
        })?;
        // Rows of those crawls, and of newer ones still in flight (pending
        // after the rebuild), fed in as they arrived. `older` keeps the
        // listings of hosts whose containers were unchanged since an earlier crawl.
        let (mut at, mut beyond) = (Pending::default(), Pending::default());
        let mut older: HashMap<ScopeKey, i64> = HashMap::default();
        let split = |ix: &mut Index,
                     at: &mut Pending,
                     beyond: &mut Pending,
                     t: &Table,
                     b: &RecordBatch,
                     older: &HashMap<ScopeKey, i64>,
                     old: &mut Vec<u32>| {
            let Some(c) = Common::of(b) else { return };
            let (mut now, mut later) = (Vec::new(), Vec::new());
            for i in 0..b.num_rows() {
                let key = ix.key(&c, i);
                let t = c.crawl_time.value(i);
                match latest.get(&key) {
                    Some((lt, ..)) if t == *lt => now.push(i as u32),
                    // A completed crawl, not the current one (received earlier, whatever its date).
                    Some((_, _, _, done)) if t <= *done => {
                        if older.get(&key) == Some(&t) {
                            old.push(i as u32);
                        }
                    }
                    _ => later.push(i as u32),
                }
            }
            for (rows, p) in [(now, at), (later, beyond)] {
                if rows.len() == b.num_rows() {
                    ix.apply(p, t, std::slice::from_ref(b));
                } else if !rows.is_empty() {
                    let take = arrow_array::UInt32Array::from(rows);
                    let b = arrow_select::take::take_record_batch(b, &take).expect("rows of the batch");
                    ix.apply(p, t, &[b]);
                }
            }
        };
        for (t, cols) in [
            (&UNCHANGED, ["host", "scope", "scope_id", "crawl_time", "table_name", "since"]),
            (&INHERITED, ["host", "scope", "scope_id", "crawl_time", "table_name", "image_id"]),
        ] {
            read(t, &cols, &mut |b| split(&mut ix, &mut at, &mut beyond, t, b, &older, &mut Vec::new()))?;
        }
        for (key, p) in &at.crawls {
            let ci = CONTAINERS.index() as u8;
            if let Some((_, s)) = p.since.iter().find(|(i, _)| *i == ci).filter(|_| &*key.scope == scope::HOST) {
                older.insert(key.clone(), *s);
            }
        }
        let mut listings: HashMap<ScopeKey, Listing> = HashMap::default();
        read(&CONTAINERS, &["host", "scope", "scope_id", "crawl_time", "container_id", "name"], &mut |b| {
            let mut old = Vec::new();
            split(&mut ix, &mut at, &mut beyond, &CONTAINERS, b, &older, &mut old);
            let Some(c) = Common::of(b) else { return };
            let (id, name) = (string_col(b, "container_id"), string_col(b, "name"));
            for i in old.into_iter().map(|i| i as usize).filter(|&i| c.scope.value(i) == scope::HOST) {
                let key = ix.key(&c, i);
                let Some(id) = opt(id, i) else { continue };
                let l = listings
                    .entry(key)
                    .or_insert_with(|| Listing { data_time: c.crawl_time.value(i), names: HashMap::default() });
                l.names.insert(Arc::from(id), opt(name, i).map(Arc::from));
            }
        })?;
        for (key, (t, arrival, tables, _)) in latest {
            let p = at.remove(&key).unwrap_or_else(|| PendingCrawl { crawl_time: t, ..Default::default() });
            let earlier = listings.remove(&key).map(Arc::new);
            ix.complete_with(key, arrival, tables, p, earlier);
        }
        Ok((ix, beyond))
    }
}

/// A container sharing an image's rows, as [`Current::heirs`] lists it.
#[derive(Debug, Clone)]
pub struct Heir {
    pub host: Arc<str>,
    pub scope_id: Arc<str>,
    pub crawl_time: i64,
    pub container: Option<Arc<str>>,
}

/// Decides, row by row, which stored rows of one table are current state —
/// the test the current-state views apply to history instead of joining it
/// to keys of every live scope. Lookups go straight to the index; runs of
/// rows from one scope (as crawls are stored) are decided once.
pub struct Current {
    ix: Index,
    t: usize,
    cutoff: i64,
    only: KeyFilter,
    hosts: HashMap<Arc<str>, Option<Option<Arc<ScopeState>>>>,
    /// The last scope looked up: (host, scope, scope_id), its state and its liveness.
    last: Option<((String, String, String), Option<Arc<ScopeState>>, Option<Option<Arc<str>>>)>,
    /// Image id → host → the containers [`Current::heirs`] found.
    heirs: HashMap<Arc<str>, HashMap<Arc<str>, Option<Arc<[Heir]>>>>,
    /// Containers to check from which [`Current::heirs_of`] uses every core.
    parallel_from: usize,
}

impl Current {
    /// For table `t` as of `ix`, hosts crawled before `cutoff` expired;
    /// `only` narrows the containers [`Current::heirs`] lists.
    pub fn new(ix: Index, t: &Table, cutoff: i64, only: KeyFilter) -> Current {
        Current {
            ix,
            t: t.index(),
            cutoff,
            only,
            hosts: HashMap::default(),
            last: None,
            heirs: HashMap::default(),
            parallel_from: 16_384,
        }
    }

    fn host(&mut self, host: &str) -> Option<Option<Arc<ScopeState>>> {
        if let Some(h) = self.hosts.get(host) {
            return h.clone();
        }
        let h = self.ix.host_state(host, self.cutoff);
        self.hosts.insert(Arc::from(host), h.clone());
        h
    }

    /// Whether a stored row of the scope (host, scope, scope_id) from the
    /// crawl at `crawl_time` is current: `Some(container name)` when it is.
    pub fn own(&mut self, host: &str, scope: &str, scope_id: &str, crawl_time: i64) -> Option<Option<Arc<str>>> {
        let same = self.last.as_ref().is_some_and(|((h, s, i), ..)| i == scope_id && h == host && s == scope);
        if !same {
            let state = self.ix.scopes.get(&KeyRef { host, scope, scope_id }).cloned();
            let alive = state.as_ref().and_then(|st| {
                let h = if scope == scope::CONTAINER { self.host(host) } else { None };
                let h = h.as_ref().map(|h| h.as_deref());
                Index::alive_given(h, scope, scope_id, st, self.cutoff).map(|c| c.cloned())
            });
            self.last = Some(((host.to_owned(), scope.to_owned(), scope_id.to_owned()), state, alive));
        }
        let (_, state, alive) = self.last.as_ref().expect("just looked up");
        if state.as_ref()?.data_time(self.t) != Some(crawl_time) {
            return None;
        }
        alive.clone()
    }

    /// Whether the rows of image `image_id` crawled by `host` at
    /// `crawl_time` are the image's current ones of the table.
    fn image_current(&self, host: &str, image_id: &str, crawl_time: i64) -> bool {
        self.ix.image(host, image_id).is_some_and(|(_, s)| s.data_time(self.t) == Some(crawl_time))
    }

    /// The live containers (those `only` admits) that share the rows of
    /// image `image_id` crawled by `host` at `crawl_time`, when those rows
    /// are the image's current ones of the table; `None` otherwise.
    pub fn heirs(&mut self, host: &str, image_id: &str, crawl_time: i64) -> Option<Arc<[Heir]>> {
        self.heirs_of(&[(host, image_id, crawl_time)]).pop().flatten()
    }

    /// [`Current::heirs`] of several image rows at once: images not seen
    /// before are resolved on every core when there are many containers to
    /// check (each check is a few lookups into memory no cache holds).
    pub fn heirs_of(&mut self, rows: &[(&str, &str, i64)]) -> Vec<Option<Arc<[Heir]>>> {
        let mut todo: Vec<HostImageRef<'_>> = Vec::new();
        for &(host, image, time) in rows {
            let hi = HostImageRef { host, image };
            let cached = self.heirs.get(image).is_some_and(|h| h.contains_key(host));
            let seen = cached || todo.iter().any(|t| t.host == host && t.image == image);
            if !seen && self.image_current(host, image, time) {
                todo.push(hi);
            }
        }
        if !todo.is_empty() {
            let work: usize = todo.iter().map(|hi| self.ix.heirs.get(hi).map_or(0, |h| h.len())).sum();
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(todo.len());
            let found: Vec<(HostImageRef<'_>, Option<Arc<[Heir]>>)> = if threads > 1 && work >= self.parallel_from {
                // Every host's state up front, then shared read-only by the threads.
                let hosts: Vec<Arc<str>> = self.ix.hosts.keys().cloned().collect();
                for h in hosts {
                    self.host(&h);
                }
                let this = &*self;
                let lookup = |h: &str| this.hosts.get(h).cloned().unwrap_or(None);
                std::thread::scope(|sc| {
                    let parts: Vec<_> = (0..threads)
                        .map(|n| {
                            let mine: Vec<&HostImageRef<'_>> = todo.iter().skip(n).step_by(threads).collect();
                            let lookup = &lookup;
                            sc.spawn(move || {
                                mine.into_iter()
                                    .map(|hi| (HostImageRef { ..*hi }, this.resolve(hi, &mut |h| lookup(h))))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    parts.into_iter().flat_map(|p| p.join().expect("heirs thread")).collect()
                })
            } else {
                // The host cache moves out of `self` while `resolve` borrows it.
                let mut cache = std::mem::take(&mut self.hosts);
                let mut lookup = |h: &str| {
                    if let Some(x) = cache.get(h) {
                        return x.clone();
                    }
                    let x = self.ix.host_state(h, self.cutoff);
                    cache.insert(Arc::from(h), x.clone());
                    x
                };
                let out = todo
                    .into_iter()
                    .map(|hi| {
                        let h = self.resolve(&hi, &mut lookup);
                        (hi, h)
                    })
                    .collect();
                self.hosts = cache;
                out
            };
            for (hi, h) in found {
                self.heirs.entry(Arc::from(hi.image)).or_default().insert(Arc::from(hi.host), h);
            }
        }
        rows.iter()
            .map(|&(host, image, time)| {
                if self.image_current(host, image, time) {
                    self.heirs.get(image).and_then(|h| h.get(host)).cloned().flatten()
                } else {
                    None
                }
            })
            .collect()
    }

    /// The live containers sharing the rows of the table that `hi.host`
    /// crawled of image `hi.image` (`host` gives a container's host's
    /// state, as [`Index::host_state`]).
    fn resolve(
        &self,
        hi: &HostImageRef<'_>,
        host: &mut dyn FnMut(&str) -> Option<Option<Arc<ScopeState>>>,
    ) -> Option<Arc<[Heir]>> {
        let mut out = Vec::new();
        for (key, s) in self.ix.heirs.get(hi).into_iter().flatten() {
            if !self.only.admits(key) || s.inherits(self.t).is_none_or(|i| &**i != hi.image) {
                continue;
            }
            let h = if &*key.scope == scope::CONTAINER { host(&key.host) } else { None };
            let h = h.as_ref().map(|h| h.as_deref());
            let Some(container) = Index::alive_given(h, &key.scope, &key.scope_id, s, self.cutoff) else { continue };
            out.push(Heir {
                host: key.host.clone(),
                scope_id: key.scope_id.clone(),
                crawl_time: s.crawl_time,
                container: container.cloned(),
            });
        }
        (!out.is_empty()).then(|| out.into())
    }
}

/// Reads `cols` (those the file has) of a Parquet file, batch by batch.
fn read_parquet(path: &Path, cols: &[&str], f: &mut dyn FnMut(&RecordBatch)) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("reading {}: {e}", path.display());
    let file = File::open(path).map_err(|e| err(&e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(&e))?;
    let schema = builder.schema().clone();
    let roots: Vec<usize> = cols.iter().filter_map(|c| schema.index_of(c).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    for b in builder.with_projection(mask).with_batch_size(64 * 1024).build().map_err(|e| err(&e))? {
        f(&b.map_err(|e| err(&e))?);
    }
    Ok(())
}

/// Builds key batches.
struct KeyBuilder {
    host: StringBuilder,
    scope: StringBuilder,
    scope_id: StringBuilder,
    time: TimestampMicrosecondBuilder,
    container: StringBuilder,
}

/// The image crawls inherited rows are in: (image_key, image_host, image_id, image_time).
#[derive(Default)]
struct ImageCols {
    host: StringBuilder,
    id: StringBuilder,
    time: TimestampMicrosecondBuilder,
}

impl ImageCols {
    fn push(&mut self, k: &ScopeKey, t: i64) {
        self.host.append_value(&k.host);
        self.id.append_value(&k.scope_id);
        self.time.append_value(t);
    }

    fn finish(mut self) -> RecordBatch {
        let n = self.time.len() as u32;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(arrow_array::UInt32Array::from_iter_values(0..n)),
            Arc::new(self.host.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.time.finish().with_timezone("+00:00")),
        ];
        RecordBatch::try_new(image_key_schema(), cols).expect("image key columns match their schema")
    }
}

/// Keys of a table's current rows, from [`Index::keys`]: the catalog joins the
/// table's history to them (see `catalog::CurrentTable`).
#[derive(Debug, Clone)]
pub struct Keys {
    /// Scopes holding their own rows: (host, scope, scope_id, data_time, container).
    pub own: RecordBatch,
    /// Containers sharing their image's rows: (host, scope, scope_id,
    /// crawl_time, container, image_key).
    pub inherited: RecordBatch,
    /// The image crawls holding those rows: (image_key, image_host, image_id,
    /// image_time) — a few hundred rows however many containers run them, so
    /// that history is joined to them first and to the containers by an
    /// integer.
    pub images: RecordBatch,
}

/// Which scopes [`Index::keys`] hands out: a query's equality filters on
/// `host` and `scope`, applied before any key is built.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub host: Option<String>,
    pub scope: Option<String>,
}

impl KeyFilter {
    fn admits(&self, k: &ScopeKey) -> bool {
        self.host.as_deref().is_none_or(|h| h == &*k.host) && self.scope.as_deref().is_none_or(|s| s == &*k.scope)
    }
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// Schema of [`Index::latest`] and of the own keys of [`Index::keys`] (`time` named `data_time` there).
pub fn key_schema(time: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("scope_id", DataType::Utf8, false),
        Field::new(time, ts(), false),
        Field::new("container", DataType::Utf8, true),
    ]))
}

/// Schema of [`Keys::inherited`].
pub fn inherited_key_schema() -> SchemaRef {
    let mut f: Vec<Field> = key_schema("crawl_time").fields().iter().map(|f| f.as_ref().clone()).collect();
    f.push(Field::new("image_key", DataType::UInt32, false));
    Arc::new(Schema::new(f))
}

/// Schema of [`Keys::images`].
pub fn image_key_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("image_key", DataType::UInt32, false),
        Field::new("image_host", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, false),
        Field::new("image_time", ts(), false),
    ]))
}

impl KeyBuilder {
    fn with_capacity(n: usize) -> KeyBuilder {
        KeyBuilder {
            host: StringBuilder::with_capacity(n, n * 12),
            scope: StringBuilder::with_capacity(n, n * 9),
            scope_id: StringBuilder::with_capacity(n, n * 64),
            time: TimestampMicrosecondBuilder::with_capacity(n),
            container: StringBuilder::with_capacity(n, n * 16),
        }
    }

    fn push(&mut self, k: &ScopeKey, t: i64, container: Option<&str>) {
        self.host.append_value(&k.host);
        self.scope.append_value(&k.scope);
        self.scope_id.append_value(&k.scope_id);
        self.time.append_value(t);
        self.container.append_option(container);
    }

    fn finish(mut self) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.host.finish()),
            Arc::new(self.scope.finish()),
            Arc::new(self.scope_id.finish()),
            Arc::new(self.time.finish().with_timezone("+00:00")),
            Arc::new(self.container.finish()),
        ];
        RecordBatch::try_new(key_schema("data_time"), cols).expect("key columns match their schema")
    }
}

/// Tables whose rows a container can share with its image: those the filesystem collectors fill.
pub fn inheritable(t: &Table) -> bool {
    [
        &tables::OS,
        &tables::PACKAGES,
        &tables::PACKAGES_NOT_INSTALLED,
        &tables::PACKAGE_FILES,
        &tables::USERS,
        &tables::GROUPS,
        &tables::FILES,
        &tables::CONFIGS,
        &tables::UNOWNED_FILES,
        &tables::EMBEDDED_LIBRARIES,
    ]
    .iter()
    .any(|x| x.name == t.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use periscope_agent::collectors::Sink;
    use periscope_agent::encode::{Common as Stamp, Value};
    use periscope_proto::tables::PACKAGES;

    #[test]
    fn unchanged_is_table_23() {
        assert_eq!(UNCHANGED.index(), UNCHANGED_IX);
    }

    /// Batches of one crawl, as an agent sends them (crawls row last).
    struct C {
        sink: Sink,
        tables: Vec<&'static str>,
        stamp: Stamp,
    }

    fn crawl(host: &str, scope: &str, id: &str, t: i64) -> C {
        let stamp = Stamp { host: host.into(), scope: scope.into(), scope_id: id.into(), crawl_time_us: t };
        C { sink: Sink::new(stamp.clone()), tables: Vec::new(), stamp }
    }

    impl C {
        fn row(mut self, table: &'static Table, values: &[(&str, Value<'_>)]) -> C {
            if !self.tables.contains(&table.name) && table.name != UNCHANGED.name {
                self.tables.push(table.name);
            }
            self.sink.row(table, values);
            self
        }
        fn unchanged(self, table: &'static Table, since: i64) -> C {
            let mut c = self.row(&UNCHANGED, &[("table_name", table.name.into()), ("since", Value::Int(since))]);
            c.tables.push(table.name);
            c
        }
        fn batches(self) -> Vec<RecordBatch> {
            let mut b = self.sink.finish();
            let mut m = Sink::new(self.stamp);
            let list = self.tables.join(",");
            m.row(&CRAWLS, &[("tables", list.as_str().into())]);
            b.extend(m.finish());
            b
        }
    }

    fn feed(ix: &mut Index, p: &mut Pending, batches: &[RecordBatch]) {
        for b in batches {
            ix.apply(p, periscope_agent::crawl::table_of(b), std::slice::from_ref(b));
        }
    }

    fn rows(b: &RecordBatch) -> Vec<String> {
        let mut out: Vec<String> = (0..b.num_rows())
            .map(|i| {
                (0..b.num_columns())
                    .map(|c| arrow_cast::display::array_value_to_string(b.column(c), i).unwrap())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        out.sort();
        out
    }

    /// Inherited keys with their image's columns in place of its key (keys differ between indexes).
    fn inherited(k: &Keys) -> Vec<String> {
        let images = rows(&k.images);
        let mut out: Vec<String> = rows(&k.inherited)
            .into_iter()
            .map(|r| {
                let (row, key) = r.rsplit_once('|').unwrap();
                let image = images.iter().find_map(|i| i.strip_prefix(&format!("{key}|"))).unwrap();
                format!("{row}|{image}")
            })
            .collect();
        out.sort();
        out
    }

    fn keys(ix: &Index, t: &Table, cutoff: i64) -> Keys {
        ix.keys(t, cutoff, &KeyFilter::default())
    }

    fn fleet() -> Vec<Vec<RecordBatch>> {
        let pkg = |c: C, v: &str| c.row(&PACKAGES, &[("name", "bash".into()), ("version", v.into())]);
        let listing = |c: C, ids: &[(&str, &str)]| {
            ids.iter().fold(c, |c, (id, name)| {
                c.row(&CONTAINERS, &[("container_id", (*id).into()), ("name", (*name).into())])
            })
        };
        vec![
            pkg(crawl("h1", "image", "sha256:i", 10), "5.1").batches(),
            listing(pkg(crawl("h1", "host", "m1", 100), "5.2"), &[("c1", "web"), ("c2", "db")]).batches(),
            crawl("h1", "container", "c1", 101)
                .row(&INHERITED, &[("table_name", "packages".into()), ("image_id", "sha256:i".into())])
                .batches(),
            pkg(crawl("h1", "container", "c2", 102), "5.3").batches(),
            // A removed container: crawled before the host's listing dropped it.
            pkg(crawl("h1", "container", "gone", 50), "4.0").batches(),
            // The host again: packages and listing unchanged.
            crawl("h1", "host", "m1", 200).unchanged(&PACKAGES, 100).unchanged(&CONTAINERS, 100).batches(),
            // A silent host, long expired, and its container.
            pkg(crawl("old", "host", "m2", 5), "1.0").batches(),
            pkg(crawl("old", "container", "c9", 6), "1.0").batches(),
        ]
    }

    #[test]
    fn keys_follow_unchanged_inherited_listings_and_expiry() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        for c in fleet() {
            feed(&mut ix, &mut p, &c);
        }
        let k = keys(&ix, &PACKAGES, 40);
        let own = &k.own;
        let t = |us: i64| chrono_like(us);
        assert_eq!(
            rows(own),
            vec![
                format!("h1|container|c2|{}|db", t(102)),
                format!("h1|host|m1|{}|", t(100)),
                format!("h1|image|sha256:i|{}|", t(10)),
            ]
        );
        assert_eq!(inherited(&k), vec![format!("h1|container|c1|{}|web|h1|sha256:i|{}", t(101), t(10))]);
        let only = |host: Option<&str>, scope: Option<&str>| {
            let f = KeyFilter { host: host.map(Into::into), scope: scope.map(Into::into) };
            let k = ix.keys(&PACKAGES, 40, &f);
            (k.own.num_rows(), k.inherited.num_rows())
        };
        assert_eq!(only(Some("h1"), Some("container")), (1, 1));
        assert_eq!(only(None, Some("image")), (1, 0));
        assert_eq!(only(Some("old"), None), (0, 0), "expired");
        let latest = rows(&ix.latest(40, false));
        assert_eq!(latest.len(), 4, "{latest:?}");
        assert!(ix.has_image("h1", "sha256:i") && !ix.has_image("h1", "sha256:j"));
    }

    /// What [`Current`] passes of stored rows, as key rows: (host, scope,
    /// scope_id, crawl_time, container) for own rows, and the inherited rows
    /// as [`inherited`] shows them.
    fn decided(
        ix: &Index,
        t: &'static Table,
        stored: &[RecordBatch],
        cutoff: i64,
        only: KeyFilter,
    ) -> (Vec<String>, Vec<String>) {
        let mut cur = Current::new(ix.clone(), t, cutoff, only.clone());
        let (mut own, mut shared) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for b in stored.iter().filter(|b| periscope_agent::crawl::table_of(b).name == t.name) {
            let c = Common::of(b).unwrap();
            for i in 0..b.num_rows() {
                let (h, s, id, time) = (c.host.value(i), c.scope.value(i), c.scope_id.value(i), c.crawl_time.value(i));
                // The view's filters narrow own rows (below the operator, as in the catalog).
                let admitted =
                    only.host.as_deref().is_none_or(|x| x == h) && only.scope.as_deref().is_none_or(|x| x == s);
                if let Some(name) = cur.own(h, s, id, time).filter(|_| admitted) {
                    own.insert(format!("{h}|{s}|{id}|{}|{}", chrono_like(time), name.as_deref().unwrap_or("")));
                }
            }
            // An image batch's rows at once, as the operator asks.
            let images: Vec<usize> = (0..b.num_rows()).filter(|&i| c.scope.value(i) == scope::IMAGE).collect();
            let asked: Vec<(&str, &str, i64)> =
                images.iter().map(|&i| (c.host.value(i), c.scope_id.value(i), c.crawl_time.value(i))).collect();
            for ((h, id, time), heirs) in asked.iter().zip(cur.heirs_of(&asked)) {
                let (h, id, time) = (*h, *id, *time);
                for heir in heirs.iter().flat_map(|x| x.iter()) {
                    shared.insert(format!(
                        "{}|container|{}|{}|{}|{h}|{id}|{}",
                        heir.host,
                        heir.scope_id,
                        chrono_like(heir.crawl_time),
                        heir.container.as_deref().unwrap_or(""),
                        chrono_like(time)
                    ));
                }
            }
        }
        (own.into_iter().collect(), shared.into_iter().collect())
    }

    #[test]
    fn row_by_row_decisions_agree_with_the_keys() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        let mut all: Vec<RecordBatch> = fleet().into_iter().flatten().collect();
        // A second image, shared by a container crawled after its host's listing.
        let pkg = crawl("h1", "image", "sha256:j", 20).row(&PACKAGES, &[("name", "curl".into())]);
        all.extend(pkg.batches());
        let heir = crawl("h1", "container", "c3", 250)
            .row(&INHERITED, &[("table_name", "packages".into()), ("image_id", "sha256:j".into())]);
        all.extend(heir.batches());
        // Both images' rows in one batch, as a scan reads them.
        let images: Vec<RecordBatch> = all
            .iter()
            .filter(|b| periscope_agent::crawl::table_of(b).name == PACKAGES.name)
            .filter(|b| Common::of(b).unwrap().scope.value(0) == scope::IMAGE)
            .cloned()
            .collect();
        let images = arrow_select::concat::concat_batches(&images[0].schema(), &images).unwrap();
        feed(&mut ix, &mut p, &all);
        all.retain(|b| {
            !(periscope_agent::crawl::table_of(b).name == PACKAGES.name
                && Common::of(b).unwrap().scope.value(0) == scope::IMAGE)
        });
        all.push(images);
        assert_eq!(decided(&ix, &PACKAGES, &all, 40, KeyFilter::default()).1.len(), 2, "c1 and c3 share");
        for t in [&PACKAGES, &CONTAINERS, &INHERITED, &UNCHANGED] {
            for only in [
                KeyFilter::default(),
                KeyFilter { host: Some("h1".into()), scope: None },
                KeyFilter { host: Some("old".into()), scope: None },
            ] {
                let k = ix.keys(t, 40, &only);
                let (own, shared) = decided(&ix, t, &all, 40, only.clone());
                // Keys of scopes with rows of the table: every own key has some here.
                assert_eq!(own, rows(&k.own), "{} {only:?}", t.name);
                assert_eq!(shared, inherited(&k), "{} {only:?}", t.name);
            }
        }
        // A newer crawl of the image stops the old rows from being shared.
        feed(
            &mut ix,
            &mut p,
            &crawl("h1", "image", "sha256:i", 300).row(&PACKAGES, &[("name", "bash".into())]).batches(),
        );
        let (_, shared) = decided(&ix, &PACKAGES, &all, 40, KeyFilter::default());
        assert!(shared.iter().all(|r| !r.contains("sha256:i")) && shared.len() == 1, "{shared:?}");
        // ... and the container's next crawl of its own stops it sharing any.
        let own = crawl("h1", "container", "c1", 400).row(&PACKAGES, &[("name", "zsh".into())]).batches();
        feed(&mut ix, &mut p, &own);
        assert!(ix.heirs.get(&HostImageRef { host: "h1", image: "sha256:i" }).is_none());
    }

    fn chrono_like(us: i64) -> String {
        let a = arrow_array::TimestampMicrosecondArray::from(vec![us]).with_timezone("+00:00");
        arrow_cast::display::array_value_to_string(&a, 0).unwrap()
    }

    #[test]
    fn a_rebuild_from_stored_rows_equals_the_incremental_index() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        let all: Vec<RecordBatch> = fleet().into_iter().flatten().collect();
        feed(&mut ix, &mut p, &all);
        // Rows of a crawl still in flight when the server stopped: pending in both.
        let inflight = crawl("h1", "host", "m1", 300).unchanged(&PACKAGES, 100).batches();
        feed(&mut ix, &mut p, &inflight[..1]);
        let mut stored = all.clone();
        stored.push(inflight[0].clone());
        let by_table = |name: &str| {
            stored.iter().filter(|b| periscope_agent::crawl::table_of(b).name == name).cloned().collect::<Vec<_>>()
        };
        let (mut rebuilt, mut rp) = Index::build(&|_| Vec::new(), &by_table).unwrap();
        for t in TABLES {
            let (a, b) = (keys(&ix, t, 40), keys(&rebuilt, t, 40));
            assert_eq!((rows(&a.own), inherited(&a)), (rows(&b.own), inherited(&b)), "{}", t.name);
        }
        // The in-flight crawl completes the same way on both.
        feed(&mut ix, &mut p, &inflight[1..]);
        feed(&mut rebuilt, &mut rp, &inflight[1..]);
        assert_eq!(rows(&ix.latest(40, false)), rows(&rebuilt.latest(40, false)));
        assert_eq!(rows(&keys(&ix, &CONTAINERS, 40).own), rows(&keys(&rebuilt, &CONTAINERS, 40).own));
        assert_eq!(rows(&keys(&ix, &PACKAGES, 40).own), rows(&keys(&rebuilt, &PACKAGES, 40).own));
    }

    #[test]
    fn departed_containers_leave_the_index_and_no_answer_changes() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        for c in fleet() {
            feed(&mut ix, &mut p, &c);
        }
        let before: Vec<_> =
            TABLES.iter().map(|t| (rows(&keys(&ix, t, 40).own), inherited(&keys(&ix, t, 40)))).collect();
        let latest = rows(&ix.latest(40, false));
        let departed = ix.departed(40);
        let mut ids: Vec<&str> = departed.iter().map(|(k, _)| &*k.scope_id).collect();
        ids.sort();
        assert_eq!(ids, ["c9", "gone"], "the container the listing dropped, the expired host's");
        let n = ix.len();
        assert_eq!(ix.forget(departed, 40), 2);
        assert_eq!(ix.len(), n - 2);
        let after: Vec<_> =
            TABLES.iter().map(|t| (rows(&keys(&ix, t, 40).own), inherited(&keys(&ix, t, 40)))).collect();
        assert_eq!(before, after, "current state is what it was");
        assert_eq!(rows(&ix.latest(40, false)), latest);
        assert!(ix.departed(40).is_empty());

        // A scope found departed but crawled again before it is dropped stays.
        feed(&mut ix, &mut p, &crawl("h1", "container", "c2", 300).row(&PACKAGES, &[("name", "a".into())]).batches());
        let stale = vec![(
            ScopeKey { host: "h1".into(), scope: "container".into(), scope_id: "c2".into() },
            Arc::new(ScopeState::default()),
        )];
        assert_eq!(ix.forget(stale, 40), 0, "not the state it was found in");

        // The old host comes back, listing c9 again, which is crawled again: live once more.
        let back = crawl("old", "host", "m2", 500)
            .row(&CONTAINERS, &[("container_id", "c9".into()), ("name", "x".into())])
            .batches();
        feed(&mut ix, &mut p, &back);
        feed(&mut ix, &mut p, &crawl("old", "container", "c9", 501).unchanged(&PACKAGES, 6).batches());
        let own = rows(&keys(&ix, &PACKAGES, 40).own);
        assert!(own.contains(&format!("old|container|c9|{}|x", chrono_like(6))), "{own:?}");
    }

    /// The heirs of an image lose a container that departs.
    #[test]
    fn a_departed_heir_is_no_longer_listed_with_its_image() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        let inherit = |c: C| c.row(&INHERITED, &[("table_name", "packages".into()), ("image_id", "sha256:i".into())]);
        feed(&mut ix, &mut p, &crawl("h", "image", "sha256:i", 1).row(&PACKAGES, &[("name", "a".into())]).batches());
        let list = |ids: &[&str], t: i64| {
            ids.iter()
                .fold(crawl("h", "host", "m", t), |c, id| c.row(&CONTAINERS, &[("container_id", (*id).into())]))
                .batches()
        };
        feed(&mut ix, &mut p, &list(&["a", "b"], 2));
        feed(&mut ix, &mut p, &inherit(crawl("h", "container", "a", 3)).batches());
        feed(&mut ix, &mut p, &inherit(crawl("h", "container", "b", 3)).batches());
        assert_eq!(ix.heirs.get(&HostImageRef { host: "h", image: "sha256:i" }).map(|h| h.len()), Some(2));
        feed(&mut ix, &mut p, &list(&["b"], 4));
        let d = ix.departed(0);
        assert_eq!(ix.forget(d, 0), 1);
        assert_eq!(ix.heirs.get(&HostImageRef { host: "h", image: "sha256:i" }).map(|h| h.len()), Some(1));
        assert_eq!(keys(&ix, &PACKAGES, 0).inherited.num_rows(), 1);
        feed(&mut ix, &mut p, &list(&[], 5));
        let d = ix.departed(0);
        assert_eq!(ix.forget(d, 0), 1);
        assert!(ix.heirs.get(&HostImageRef { host: "h", image: "sha256:i" }).is_none());
    }

    #[test]
    fn a_container_shares_its_images_rows_only_while_its_latest_crawl_says_so() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        let inherit = |c: C| c.row(&INHERITED, &[("table_name", "packages".into()), ("image_id", "sha256:i".into())]);
        feed(&mut ix, &mut p, &crawl("h", "image", "sha256:i", 1).row(&PACKAGES, &[("name", "a".into())]).batches());
        feed(&mut ix, &mut p, &inherit(crawl("h", "container", "c", 2)).batches());
        assert_eq!(keys(&ix, &PACKAGES, 0).inherited.num_rows(), 1);
        feed(&mut ix, &mut p, &inherit(crawl("h", "container", "c", 3)).batches());
        assert_eq!(keys(&ix, &PACKAGES, 0).inherited.num_rows(), 1, "still shared");
        // The container changed its package database: its own rows, nothing shared.
        feed(&mut ix, &mut p, &crawl("h", "container", "c", 4).row(&PACKAGES, &[("name", "b".into())]).batches());
        let k = keys(&ix, &PACKAGES, 0);
        let (own, shared) = (k.own, k.inherited);
        assert_eq!((own.num_rows(), shared.num_rows()), (2, 0));
    }

    #[test]
    fn a_table_marked_unchanged_is_current_whether_or_not_its_crawl_lists_it() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        feed(&mut ix, &mut p, &crawl("h", "host", "m", 1).row(&PACKAGES, &[("name", "a".into())]).batches());
        // Not read again: an unchanged row, and `tables` without packages.
        let mut c = crawl("h", "host", "m", 2).unchanged(&PACKAGES, 1);
        c.tables.clear();
        feed(&mut ix, &mut p, &c.batches());
        assert_eq!(rows(&keys(&ix, &PACKAGES, 0).own), vec![format!("h|host|m|{}|", chrono_like(1))]);
    }

    /// Issue 18 item 1: the index kept the newest crawl of an image from any
    /// host, so one agent's image crawl dated in the future replaced what every
    /// other host's containers of that image showed.
    #[test]
    fn another_hosts_crawl_of_an_image_never_changes_what_this_hosts_containers_show() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        for b in fleet() {
            feed(&mut ix, &mut p, &b);
        }
        let before = inherited(&keys(&ix, &PACKAGES, 40));
        assert_eq!(before, vec![format!("h1|container|c1|{}|web|h1|sha256:i|{}", chrono_like(101), chrono_like(10))]);
        // Another host's agent sends the same image, dated far in the future, with other packages,
        // and a container of its own inheriting from it.
        let forged = crawl("evil", "image", "sha256:i", i64::MAX / 2).row(&PACKAGES, &[("name", "openssl".into())]);
        feed(&mut ix, &mut p, &forged.batches());
        let evil_heir = crawl("evil", "container", "e1", i64::MAX / 2)
            .row(&INHERITED, &[("table_name", "packages".into()), ("image_id", "sha256:i".into())]);
        feed(&mut ix, &mut p, &evil_heir.batches());
        let after = inherited(&keys(&ix, &PACKAGES, 40));
        assert!(after.contains(&before[0]), "h1's container still shows h1's crawl of the image: {after:?}");
        assert_eq!(after.len(), 2, "{after:?}");
        assert!(
            after.iter().any(|r| r.starts_with("evil|container|e1|") && r.contains("|evil|sha256:i|")),
            "{after:?}"
        );
        // Row by row, as the views decide: h1's image rows are shared with c1 only, the forged ones with e1 only.
        let mut cur = Current::new(ix.clone(), &PACKAGES, 40, KeyFilter::default());
        let heirs = |cur: &mut Current, host: &str, t: i64| -> Vec<String> {
            let h = cur.heirs(host, "sha256:i", t).map(|h| h.to_vec()).unwrap_or_default();
            h.iter().map(|x| format!("{}/{}", x.host, x.scope_id)).collect()
        };
        assert_eq!(heirs(&mut cur, "h1", 10), ["h1/c1"]);
        assert_eq!(heirs(&mut cur, "evil", i64::MAX / 2), ["evil/e1"]);
        assert!(ix.has_image("h1", "sha256:i") && ix.has_image("evil", "sha256:i") && !ix.has_image("h2", "sha256:i"));
    }

    /// Issue 18 item 2: crawls were ordered by the agent's crawl_time, so one
    /// dated ahead pinned its scope's state until the clock caught up (and a
    /// clock stepped back froze it). The server stamps `received`; the crawl
    /// received last is current, whatever its date, before and after a rebuild.
    #[test]
    fn the_crawl_received_last_is_current_whatever_its_date() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        let stamped = |t: i64, received: i64, name: &str| -> Vec<RecordBatch> {
            let c = crawl("h", "host", "m", t).row(&PACKAGES, &[("name", name.into())]);
            c.batches()
                .into_iter()
                .map(|b| {
                    if periscope_agent::crawl::table_of(&b).name == CRAWLS.name {
                        crate::rows::stamp_received(&b, received).unwrap()
                    } else {
                        b
                    }
                })
                .collect()
        };
        let mut all = Vec::new();
        // Dated far ahead (as an agent with a wrong clock or a forger would), received first.
        all.extend(stamped(1_000_000, 10, "pinned"));
        // Then the clock is right again: earlier dates, received later.
        all.extend(stamped(500, 20, "fixed"));
        for b in &all {
            feed(&mut ix, &mut p, std::slice::from_ref(b));
        }
        let own = |ix: &Index| rows(&keys(ix, &PACKAGES, 0).own);
        assert_eq!(own(&ix), vec![format!("h|host|m|{}|", chrono_like(500))]);
        let (rebuilt, _) = Index::build(&|_| Vec::new(), &|t| {
            all.iter().filter(|b| periscope_agent::crawl::table_of(b).name == t).cloned().collect()
        })
        .unwrap();
        assert_eq!(own(&rebuilt), own(&ix), "a rebuild orders crawls the same way");
    }

    /// Crawls stored before `received` was kept are ordered by their dates.
    #[test]
    fn an_older_crawl_arriving_late_does_not_replace_a_newer_one() {
        let (mut ix, mut p) = (Index::default(), Pending::default());
        let pkg = |t: i64| crawl("h", "image", "sha256:x", t).row(&PACKAGES, &[("name", "a".into())]).batches();
        feed(&mut ix, &mut p, &pkg(20));
        feed(&mut ix, &mut p, &pkg(10));
        let own = keys(&ix, &PACKAGES, 0).own;
        assert_eq!(rows(&own), vec![format!("h|image|sha256:x|{}|", chrono_like(20))]);
    }
}
