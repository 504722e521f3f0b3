//! Failed sign-ins slow their source down: per claimed user and per address, a few free
//! failures, then a delay that doubles with each further failure (up to a minute) during
//! which that user name or address gets 429 without its password being checked. A burst
//! is audited once, not per attempt, so guessing cannot flood the audit log either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one user name before delays start.
const FREE_PER_USER: u32 = 5;
/// Failures from one address before delays start (one address may serve several people).
const FREE_PER_ADDRESS: u32 = 20;
/// The first delay; each further failure doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// Quiet time after which a key's failures are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most (older ones are dropped first when full).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// What [`Throttle::failed`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Within the free failures: audit it as usual.
    Counted,
    /// This failure started a delay: audit it once, naming the burst.
    BurstStarted(Duration),
    /// Part of a burst already audited.
    InBurst,
}

/// The throttle state of one server.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The keys a request is counted under.
pub(crate) fn keys(user: &str, addr: std::net::IpAddr) -> [String; 2] {
    [format!("user:{user}"), format!("addr:{addr}")]
}

fn free(key: &str) -> u32 {
    if key.starts_with("addr:") || key.starts_with("tokens:") {
        FREE_PER_ADDRESS
    } else {
        FREE_PER_USER
    }
}

impl Throttle {
    /// `Err(retry after)` when any of `keys` is blocked now.
    pub(crate) fn check(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| entries.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in under every key.
    pub(crate) fn failed(&self, keys: &[String]) -> Failure {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let mut outcome = Failure::Counted;
        for key in keys {
            let e = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(e.last) >= FORGET_AFTER {
                e.failures = 0;
                e.blocked_until = None;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            let over = e.failures.saturating_sub(free(key));
            if over > 0 {
                let delay = FIRST_DELAY
                    .saturating_mul(1 << (over - 1).min(16))
                    .min(MAX_DELAY);
                e.blocked_until = Some(now + delay);
                outcome = match outcome {
                    _ if over == 1 => Failure::BurstStarted(delay),
                    Failure::BurstStarted(d) => Failure::BurstStarted(d),
                    _ => Failure::InBurst,
                };
            }
        }
        outcome
    }

    /// A successful sign-in forgets the user's failures (not the address's).
    pub(crate) fn succeeded(&self, user: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&format!("user:{user}"));
    }
}

/// Cuts `s` to at most `max` bytes (on a character boundary), saying that it did.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_double() {
        let t = Throttle::default();
        let dana = keys_for("dana");
        for _ in 0..FREE_PER_USER {
            assert_eq!(t.check(&dana), Ok(()));
            assert_eq!(t.failed(&dana), Failure::Counted);
        }
        assert_eq!(t.failed(&dana), Failure::BurstStarted(FIRST_DELAY));
        let wait = t.check(&dana).unwrap_err();
        assert!(wait <= FIRST_DELAY && wait > Duration::ZERO);
        assert_eq!(t.failed(&dana), Failure::InBurst);
        // Another user from the same address is not blocked by dana's failures.
        let other = keys_for("lee");
        assert_eq!(t.check(&other), Ok(()));
        t.succeeded("dana");
        assert_eq!(t.check(&keys("dana", "10.9.9.9".parse().unwrap())), Ok(()));
    }

    fn keys_for(user: &str) -> [String; 2] {
        keys(user, "127.0.0.1".parse().unwrap())
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é… (6 bytes)");
    }
}
