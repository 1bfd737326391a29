//! What an item's request is made of, and what its response becomes: the
//! URL filled from its attributes, headers read once from the config (or
//! the environment, or a file), `Retry-After`, and status codes as gRPC
//! codes.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, SystemTime},
};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tonic::{Code, Status};

use crate::{handler::config::each::placeholders, validation::quoted};

/// Everything but RFC 3986's unreserved characters is encoded, so a value
/// with `/`, `?`, `&` or `#` stays one path segment or query value.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How much of an error response's body its status message quotes.
const QUOTED_BODY: usize = 256;

/// A URL with `{name}` placeholders.
#[derive(Debug, Clone)]
pub struct Template {
    /// Text and placeholder names, alternating (text first; may be empty).
    parts: Vec<String>,
}

impl Template {
    /// Reads a template (already validated with the config).
    ///
    /// # Errors
    /// An unbalanced brace or a bad name.
    pub fn parse(url: &str) -> Result<Self, String> {
        let names = placeholders(url)?;
        let mut parts = Vec::with_capacity(names.len() * 2 + 1);
        let mut rest = url;
        for name in names {
            let at = rest.find('{').unwrap_or(rest.len());
            parts.push(rest[..at].to_owned());
            parts.push(name.to_owned());
            rest = &rest[(at + name.len() + 2).min(rest.len())..];
        }
        parts.push(rest.to_owned());
        Ok(Self { parts })
    }

    /// The URL for an item: each placeholder its attribute, percent-encoded.
    ///
    /// # Errors
    /// INVALID_ARGUMENT naming the first attribute the item lacks.
    pub fn fill(&self, attributes: &HashMap<String, String>) -> Result<String, Status> {
        let mut url = String::with_capacity(self.parts.iter().map(String::len).sum::<usize>() + 32);
        for (i, part) in self.parts.iter().enumerate() {
            if i % 2 == 0 {
                url.push_str(part);
                continue;
            }
            let value = attributes.get(part).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "the item has no attribute {} (the url's placeholder {{{part}}})",
                    quoted(part)
                ))
            })?;
            url.extend(utf8_percent_encode(value, ENCODED));
        }
        Ok(url)
    }
}

/// The configured headers, values from `env:NAME` and `file:PATH` read now
/// (sensitive: never logged).
///
/// # Errors
/// The header whose variable is unset, whose file cannot be read, or
/// whose value is not a header value.
pub fn headers(config: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(config.len());
    for (name, value) in config {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{} is not a header name", quoted(name)))?;
        let (text, secret) = if let Some(var) = value.strip_prefix("env:") {
            let text = std::env::var(var).map_err(|_| {
                format!(
                    "header {}: environment variable {} is not set",
                    quoted(name),
                    quoted(var)
                )
            })?;
            (text, true)
        } else if let Some(path) = value.strip_prefix("file:") {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("header {}: cannot read {}: {e}", quoted(name), quoted(path))
            })?;
            (text.trim_end_matches(['\r', '\n']).to_owned(), true)
        } else {
            (value.clone(), false)
        };
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| format!("header {}: its value is not a header value", quoted(name)))?;
        value.set_sensitive(secret);
        map.append(header, value);
    }
    Ok(map)
}

/// What a `Retry-After` header asks: seconds, or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(24 * 3600)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(24 * 3600)),
    )
}

/// Whether a response with `status` is worth another try.
pub fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// The gRPC code of a final non-2xx status.
pub fn code_of(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        408 | 504 => Code::DeadlineExceeded,
        500..=599 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

/// The status an item fails with for a final non-2xx response.
pub fn failure(status: StatusCode, body: &[u8]) -> Status {
    let shown = &body[..body.len().min(QUOTED_BODY)];
    let text = String::from_utf8_lossy(shown);
    let more = if body.len() > QUOTED_BODY { "…" } else { "" };
    Status::new(
        code_of(status),
        format!("HTTP {status}: {}{more}", text.trim()),
    )
}

/// Whether a request with `method` may be sent again after its connection
/// broke once it was sent (RFC 9110's idempotent methods).
pub fn idempotent(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::OPTIONS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_percent_encoded() {
        let t = Template::parse("http://api/users/{user}/tasks?page={page}&x=1").unwrap();
        let attrs = HashMap::from([
            ("user".to_owned(), "a/b?c&d#é".to_owned()),
            ("page".to_owned(), "7".to_owned()),
        ]);
        assert_eq!(
            t.fill(&attrs).unwrap(),
            "http://api/users/a%2Fb%3Fc%26d%23%C3%A9/tasks?page=7&x=1"
        );
        let missing = t.fill(&HashMap::new()).unwrap_err();
        assert_eq!(missing.code(), Code::InvalidArgument);
        assert!(missing.message().contains("\"user\""), "{missing:?}");
        let plain = Template::parse("http://api/x").unwrap();
        assert_eq!(plain.fill(&HashMap::new()).unwrap(), "http://api/x");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(20));
        h.insert(http::header::RETRY_AFTER, later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(17) && d <= Duration::from_secs(20),
            "{d:?}"
        );
        h.insert(http::header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn statuses_map_to_codes_and_quote_the_body() {
        for (status, code) in [
            (400, Code::InvalidArgument),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::NotFound),
            (409, Code::Aborted),
            (429, Code::ResourceExhausted),
            (500, Code::Unavailable),
            (503, Code::Unavailable),
        ] {
            assert_eq!(code_of(StatusCode::from_u16(status).unwrap()), code);
        }
        let s = failure(StatusCode::NOT_FOUND, &[b'x'; 1000]);
        assert!(s.message().starts_with("HTTP 404 Not Found: xxx"));
        assert!(s.message().len() < 300);
    }

    #[test]
    fn headers_come_from_the_config_the_environment_or_a_file() {
        let dir = std::env::temp_dir().join(format!("batchgate-each-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let config = BTreeMap::from([
            ("x-plain".to_owned(), "plain".to_owned()),
            ("x-file".to_owned(), format!("file:{}", file.display())),
            ("x-env".to_owned(), "env:PATH".to_owned()),
        ]);
        let h = headers(&config).unwrap();
        assert_eq!(h["x-plain"], "plain");
        assert_eq!(h["x-file"], "from-file");
        assert!(h["x-file"].is_sensitive());
        assert!(!h["x-env"].is_empty());
        let unset = BTreeMap::from([(
            "authorization".to_owned(),
            "env:BATCHGATE_SURELY_UNSET_VAR".to_owned(),
        )]);
        let e = headers(&unset).unwrap_err();
        assert!(
            e.contains("BATCHGATE_SURELY_UNSET_VAR") && e.contains("not set"),
            "{e}"
        );
    }
}
