//! Backoff for password and secret guessing, per source address.
//!
//! Every front that checks a secret — SQL passwords on gRPC, Flight SQL and
//! Postgres, the fleet's enroll secret — asks [`Throttle::check`] first and
//! reports the outcome. A source's first few failures cost nothing; after
//! that each failure locks it out for twice as long as the last (from one
//! second up to five minutes), so a guesser gets a handful of tries a
//! minute instead of a thousand a second. A success does not clear the count
//! (else whoever knows one password could guess another's between logins):
//! failures are forgotten an hour after the last. The table is bounded: past
//! [`MAX_SOURCES`] addresses, the oldest entries go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures a source may make before it is locked out.
pub const FREE_FAILURES: u32 = 5;
/// The longest lockout.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(300);
/// Sources remembered at once.
pub const MAX_SOURCES: usize = 65_536;
/// A source that failed no more for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// The source an address counts as: an IPv4 address (also when mapped into
/// IPv6), or an IPv6 address's /64, which one client holds whole.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Throttle {
    sources: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// Whether `from` may try a secret now; when not, for how much longer it is locked out.
    pub fn check(&self, from: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(from, Instant::now())
    }

    fn check_at(&self, from: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Some(ip) = from.map(source) else { return Ok(()) };
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        match sources.get(&ip).and_then(|f| f.until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Notes a wrong secret from `from`.
    pub fn failed(&self, from: Option<IpAddr>) {
        self.failed_at(from, Instant::now())
    }

    fn failed_at(&self, from: Option<IpAddr>, now: Instant) {
        let Some(ip) = from.map(source) else { return };
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            sources.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if sources.len() >= MAX_SOURCES {
                // Still full: forget the half that failed least recently.
                let mut lasts: Vec<Instant> = sources.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                sources.retain(|_, f| f.last > cut);
            }
        }
        let f = sources.entry(ip).or_insert(Failures { count: 0, last: now, until: None });
        if now.duration_since(f.last) >= FORGET_AFTER {
            *f = Failures { count: 0, last: now, until: None };
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.count >= FREE_FAILURES {
            let doublings = (f.count - FREE_FAILURES).min(16);
            let lockout = Duration::from_secs(1u64 << doublings).min(MAX_LOCKOUT);
            f.until = Some(now + lockout);
        }
    }

    /// The words a locked-out source gets.
    pub fn refusal(from: Option<IpAddr>, wait: Duration) -> String {
        let who = from.map(|ip| ip.to_string()).unwrap_or_default();
        format!("too many failed logins from {who}; retry in {} s", wait.as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guesser_is_locked_out_for_longer_each_time_and_others_are_not() {
        let t = Throttle::default();
        let (a, b) = (Some("192.0.2.1".parse().unwrap()), Some("192.0.2.2".parse().unwrap()));
        let t0 = Instant::now();
        for i in 0..FREE_FAILURES - 1 {
            assert_eq!(t.check_at(a, t0), Ok(()), "failure {i} is free");
            t.failed_at(a, t0);
        }
        t.failed_at(a, t0);
        assert_eq!(t.check_at(a, t0), Err(Duration::from_secs(1)));
        assert_eq!(t.check_at(b, t0), Ok(()), "another source is not locked out");
        assert_eq!(t.check_at(None, t0), Ok(()), "no address, no throttle (a Unix socket)");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.check_at(a, t1), Ok(()), "the lockout ends");
        t.failed_at(a, t1);
        assert_eq!(t.check_at(a, t1), Err(Duration::from_secs(2)), "and doubles");
        for _ in 0..40 {
            t.failed_at(a, t1);
        }
        assert_eq!(t.check_at(a, t1), Err(MAX_LOCKOUT), "up to a cap");
        // An old record starts afresh.
        for _ in 0..FREE_FAILURES {
            t.failed_at(b, t0);
        }
        let later = t0 + FORGET_AFTER;
        t.failed_at(b, later);
        assert_eq!(t.check_at(b, later), Ok(()), "failures an hour old are forgotten");
    }

    #[test]
    fn a_mapped_address_or_another_address_of_the_same_64_is_the_same_source() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            t.failed_at(Some("192.0.2.9".parse().unwrap()), now);
            t.failed_at(Some("2001:db8::1".parse().unwrap()), now);
        }
        assert!(t.check_at(Some("::ffff:192.0.2.9".parse().unwrap()), now).is_err());
        assert!(t.check_at(Some("2001:db8::ffff:1234".parse().unwrap()), now).is_err());
        assert!(t.check_at(Some("2001:db8:0:1::1".parse().unwrap()), now).is_ok(), "another /64");
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            t.failed_at(Some(IpAddr::from(i.to_be_bytes())), now + Duration::from_nanos(i as u64));
        }
        assert!(t.sources.lock().unwrap().len() <= MAX_SOURCES);
    }
}
