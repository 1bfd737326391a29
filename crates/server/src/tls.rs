//! TLS material from files: the server identity (and client CA for mutual
//! TLS), and client settings for `https://` backends and the CLI.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use serde::{Deserialize, Serialize};

/// Server TLS: certificate files (PEM), so they can come from a Secret.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain.
    pub cert_file: std::path::PathBuf,
    /// Its private key.
    pub key_file: std::path::PathBuf,
    /// CA bundle for client certificates; set: every client must present a
    /// certificate it signed (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<std::path::PathBuf>,
}

/// A TLS file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {path}: {reason}")]
pub struct TlsError {
    /// Which file it was meant to be.
    pub what: &'static str,
    /// Its path.
    pub path: String,
    /// Why it failed.
    pub reason: String,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError {
        what,
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The server TLS settings of `config`.
///
/// # Errors
/// [`TlsError`] naming a file that cannot be read.
pub fn server(config: &TlsConfig) -> Result<ServerTlsConfig, TlsError> {
    let identity = Identity::from_pem(
        read("tls.cert_file", &config.cert_file)?,
        read("tls.key_file", &config.key_file)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.client_ca_file {
        tls = tls.client_ca_root(Certificate::from_pem(read("tls.client_ca_file", ca)?));
    }
    Ok(tls)
}

/// Client TLS: verify the server with `ca` (else the web PKI roots), and
/// present `cert` + `key` when both are given (mutual TLS).
///
/// # Errors
/// [`TlsError`] naming a file that cannot be read.
pub fn client(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<ClientTlsConfig, TlsError> {
    let mut tls = ClientTlsConfig::new();
    tls = match ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read("CA bundle", ca)?)),
        None => tls.with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (cert, key) {
        tls = tls.identity(Identity::from_pem(
            read("client certificate", cert)?,
            read("client key", key)?,
        ));
    }
    Ok(tls)
}

/// The TLS of batchgate's HTTP clients (reqwest): rustls with the ring
/// provider (the one tonic uses), the web PKI roots and, when given, the
/// CA bundle (PEM) of `ca_file`; HTTP/2 offered by ALPN.
///
/// # Errors
/// A CA file that cannot be read or holds no usable certificate.
pub fn http_client_tls(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let bad = |e: &dyn std::fmt::Display| format!("tls_ca_file {}: {e}", path.display());
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
    }
    // The process's default too, so a client built without this config
    // finds a provider (another one installed first stays).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
