//! When an attempt is tried again, and after how long: the retry rules of
//! `[egress.routes.retry]`, kept apart from the sending so that each rule
//! is a small function with its own tests.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use crate::config::Retry;
use crate::metrics::Attempt;

/// Whether the failure `attempt` may be retried: its class is in
/// `retry.on`, and either the request carries an idempotency key or the
/// partner provably never acted on it (no connection; 429 and 503, which
/// say the request was not processed, RFC 6585 §4 and RFC 9110 §15.6.4).
pub fn retryable(retry: &Retry, attempt: Attempt, has_key: bool) -> bool {
    let configured = match attempt {
        Attempt::ConnectError => retry.on_connect,
        Attempt::Timeout => retry.on_timeout,
        Attempt::Status(status) => retry.statuses.contains(status),
    };
    let never_acted = matches!(
        attempt,
        Attempt::ConnectError | Attempt::Status(429) | Attempt::Status(503)
    );
    configured && (has_key || never_acted)
}

/// The wait before attempt `next` (2 for the first retry): the route's
/// `backoff` entry for it (the last one repeated), scaled by `jitter` in
/// [0, 1) to between half and all of it ("equal jitter"), so that callers
/// that failed together do not retry together, and never less than half
/// the configured wait.
pub fn backoff(retry: &Retry, next: u32, jitter: f64) -> Duration {
    let index = usize::try_from(next.saturating_sub(2)).unwrap_or(usize::MAX);
    let base = retry
        .backoff
        .get(index)
        .or(retry.backoff.last())
        .copied()
        .unwrap_or_default();
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A uniformly random number in [0, 1) for [`backoff`]; 0.5 when the
/// system has no randomness to give (the wait is then three quarters of
/// the configured one).
pub fn jitter() -> f64 {
    getrandom::u32().map_or(0.5, |n| f64::from(n) / (f64::from(u32::MAX) + 1.0))
}

/// The wait a partner's `Retry-After` asks for (RFC 9110 §10.2.3): delay
/// seconds, or an HTTP date, measured from the answer's own `Date` when it
/// has one (the partner's clock, so that skew between the clocks does not
/// change the wait), else from `now`. A date in the past is no wait.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let from = headers
        .get(http::header::DATE)
        .and_then(|date| date.to_str().ok())
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .unwrap_or(now);
    Some(at.duration_since(from).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusSet;

    fn retry(on: &[&str], backoff: &[u64]) -> Retry {
        let mut statuses = StatusSet::empty();
        for code in on.iter().filter(|c| c.as_bytes()[0].is_ascii_digit()) {
            statuses.add(code).unwrap();
        }
        Retry {
            on_connect: on.contains(&"connect"),
            on_timeout: on.contains(&"timeout"),
            statuses,
            backoff: backoff
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            max_attempts: 4,
            max_elapsed: Duration::from_secs(20),
        }
    }

    #[test]
    fn without_a_key_only_what_never_reached_the_partner_is_retried() {
        let r = retry(&["429", "5xx", "connect", "timeout"], &[200]);
        for (attempt, keyless) in [
            (Attempt::ConnectError, true),
            (Attempt::Status(429), true),
            (Attempt::Status(503), true),
            (Attempt::Status(500), false),
            (Attempt::Status(502), false),
            (Attempt::Timeout, false),
        ] {
            assert!(retryable(&r, attempt, true), "{attempt:?} with a key");
            assert_eq!(retryable(&r, attempt, false), keyless, "{attempt:?}");
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(!retryable(&r, Attempt::Status(status), true), "{status}");
        }
        let narrow = retry(&["503"], &[200]);
        assert!(!retryable(&narrow, Attempt::ConnectError, true));
        assert!(!retryable(&narrow, Attempt::Status(429), true));
        assert!(retryable(&narrow, Attempt::Status(503), false));
    }

    #[test]
    fn backoff_walks_the_list_repeats_the_last_and_jitters_within_half() {
        let r = retry(&[], &[200, 1000]);
        assert_eq!(backoff(&r, 2, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(&r, 2, 0.5), Duration::from_millis(150));
        assert!(backoff(&r, 2, 0.999_999) < Duration::from_millis(200));
        assert_eq!(backoff(&r, 3, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(&r, 9, 0.0), Duration::from_millis(500));
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_against_the_partners_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("retry-after", "1".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(1)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        headers.insert("retry-after", later.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        // The partner's clock runs 5 s ahead of ours; its Retry-After is
        // 7 s after its own Date, so the wait is 7 s, not 12.
        let partner_now = httpdate::fmt_http_date(now + Duration::from_secs(5));
        let partner_later = httpdate::fmt_http_date(now + Duration::from_secs(12));
        headers.insert("date", partner_now.parse().unwrap());
        headers.insert("retry-after", partner_later.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert("retry-after", "garbage".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
        headers.remove("date");
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        headers.insert("retry-after", past.parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
    }
}
