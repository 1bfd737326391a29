//! TLS with certificates made at test time (rcgen): a TLS server refuses
//! plaintext, mutual TLS refuses clients without a good certificate, a good
//! client gets its results, probes reach plaintext health on its own port,
//! batchgate talks TLS to a remote gRPC backend, and `http_each` calls an
//! HTTPS API its `tls_ca_file` vouches for (and refuses one it does not).

use crate::common;

use std::{path::PathBuf, sync::Arc};

use batchgate::{
    dial::{TlsArgs, connect},
    pb::{self, backend_server::BackendServer, batcher_client::BatcherClient},
};
use common::{TestServer, config};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::{
    Response,
    transport::{Identity, Server, ServerTlsConfig},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A CA and what it signed, written to a temporary folder.
struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("batchgate-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Self {
            dir,
            ca: Issuer::new(params, key),
        }
    }

    /// Writes `<name>.pem` and `<name>.key` signed by this CA.
    fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_config(pki: &Pki, client_ca: Option<PathBuf>, extra: &str) -> batchgate::config::Config {
    let (cert, key) = pki.issue("server");
    let client_ca = client_ca.map_or(String::new(), |p| {
        format!("client_ca_file = \"{}\"", p.display())
    });
    config(&format!(
        r#"
        [server]
        health_addr = "127.0.0.1:0"
        [server.tls]
        cert_file = "{}"
        key_file = "{}"
        {client_ca}
        [queues.echo]
        handler = {{ kind = "echo" }}
        {extra}
        "#,
        cert.display(),
        key.display()
    ))
}

fn submit(queue: &str) -> pb::SubmitRequest {
    pb::SubmitRequest {
        queue: queue.into(),
        payload: b"secret".to_vec().into(),
        ..Default::default()
    }
}

async fn try_submit(url: &str, tls: &TlsArgs, queue: &str) -> Result<pb::SubmitResponse, String> {
    let channel = connect(url, tls).await?;
    BatcherClient::new(channel)
        .submit(submit(queue))
        .await
        .map(Response::into_inner)
        .map_err(|s| s.to_string())
}

#[tokio::test]
async fn a_tls_server_refuses_plaintext_and_serves_tls_clients() {
    let pki = Pki::new("plain");
    let server = TestServer::start(tls_config(&pki, None, "")).await;
    let plain = try_submit(
        &format!("http://{}", server.grpc),
        &TlsArgs::default(),
        "echo",
    )
    .await;
    assert!(plain.is_err(), "a plaintext client got {plain:?}");

    let tls = TlsArgs {
        ca_cert: Some(pki.ca()),
        ..Default::default()
    };
    let url = format!("https://127.0.0.1:{}", server.grpc.port());
    let answer = try_submit(&url, &tls, "echo")
        .await
        .expect("a TLS client is served");
    assert_eq!(answer.payload, b"secret".as_slice());
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_good_certificate() {
    let pki = Pki::new("mtls");
    let server = TestServer::start(tls_config(&pki, Some(pki.ca()), "")).await;
    let url = format!("https://127.0.0.1:{}", server.grpc.port());

    let no_cert = TlsArgs {
        ca_cert: Some(pki.ca()),
        ..Default::default()
    };
    assert!(
        try_submit(&url, &no_cert, "echo").await.is_err(),
        "no client certificate"
    );

    let stranger = Pki::new("stranger");
    let (cert, key) = stranger.issue("client");
    let foreign = TlsArgs {
        ca_cert: Some(pki.ca()),
        cert: Some(cert),
        key: Some(key),
    };
    assert!(
        try_submit(&url, &foreign, "echo").await.is_err(),
        "a certificate from another CA"
    );

    let (cert, key) = pki.issue("client");
    let good = TlsArgs {
        ca_cert: Some(pki.ca()),
        cert: Some(cert),
        key: Some(key),
    };
    let answer = try_submit(&url, &good, "echo")
        .await
        .expect("a good client is served");
    assert_eq!(answer.payload, b"secret".as_slice());
    server.shutdown().await;
}

#[tokio::test]
async fn probes_reach_plaintext_health_on_its_own_port() {
    let pki = Pki::new("health");
    let mut config = tls_config(&pki, Some(pki.ca()), "");
    config.server.health_addr = Some("127.0.0.1:0".parse().unwrap());
    let listeners = batchgate::app::Listeners::bind(&config).await.unwrap();
    let health_addr = listeners.health.as_ref().unwrap().local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(batchgate::app::run(config, listeners, async move {
        let _ = stopped.await;
    }));
    let channel = connect(&format!("http://{health_addr}"), &TlsArgs::default())
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1, "SERVING");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn batches_reach_a_backend_over_tls() {
    let pki = Arc::new(Pki::new("backend"));
    let (cert, key) = pki.issue("backend");
    let identity = Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        Server::builder()
            .tls_config(ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(BackendServer::new(common::upper::Upper))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let queue = format!(
        r#"
        [queues.remote]
        handler = {{ kind = "grpc", endpoints = ["https://127.0.0.1:{port}"], tls_ca_file = "{}" }}
        "#,
        pki.ca().display()
    );
    let server = TestServer::start(config(&queue)).await;
    let url = format!("http://{}", server.grpc);
    let answer = try_submit(&url, &TlsArgs::default(), "remote")
        .await
        .expect("served over TLS");
    assert_eq!(answer.payload, b"SECRET".as_slice());
    server.shutdown().await;
}

/// Runs the built `batchgate submit` with `args`; returns its stderr.
async fn cli_submit(args: Vec<String>) -> (Option<i32>, String) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_batchgate"))
            .arg("submit")
            .args(args)
            .env_remove("BATCHGATE_ADDR")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_says_why_a_tls_connection_failed() {
    let pki = Pki::new("cli");
    let server = TestServer::start(tls_config(&pki, Some(pki.ca()), "")).await;
    let port = server.grpc.port();
    let (code, err) = cli_submit(vec![
        "--addr".into(),
        format!("127.0.0.1:{port}"),
        "x".into(),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(err.contains("it may expect TLS"), "plaintext to TLS: {err}");

    let (code, err) = cli_submit(vec![
        "--addr".into(),
        format!("https://localhost:{port}"),
        "x".into(),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(err.contains("TLS certificate problem"), "unknown CA: {err}");

    let ca = pki.ca().display().to_string();
    let (code, err) = cli_submit(vec![
        "--addr".into(),
        format!("https://localhost:{port}"),
        "--ca-cert".into(),
        ca.clone(),
        "x".into(),
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(
        err.contains("client certificate"),
        "no client certificate: {err}"
    );

    let (cert, key) = pki.issue("cli-client");
    let (code, err) = cli_submit(vec![
        "--addr".into(),
        format!("localhost:{port}"),
        "--ca-cert".into(),
        ca,
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
        "x".into(),
    ])
    .await;
    assert_eq!(code, Some(0), "host:port with TLS flags speaks TLS: {err}");
    server.shutdown().await;
}

/// An HTTPS API for `http_each`: a certificate of the test CA for
/// localhost, each request answered `200 secure <path>` (HTTP/1.1, one
/// request a connection).
async fn https_api(pki: &Pki) -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (cert, key) = pki.issue("api");
    let certs = CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let body = format!("secure {path}");
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn http_each_calls_an_https_api_that_its_ca_file_vouches_for() {
    let pki = Pki::new("each");
    let port = https_api(&pki).await;
    let queue = |name: &str, ca: &str| {
        format!(
            r#"
            [queues.{name}]
            max_delay = "1ms"
            handler = {{ kind = "http_each", url = "https://localhost:{port}/x/{{id}}", retries = 0 {ca} }}
            "#
        )
    };
    let server = TestServer::start(config(&format!(
        "{}{}",
        queue(
            "trusted",
            &format!(", tls_ca_file = \"{}\"", pki.ca().display())
        ),
        queue("untrusted", "")
    )))
    .await;
    let mut client = server.client().await;
    let request = |queue: &str| pb::SubmitRequest {
        attributes: [("id".to_owned(), "7".to_owned())].into(),
        ..common::submit_request(queue, "")
    };
    let answer = client
        .submit(request("trusted"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.payload, b"secure /x/7".to_vec());
    assert_eq!(answer.attributes["status"], "200");
    // Without the CA: the web PKI roots do not know the test CA.
    let refused = client.submit(request("untrusted")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(
        refused.message().to_lowercase().contains("certificate"),
        "{refused:?}"
    );
    server.shutdown().await;
}
