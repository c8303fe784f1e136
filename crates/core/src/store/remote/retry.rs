//! Retries with exponential backoff for transient failures: connection refused or reset,
//! timeouts, interrupted bodies, HTTP 5xx, 408 and 429. Permanent failures (not found, permission
//! denied, bad request, a corrupt object) are returned at once. Each retry is announced on stderr
//! naming the remote, the operation and the object; the final error names them too.
//!
//! object_store's own retry loop is switched off (`max_retries = 0`) so that this one is the only
//! one: its messages are ours and its budget is small (a down remote must not stall a build).

use std::error::Error as StdError;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 0.2 s, 0.4 s, 0.8 s apart; `SCAN_REMOTE_RETRIES` sets the number of retries.
    fn default() -> Self {
        let retries = std::env::var("SCAN_REMOTE_RETRIES")
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(3)
            .min(20);
        RetryPolicy {
            attempts: retries + 1,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1), with ±25 % jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .first_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = 0.75 + (nanos % 1000) as f64 / 2000.0;
        base.mul_f64(jitter)
    }
}

/// Whether an error (anywhere in its source chain) is worth retrying.
pub fn is_transient(err: &(dyn StdError + 'static)) -> bool {
    if let Some(e) = err.downcast_ref::<object_store::Error>() {
        use object_store::Error as E;
        match e {
            E::Generic { .. } | E::JoinError { .. } => {}
            // Not found, already exists, precondition, permission, config, ...: permanent.
            _ => return false,
        }
    }
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            if matches!(
                h.kind(),
                K::Connect | K::Request | K::Timeout | K::Interrupted
            ) {
                return true;
            }
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_connect() || r.is_timeout() || r.is_request() || r.is_body() {
                return true;
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::TimedOut
                    | K::UnexpectedEof
                    | K::Interrupted
                    | K::NotConnected
            ) {
                return true;
            }
        }
        if let Some(status) = status_code(&e.to_string()) {
            return status >= 500 || status == 408 || status == 429;
        }
        cur = e.source();
    }
    false
}

/// The HTTP status in an object_store request error's text ("... status code: 503 Service ...").
/// object_store does not expose its request error type, only this rendering.
pub fn status_code(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_transient(&refused));
        let denied = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!is_transient(&denied));
        assert_eq!(
            status_code("Server returned non-2xx status code: 503 Service Unavailable: x"),
            Some(503)
        );
        let nf = object_store::Error::NotFound {
            path: "x".into(),
            source: Box::new(refused),
        };
        assert!(!is_transient(&nf));
        let p = RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        };
        assert!(
            p.delay(1) >= Duration::from_millis(150) && p.delay(1) <= Duration::from_millis(250)
        );
        assert!(p.delay(3) >= Duration::from_millis(600));
        assert!(p.delay(30) <= Duration::from_millis(6250));
    }
}
