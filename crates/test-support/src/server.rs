//! A real batchgate server on 127.0.0.1 (port 0) with the generated clients
//! to talk to it, and the helpers tests use with it: a config from TOML,
//! metrics read and awaited, a request, a whole stream.

use std::net::SocketAddr;

use batchgate::{
    app::{self, AppError, Listeners},
    config::Config,
    pb::batcher_client::BatcherClient,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
    task::JoinHandle,
};
use tonic::transport::Channel;

/// A running server.
pub struct TestServer {
    pub grpc: SocketAddr,
    pub metrics: SocketAddr,
    /// The control plane's own address, when configured.
    pub control: Option<SocketAddr>,
    /// The REST side's address, when configured.
    #[allow(dead_code)]
    pub http: Option<SocketAddr>,
    /// The console's own address, when configured.
    pub admin: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AppError>>,
}

/// Parses `toml` and points both listeners at 127.0.0.1 port 0.
pub fn config(toml: &str) -> Config {
    let mut config = Config::from_toml(toml).expect("test config parses");
    config.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_addr = "127.0.0.1:0".parse().unwrap();
    if config.server.control_addr.is_some() {
        config.server.control_addr = Some("127.0.0.1:0".parse().unwrap());
    }
    if config.server.http_addr.is_some() {
        config.server.http_addr = Some("127.0.0.1:0".parse().unwrap());
    }
    if config.server.admin_addr.is_some() {
        config.server.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    }
    config.validate().expect("test config is valid");
    config
}

impl TestServer {
    /// Binds, then runs the server in the background.
    pub async fn start(config: Config) -> Self {
        Self::start_with(config, None).await
    }

    /// [`TestServer::start`], reloading its configuration as `reload` says.
    pub async fn start_with(
        config: Config,
        reload: Option<batchgate::reload::ReloadOptions>,
    ) -> Self {
        let listeners = Listeners::bind(&config).await.expect("bind");
        let grpc = listeners.grpc_addr().unwrap();
        let metrics = listeners.metrics_addr().unwrap();
        let control = listeners.control_addr();
        let http = listeners.http_addr();
        let admin = listeners.admin_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::run_with(
            config,
            listeners,
            async move {
                let _ = stopped.await;
            },
            reload,
        ));
        Self {
            grpc,
            metrics,
            control,
            http,
            admin,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// A connected data-plane client.
    pub async fn client(&self) -> BatcherClient<Channel> {
        BatcherClient::connect(self.url()).await.expect("connect")
    }

    /// A fresh HTTP/2 channel.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect")
    }

    /// Sends the shutdown signal without waiting for the server to stop.
    pub fn signal_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits for `app::run` to return.
    pub async fn shutdown(mut self) {
        self.signal_shutdown();
        self.task
            .await
            .expect("server task")
            .expect("server shut down cleanly");
    }

    /// GET /metrics, as text.
    pub async fn metrics_text(&self) -> String {
        metrics_text(self.metrics).await
    }

    /// The value of one sample line, e.g. `name{labels}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics_text().await;
        sample(&text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    }
}

/// GET /metrics at `addr`, as text.
pub async fn metrics_text(addr: SocketAddr) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

/// Polls `check` every 5 ms until it returns `Some`, and returns that;
/// panics naming `what` if it has not after 10 s. The one way tests wait
/// for something a real server does in its own time.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let polled = async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), polled)
        .await
        .unwrap_or_else(|_| panic!("waited 10 s for {what}"))
}

/// Finds `series` (name with labels, exactly as exposed) in exposition text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

impl TestServer {
    /// Polls /metrics until `series` reaches at least `value` (10 s at most).
    pub async fn wait_for_metric(&self, series: &str, value: f64) {
        let metrics = self.metrics;
        wait_until(&format!("{series} to reach {value}"), || async move {
            let text = metrics_text(metrics).await;
            sample(&text, series)
                .is_some_and(|v| v >= value)
                .then_some(())
        })
        .await;
    }

    /// Waits for `app::run` to return after a signal.
    pub async fn stopped(mut self) {
        self.signal_shutdown();
        let task = &mut self.task;
        tokio::time::timeout(std::time::Duration::from_secs(30), task)
            .await
            .expect("server stopped in time")
            .expect("server task")
            .expect("server shut down cleanly");
    }
}

/// A `Submit` request for `queue` carrying `payload`.
pub fn submit_request(queue: &str, payload: impl AsRef<[u8]>) -> batchgate::pb::SubmitRequest {
    batchgate::pb::SubmitRequest {
        queue: queue.into(),
        payload: payload.as_ref().to_vec().into(),
        ..Default::default()
    }
}

/// Sends `items` over one `StreamSubmit`, half-closes, and collects every
/// answer until the stream ends.
pub async fn stream_all(
    client: &mut BatcherClient<Channel>,
    items: Vec<batchgate::pb::StreamRequest>,
) -> Vec<Result<batchgate::pb::StreamResponse, tonic::Status>> {
    use tokio_stream::StreamExt;
    client
        .stream_submit(tokio_stream::iter(items))
        .await
        .expect("stream accepted")
        .into_inner()
        .collect()
        .await
}

/// Asserts that `status` has `code` and a message containing `part`,
/// showing the message when it does not.
#[track_caller]
pub fn assert_status(status: &tonic::Status, code: tonic::Code, part: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(part),
        "{:?} does not say {part:?}",
        status.message()
    );
}
