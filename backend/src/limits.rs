//! Limits that keep one client from exhausting the server: launches per minute (a token bucket) and open
//! WebSockets (permits held by each socket). The per-connection subscription limit lives in the session.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// `agents.launches_per_minute`: a bucket of that many launches, refilled evenly over a minute, so that
/// a burst is fine but a sustained flood is not.
#[derive(Debug)]
pub struct LaunchRate {
    per_minute: u32,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LaunchRate {
    /// A full bucket; `per_minute` 0 means no limit.
    pub fn new(per_minute: u32) -> LaunchRate {
        LaunchRate {
            per_minute,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(per_minute),
                at: Instant::now(),
            }),
        }
    }

    /// Takes one launch, or says how long until one is available.
    pub fn try_take(&self) -> Result<(), Duration> {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

/// `websocket.max_connections`: how many sockets are open, shared by every worker.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    max: usize,
    open: Arc<AtomicUsize>,
}

/// One open socket's place; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    open: Arc<AtomicUsize>,
}

impl ConnectionLimit {
    /// At most `max` sockets (0: no limit).
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit {
            max,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A place for one more socket, unless all are taken.
    pub fn try_acquire(&self) -> Option<Permit> {
        let max = if self.max == 0 { usize::MAX } else { self.max };
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit {
                open: self.open.clone(),
            })
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Permit {
    /// Does nothing: lets a closure own the permit for as long as it lives.
    pub fn hold(&self) {}
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_an_even_rate() {
        let rate = LaunchRate::new(60);
        let start = Instant::now();
        for _ in 0..60 {
            assert!(rate.try_take_at(start).is_ok());
        }
        let wait = rate.try_take_at(start).unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(rate.try_take_at(start + Duration::from_secs(1)).is_ok());
        assert!(rate.try_take_at(start + Duration::from_secs(1)).is_err());
        assert!(LaunchRate::new(0).try_take_at(start).is_ok());
    }

    #[test]
    fn permits_are_counted_and_given_back() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let _b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.try_acquire().is_some());
        let unlimited = ConnectionLimit::new(0);
        let held: Vec<_> = (0..1000).filter_map(|_| unlimited.try_acquire()).collect();
        assert_eq!(held.len(), 1000);
    }
}
