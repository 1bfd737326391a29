//! The settings of an `http_each` handler that no other kind has: the
//! request rate (`"100/min"`), and the checks of the request an item makes.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    limits::handler as limits,
    validation::{ConfigError, invalid, quoted},
};

/// Most requests a `rate` may allow per second.
pub const MAX_RATE_PER_SECOND: f64 = limits::RATE_PER_SECOND.max;
/// The methods an `http_each` request may use.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A request rate: `count` requests per `per`, written `"100/min"`
/// (`s`, `sec`, `second`, `min`, `minute`, `h`, `hour`; `"5/2s"` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Requests per second.
    pub fn per_second(self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{} must be COUNT/UNIT, e.g. \"100/min\" or \"20/s\"",
                quoted(s)
            )
        };
        let (count, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let unit = unit.trim();
        let per = match unit {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => humantime::parse_duration(other).map_err(|_| bad())?,
        };
        if count == 0 {
            return Err(format!(
                "{} allows no request (the count must be ≥ 1)",
                quoted(s)
            ));
        }
        if per.is_zero() || per > Duration::from_secs(24 * 3600) {
            return Err(format!("{}: the period must be > 0 and ≤ 24h", quoted(s)));
        }
        let rate = Rate { count, per };
        if rate.per_second() > MAX_RATE_PER_SECOND {
            return Err(format!(
                "{}: at most 1,000,000 requests a second",
                quoted(s)
            ));
        }
        Ok(rate)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{}/min", self.count),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/{}", self.count, humantime::format_duration(self.per)),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The names of a URL template's `{placeholders}`, in order.
///
/// # Errors
/// An unclosed or empty brace, or a name that is not `[A-Za-z0-9_.-]+`.
pub fn placeholders(url: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = url;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("{}: a '}}' without its '{{'", quoted(url)));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("{}: a '{{' without its '}}'", quoted(url)))?;
        let name = &after[..close];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(format!(
                "{}: placeholder {} must be a name of letters, digits, '_', '.' or '-'",
                quoted(url),
                quoted(name)
            ));
        }
        names.push(name);
        rest = &after[close + 1..];
    }
    Ok(names)
}

/// Checks the fields only `http_each` has; `field` names them.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the first bad field.
pub fn validate(
    field: &dyn Fn(&str) -> String,
    url: &str,
    method: &str,
    headers: &std::collections::BTreeMap<String, String>,
    burst: u32,
    keep_headers: &[String],
) -> Result<(), ConfigError> {
    if url.is_empty() {
        return Err(invalid(
            field("url"),
            "is required (the URL each item requests, with {attribute} placeholders)",
        ));
    }
    limits::URL_BYTES.check(&field("url"), url.len())?;
    let base = url.replace(['{', '}'], "");
    super::validate_endpoint(&base).map_err(|e| invalid(field("url"), e))?;
    placeholders(url).map_err(|e| invalid(field("url"), e))?;
    if let Some(host) = url
        .split("://")
        .nth(1)
        .map(|r| r.split('/').next().unwrap_or(""))
        && host.contains('{')
    {
        return Err(invalid(
            field("url"),
            "placeholders may not be in the host (only in the path and query)",
        ));
    }
    if !METHODS.contains(&method) {
        return Err(invalid(
            field("method"),
            format!("{} is not one of {}", quoted(method), METHODS.join(", ")),
        ));
    }
    limits::HEADERS.check(&field("headers"), headers.len())?;
    for (name, value) in headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(
                field("headers"),
                format!("{} is not a header name", quoted(name)),
            ));
        }
        let literal = !(value.starts_with("env:") || value.starts_with("file:"));
        if literal && http::HeaderValue::from_str(value).is_err() {
            return Err(invalid(
                field("headers"),
                format!("the value of {} is not a header value", quoted(name)),
            ));
        }
    }
    limits::BURST.check(&field("burst"), burst)?;
    limits::HEADERS.check(&field("keep_headers"), keep_headers.len())?;
    for name in keep_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(invalid(
                field("keep_headers"),
                format!("{} is not a header name", quoted(name)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_and_print() {
        for (text, count, secs, shown) in [
            ("100/min", 100, 60.0, "100/min"),
            ("20/s", 20, 1.0, "20/s"),
            ("5 / hour", 5, 3600.0, "5/h"),
            ("3/2s", 3, 2.0, "3/2s"),
        ] {
            let r: Rate = text.parse().unwrap();
            assert_eq!((r.count, r.per.as_secs_f64()), (count, secs), "{text}");
            assert_eq!(r.to_string(), shown);
        }
        for (bad, why) in [
            ("0/min", "allows no request"),
            ("100", "COUNT/UNIT"),
            ("x/s", "COUNT/UNIT"),
            ("1/fortnights", "COUNT/UNIT"),
            ("2000000/s", "at most 1,000,000"),
            ("1/0s", "period"),
        ] {
            let e = bad.parse::<Rate>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn placeholders_are_names_in_braces() {
        assert_eq!(
            placeholders("http://a/users/{user}/pages?n={page.no}").unwrap(),
            ["user", "page.no"]
        );
        for bad in ["http://a/{", "http://a/}", "http://a/{}", "http://a/{x y}"] {
            assert!(placeholders(bad).is_err(), "{bad}");
        }
    }
}
