//! What a query holds, counted where it is allocated.
//!
//! DataFusion's memory pool sees only what operators reserve. Scalar
//! functions, constant folding, expression results and some operators'
//! buffers allocate outside it, and no list of guards on single calls can
//! keep up with what many moderate allocations add up to: a chain of `||`
//! over a 32 KB constant grew every batch by 262 MB per step, a hundred
//! capped calls folded to 6 GB while planning, and a bounded window buffered
//! its input unseen (issue 18 item 7).
//!
//! So the server's global allocator ([`Counting`]) counts, for each query,
//! the bytes its threads hold: every remote query runs on a thread of its own
//! ([`crate::query::spawn_own_thread`]), which is tagged with the query's
//! [`Account`], and so are its runtime's blocking threads. A query past its
//! account's limit is refused at the next place that asks: the memory pool
//! (every reservation), every capped function call (constant folding
//! included), and every batch that enters an operator from a scan, leaves a
//! join or unnest, or enters a window ([`crate::repeat`]). Between two such
//! places a query can overshoot by what one call or one batch allocates,
//! which the per-call caps bound.
//!
//! The count is net: bytes allocated by the query's threads minus bytes they
//! freed. What a query hands to another thread (a gRPC answer's encoded
//! chunks) is freed there, so the sender takes it off the count
//! ([`handed_off`]). A thread of no query (ingest, reports, the local CLI) is
//! counted nowhere and never refused.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// The bytes one query's threads hold, and how many they may.
#[derive(Debug)]
pub struct Account {
    live: AtomicI64,
    peak: AtomicI64,
    limit: AtomicI64,
}

impl Default for Account {
    fn default() -> Self {
        Account { live: AtomicI64::new(0), peak: AtomicI64::new(0), limit: AtomicI64::new(i64::MAX) }
    }
}

/// Bytes all accounts hold together, and how many they may (`--sql-memory-bytes`, twice).
static TOTAL: AtomicI64 = AtomicI64::new(0);
static TOTAL_LIMIT: AtomicI64 = AtomicI64::new(i64::MAX);

/// Sets the most all remote queries may hold together, in and outside their pools.
pub fn set_total_limit(bytes: usize) {
    TOTAL_LIMIT.store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
}

impl Drop for Account {
    fn drop(&mut self) {
        // What the query still held when its threads ended (freed elsewhere later, or kept
        // by a cache) no longer counts against the others.
        TOTAL.fetch_sub(self.live(), Ordering::Relaxed);
    }
}

impl Account {
    /// Bytes held now (allocated minus freed since the account was entered).
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::Relaxed)
    }

    /// The most held at once so far.
    pub fn peak(&self) -> i64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn add(&self, n: i64) {
        TOTAL.fetch_add(n, Ordering::Relaxed);
        let now = self.live.fetch_add(n, Ordering::Relaxed) + n;
        if n > 0 && now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }
}

thread_local! {
    // A plain pointer with a constant initializer: reading it never allocates
    // and never runs a destructor, so the allocator may read it at any time,
    // thread exit included.
    static CURRENT: Cell<*const Account> = const { Cell::new(std::ptr::null()) };
}

fn charge(n: i64) {
    let p = CURRENT.with(Cell::get);
    if !p.is_null() {
        // SAFETY: a tagged thread's pointer comes from an `Arc` the tag keeps alive (see `Tag`).
        unsafe { &*p }.add(n);
    }
}

/// A global allocator that counts what tagged threads allocate against their
/// [`Account`], around the allocator `A` that does the work.
pub struct Counting<A>(pub A);

// SAFETY: every call goes to `A` unchanged; counting only reads a thread-local
// and adds to an atomic, neither of which allocates or unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            charge(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            charge(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        charge(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// The calling thread counted against `account` until the tag is dropped
/// (then against what it was counted against before).
pub struct Tag {
    previous: *const Account,
    _account: Arc<Account>,
}

impl Drop for Tag {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Counts the calling thread's allocations against `account` while the returned
/// tag lives. A tag must not be held across an `.await` of a task that shares
/// its thread with others: tags must drop in the reverse order they were made.
pub(crate) fn enter(account: &Arc<Account>) -> Tag {
    let previous = CURRENT.with(|c| c.replace(Arc::as_ptr(account)));
    Tag { previous, _account: account.clone() }
}

/// Tags the calling thread for the rest of its life (a runtime's blocking
/// thread, from `on_thread_start`); [`leave_for_good`] ends it.
pub(crate) fn enter_for_good(account: &Arc<Account>) {
    if !CURRENT.with(Cell::get).is_null() {
        // Tagged already (never, on a new runtime thread): the existing tag owns its count.
        return;
    }
    CURRENT.with(|c| c.set(Arc::into_raw(account.clone())));
}

/// Ends [`enter_for_good`] (from `on_thread_stop`).
pub(crate) fn leave_for_good() {
    let p = CURRENT.with(|c| c.replace(std::ptr::null()));
    if !p.is_null() {
        // SAFETY: the pointer came from `Arc::into_raw` in `enter_for_good`.
        drop(unsafe { Arc::from_raw(p) });
    }
}

/// The calling thread's account, if it is a query's.
pub fn current() -> Option<Arc<Account>> {
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: the pointer is kept alive by the tag (an `Arc`) for as long as it is set.
    unsafe {
        Arc::increment_strong_count(p);
        Some(Arc::from_raw(p))
    }
}

/// Sets the most the calling thread's query may hold, and starts counting
/// afresh ([`restart`]). Nothing for a thread of no query.
pub fn start_query(limit: usize) {
    if let Some(a) = current() {
        a.limit.store(i64::try_from(limit).unwrap_or(i64::MAX), Ordering::Relaxed);
    }
    restart();
}

/// Counts from what the calling thread's query holds now: a Postgres
/// session's next statement is not charged for what the session keeps.
pub fn restart() {
    if let Some(a) = current() {
        TOTAL.fetch_sub(a.live.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        a.peak.store(0, Ordering::Relaxed);
    }
}

/// Bytes allocated by the calling thread that another thread will free (a
/// chunk sent to the client): no longer the query's.
pub fn handed_off(bytes: usize) {
    charge(-(bytes as i64));
}

/// Bytes [`handed_off`] that the calling thread keeps after all (a caller
/// of [`crate::query::execute`] that works on the result on the query's own
/// thread): the query's again.
pub fn taken_back(bytes: usize) {
    charge(bytes as i64);
}

/// Why the calling thread's query is refused: it holds more than it may.
pub fn over() -> Option<String> {
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        return None;
    }
    // SAFETY: as in `charge`.
    let a = unsafe { &*p };
    let (live, limit) = (a.live(), a.limit.load(Ordering::Relaxed));
    if live > limit {
        return Some(format!(
            "the query holds {live} bytes, more than a query may hold in all ({limit} bytes: twice \
             --query-memory-bytes, for what it computes outside its memory pool too)"
        ));
    }
    let (total, most) = (TOTAL.load(Ordering::Relaxed), TOTAL_LIMIT.load(Ordering::Relaxed));
    (total > most && live > 0).then(|| {
        format!(
            "the queries running now hold {total} bytes, more than all queries may hold together ({most} \
             bytes: twice --sql-memory-bytes); this one holds {live}: retry later"
        )
    })
}

/// Refuses the calling thread's query if it would hold more than it may once it
/// allocates `more` bytes (a call that knows what it will make).
pub fn check_more(more: u64) -> datafusion::error::Result<()> {
    check()?;
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        return Ok(());
    }
    // SAFETY: as in `charge`.
    let a = unsafe { &*p };
    let (live, limit) = (a.live(), a.limit.load(Ordering::Relaxed));
    if live.saturating_add(i64::try_from(more).unwrap_or(i64::MAX)) > limit {
        return Err(datafusion::error::DataFusionError::ResourcesExhausted(format!(
            "the query holds {live} bytes and asks for {more} more, more than a query may hold in all ({limit} \
             bytes: twice --query-memory-bytes, for what it computes outside its memory pool too)"
        )));
    }
    Ok(())
}

/// Refuses the calling thread's query once it holds more than it may ([`over`]).
pub fn check() -> datafusion::error::Result<()> {
    match over() {
        Some(why) => Err(datafusion::error::DataFusionError::ResourcesExhausted(why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOC: Counting<std::alloc::System> = Counting(std::alloc::System);

    #[test]
    fn a_tagged_thread_counts_what_it_holds_and_is_refused_past_its_limit() {
        let account = Arc::new(Account::default());
        std::thread::scope(|s| {
            s.spawn(|| {
                let _tag = enter(&account);
                start_query(10 << 20);
                let held = vec![1u8; 8 << 20];
                assert!((8 << 20..9 << 20).contains(&account.live()), "{}", account.live());
                check().unwrap();
                let more = vec![1u8; 4 << 20];
                let err = check().unwrap_err().to_string();
                assert!(err.contains("more than a query may hold"), "{err}");
                drop((held, more));
                assert!(account.live() < 1 << 20, "freed: {}", account.live());
                check().unwrap();
                assert!(account.peak() >= 12 << 20);
                // Handed to another thread, which frees it: off the count when sent.
                let sent = vec![1u8; 4 << 20];
                handed_off(sent.capacity());
                s.spawn(move || drop(sent)).join().unwrap();
                assert!(account.live() < 1 << 20, "handed off: {}", account.live());
            });
        });
        // Other threads are counted nowhere.
        let _big = vec![1u8; 32 << 20];
        check().unwrap();
        assert!(account.live() < 1 << 20);

        // Two queries each within their own limit, over what all may hold together.
        set_total_limit(12 << 20);
        let (a, b) = (Arc::new(Account::default()), Arc::new(Account::default()));
        let (a2, b2) = (a.clone(), b.clone());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                let _tag = enter(&a2);
                start_query(10 << 20);
                let held = vec![1u8; 8 << 20];
                held_tx.send(()).unwrap();
                done_rx.recv().unwrap();
                drop(held);
            });
            s.spawn(move || {
                let _tag = enter(&b2);
                start_query(10 << 20);
                held_rx.recv().unwrap();
                let mine = vec![1u8; 8 << 20];
                let err = check().unwrap_err().to_string();
                assert!(err.contains("more than all queries may hold together"), "{err}");
                drop(mine);
                done_tx.send(()).unwrap();
            });
        });
        set_total_limit(usize::MAX);
        drop((a, b));
        assert!(TOTAL.load(Ordering::Relaxed).abs() < 1 << 20, "{}", TOTAL.load(Ordering::Relaxed));
    }
}
