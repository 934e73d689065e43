//! What a failed exchange with the model server means: typed errors that say whether a
//! retry can help.

use std::error::Error as StdError;
use std::time::Duration;

use eino::{Error, ErrorKind};
use hyper::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

/// Any error from the connector, the client or a body.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Whether `e` or any error beneath it is an I/O timeout (a connect timeout arrives as
/// one, wrapped in the client's and the connector's errors).
fn timed_out(e: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// A boxed cause as an error of its own (`Box<dyn Error>` is not one): shows the cause's
/// message and passes its chain on.
#[derive(Debug)]
struct Cause(BoxError);

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// A failure to connect, send or read: connection refused or reset, DNS, TLS, a proxy's
/// refusal, a body cut off. Worth another try; a timeout says so in its kind.
pub(crate) fn transport_error(e: impl Into<BoxError>) -> Error {
    let e = e.into();
    let kind = if timed_out(&*e) {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transient
    };
    Error::new(kind, "request to the model server failed").with_source(Cause(e))
}

/// The model server did not answer within `limit`.
pub(crate) fn timeout_error(what: &str, limit: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("the model server {what} within {limit:?}"),
    )
}

/// `Retry-After` as seconds or an HTTP date; also `retry-after-ms` (OpenAI).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = h
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Turn an error response into a typed error carrying the provider's message.
pub(crate) fn status_error(status: u16, headers: &HeaderMap, body: &str) -> Error {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let err = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .unwrap_or(&Value::Null);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| err.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(500).collect());
    let code = err
        .get("code")
        .and_then(Value::as_str)
        .or_else(|| err.get("type").and_then(Value::as_str))
        .unwrap_or("");
    let context = code == "context_length_exceeded"
        || message.contains("maximum context length")
        || message.contains("context length")
        || message.contains("too many tokens")
        || message.contains("prompt is too long");
    let kind = match status {
        401 | 403 => ErrorKind::Auth,
        400 | 404 | 413 | 422 if context => ErrorKind::ContextLength,
        408 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        400..=499 => ErrorKind::InvalidInput,
        // Redirects are not followed (a POST to a moved API should be configured at its
        // new URL, not replayed elsewhere); another try gets the same answer.
        300..=399 => {
            let to = headers
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Error::invalid_input(format!(
                "model server answered {status} (redirect to {to}); set base_url to the new address"
            ));
        }
        // 5xx and 529 (Anthropic "overloaded").
        _ => ErrorKind::Transient,
    };
    let mut e = Error::new(kind, format!("model server answered {status}: {message}"));
    if let Some(after) = retry_after(headers) {
        e = e.with_retry_after(after);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeouts_deep_in_the_chain_are_timeouts() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connect error")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let e = Wrap(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        assert_eq!(transport_error(e).kind(), ErrorKind::Timeout);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(transport_error(refused).kind(), ErrorKind::Transient);
    }

    #[test]
    fn redirects_are_configuration_errors_naming_the_new_address() {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::LOCATION,
            "https://new.example/v1".parse().unwrap(),
        );
        let e = status_error(308, &h, "");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("https://new.example/v1"), "{e}");
    }

    #[test]
    fn retry_after_in_seconds_milliseconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
