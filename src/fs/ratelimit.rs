//! Rate limiting for log lines an attacker could trigger at will (corruption).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Allows `burst` events per `interval`, counting the ones it suppresses.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    burst: u32,
    interval: Duration,
    state: Mutex<(Instant, u32, u64)>,
}

impl RateLimiter {
    /// A limiter allowing `burst` events per `interval`.
    pub(crate) fn new(burst: u32, interval: Duration) -> Self {
        Self {
            burst,
            interval,
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(suppressed_since_last_allowed)` if this event may be logged.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(s.0) >= self.interval {
            *s = (now, 0, s.2);
        }
        if s.1 < self.burst {
            s.1 += 1;
            let suppressed = s.2;
            s.2 = 0;
            Some(suppressed)
        } else {
            s.2 += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_bursts_and_counts_suppressed() {
        let r = RateLimiter::new(2, Duration::from_secs(3600));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        let r2 = RateLimiter::new(1, Duration::ZERO);
        assert_eq!(r2.allow(), Some(0));
        assert_eq!(r2.allow(), Some(0));
    }
}
