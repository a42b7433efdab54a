//! Jittered exponential backoff between attempts, and `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;
use http::header::RETRY_AFTER;
use rand::Rng;

/// How long to wait before the next attempt.
///
/// Waits grow exponentially from `base` up to `max`, with "full jitter" (a uniform draw between zero and
/// the exponential value) so that many clients failing together do not retry together. A server's
/// `Retry-After` replaces the computed wait when it is at most `retry_after_cap`; a longer one means the
/// server will not recover soon, so [`Backoff::delay`] answers `None` and the caller stops retrying and
/// reports the response (with its `Retry-After`) instead of blocking a request for minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the second attempt, before jitter.
    pub base: Duration,
    /// The longest computed wait.
    pub max: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to at most 2 s; `Retry-After` honoured up to 10 s.
    fn default() -> Self {
        Self { base: Duration::from_millis(100), max: Duration::from_secs(2), retry_after_cap: Duration::from_secs(10) }
    }
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1 for the first), or `None` when the server asked
    /// for a longer wait than `retry_after_cap`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(wait) = retry_after {
            return (wait <= self.retry_after_cap).then_some(wait);
        }
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.max);
        let jittered = rand::thread_rng().gen_range(0..=exp.as_millis() as u64);
        Some(Duration::from_millis(jittered))
    }
}

/// The `Retry-After` of a response: delay-seconds or an HTTP date (a date in the past is zero).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at: DateTime<Utc> = DateTime::parse_from_rfc2822(value).ok()?.into();
    Some((at - Utc::now()).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stay_bounded() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_millis(400), ..Backoff::default() };
        for attempt in 1..40 {
            let bound = Duration::from_millis(100 * (1 << (attempt - 1).min(2)));
            assert!(b.delay(attempt, None).unwrap() <= bound, "attempt {attempt}");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, Some(Duration::from_secs(3))), Some(Duration::from_secs(3)));
        assert_eq!(b.delay(1, Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn retry_after_formats() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
