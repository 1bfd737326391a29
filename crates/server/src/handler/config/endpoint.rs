//! Endpoint addresses as the config writes them: URLs, and
//! `dns:///NAME:PORT` names resolved at run time.

use crate::validation::quoted;

/// The scheme of an endpoint resolved through DNS.
pub const DNS_SCHEME: &str = "dns:///";

/// A `dns:///NAME:PORT` endpoint, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    /// The name to resolve.
    pub host: String,
    /// The port every address gets.
    pub port: u16,
}

impl DnsName {
    /// Parses `dns:///NAME:PORT`; `None` for another kind of endpoint.
    ///
    /// # Errors
    /// A `dns:///` endpoint without a name or a valid port.
    pub fn parse(endpoint: &str) -> Option<Result<Self, String>> {
        let rest = endpoint.strip_prefix(DNS_SCHEME)?;
        Some(match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(['/', ' ']) => port
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .map(|port| Self {
                    host: host.to_owned(),
                    port,
                })
                .ok_or_else(|| {
                    format!("{} has no valid port (dns:///NAME:PORT)", quoted(endpoint))
                }),
            _ => Err(format!("{} must be dns:///NAME:PORT", quoted(endpoint))),
        })
    }
}

/// Checks an endpoint URL: `http://host:port` (or `https://`), nothing else.
///
/// # Errors
/// What is wrong with it.
pub fn validate_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{} must start with http:// or https://", quoted(url)))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!("{} has no host", quoted(url)));
    }
    // A port, where given, is 1..=65535 (`[v6]:port` too).
    if let Some((host, port)) = authority.rsplit_once(':')
        && !port.contains(']')
    {
        if host.is_empty() {
            return Err(format!("{} has no host", quoted(url)));
        }
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("{} has no valid port (1..=65535)", quoted(url)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::config::{HandlerConfig, HandlerKind};

    #[test]
    fn endpoint_urls_need_a_host_and_a_real_port() {
        for good in [
            "http://a:1",
            "https://backend.ns:65535/batch",
            "http://[::1]:7000",
            "http://host",
        ] {
            assert_eq!(validate_endpoint(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("http://a:99999", "no valid port"),
            ("http://a:0", "no valid port"),
            ("http://a:x", "no valid port"),
            ("http://:80", "no host"),
            ("ftp://a:1", "must start with"),
        ] {
            let err = validate_endpoint(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("http://{}:99999", "h".repeat(1 << 20));
        assert!(validate_endpoint(&long).unwrap_err().len() < 200);
    }

    #[test]
    fn dns_endpoints_parse() {
        assert_eq!(DnsName::parse("http://a:1"), None);
        assert_eq!(
            DnsName::parse("dns:///backends.ns.svc.cluster.local:7000"),
            Some(Ok(DnsName {
                host: "backends.ns.svc.cluster.local".into(),
                port: 7000
            }))
        );
        for bad in [
            "dns:///",
            "dns:///name",
            "dns:///name:0",
            "dns:///name:x",
            "dns:///:80",
            "dns:///a/b:80",
        ] {
            assert!(matches!(DnsName::parse(bad), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn dns_endpoints_are_for_grpc_with_a_sane_interval() {
        let grpc = |endpoint: &str| HandlerConfig {
            endpoints: vec![endpoint.to_owned()],
            ..HandlerConfig::of(HandlerKind::Grpc)
        };
        assert!(grpc("dns:///backends:7000").validate("h").is_ok());
        let err = |c: HandlerConfig| c.validate("h").unwrap_err().to_string();
        assert!(err(grpc("dns:///backends")).contains("h.endpoints[0]"));
        let http = HandlerConfig {
            kind: HandlerKind::Http,
            ..grpc("dns:///backends:7000")
        };
        assert!(err(http).contains("dns:/// endpoints are for grpc and kserve handlers"));
        let eager = HandlerConfig {
            resolve_every: std::time::Duration::from_millis(1),
            ..grpc("dns:///backends:7000")
        };
        assert!(err(eager).contains("h.resolve_every must be ≥ 10ms"));
    }
}
