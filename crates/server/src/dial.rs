//! Client connections of the subcommands and the load generator: an
//! address as `host:port` or a URL, TLS from flags, and a failure said in
//! words (the cause and what to do) instead of tonic's "transport error".

/// TLS flags of the client subcommands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// CA bundle (PEM) to verify the server (default: the web PKI roots).
    #[arg(long, env = "BATCHGATE_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for servers that require mutual TLS.
    #[arg(long, env = "BATCHGATE_CLIENT_CERT", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// Client private key (PEM).
    #[arg(long, env = "BATCHGATE_CLIENT_KEY", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
}

/// The address as a URL: `host:port` (as grpcurl takes it) becomes
/// `http://host:port`, or `https://host:port` when TLS flags are given.
pub fn address_url(addr: &str, tls: &TlsArgs) -> String {
    if addr.contains("://") {
        return addr.to_owned();
    }
    let scheme = if tls.ca_cert.is_some() || tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{addr}")
}

/// Connects to `addr` (`host:port` or a URL), with TLS when it is
/// `https://` or a CA is given.
///
/// # Errors
/// A message naming the address and the cause (refused, TLS handshake,
/// certificate), not just "transport error".
pub async fn connect(addr: &str, tls: &TlsArgs) -> Result<tonic::transport::Channel, String> {
    let url = address_url(addr, tls);
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .tcp_nodelay(true);
    let with_tls = url.starts_with("https://") || tls.ca_cert.is_some();
    if with_tls {
        let config = crate::tls::client(
            tls.ca_cert.as_deref(),
            tls.cert.as_deref(),
            tls.key.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        endpoint = endpoint
            .tls_config(config)
            .map_err(|e| format!("TLS for {url}: {}", error_chain(&e)))?;
    }
    endpoint.connect().await.map_err(|e| {
        format!(
            "cannot connect to {url}: {}",
            explain(&error_chain(&e), with_tls)
        )
    })
}

/// An error and its sources, joined with ": ", without the generic
/// "transport error" and without repeats.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if text != "transport error" && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        "transport error".to_owned()
    } else {
        parts.join(": ")
    }
}

/// Adds what a user most likely has to do about a connection failure.
pub fn explain(cause: &str, with_tls: bool) -> String {
    let lower = cause.to_lowercase();
    let says = |phrases: &[&str]| phrases.iter().any(|p| lower.contains(p));
    // The peer hung up: before TLS, it may want TLS; after, a certificate.
    let hung_up = says(&["connection reset", "broken pipe", "operation was canceled"]);
    let hint = if says(&["connection refused"]) {
        "connection refused: is batchgate running there, on that port?"
    } else if says(&["certificaterequired", "certificate required"]) {
        "the server requires a client certificate: give --cert and --key"
    } else if says(&["certificate", "unknownissuer"]) {
        "TLS certificate problem: give the server's CA with --ca-cert (and --cert/--key if it requires client certificates)"
    } else if with_tls && says(&["corrupt message", "invalidcontenttype", "wrong version"]) {
        "TLS handshake failed: the server does not seem to speak TLS (use http://)"
    } else if !with_tls
        && (hung_up || says(&["closed before", "frame with invalid size", "protocol error"]))
    {
        "the server closed the connection: it may expect TLS (use https:// and --ca-cert)"
    } else if with_tls && hung_up {
        "the server closed the TLS connection: it may require a client certificate (--cert and --key)"
    } else {
        return cause.to_owned();
    };
    if cause.contains(hint) {
        // Explained already (an error passed on and printed again).
        return cause.to_owned();
    }
    format!("{hint} ({cause})")
}
