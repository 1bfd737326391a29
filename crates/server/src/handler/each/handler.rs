//! The `http_each` handler: each item of a batch is one HTTP request,
//! within the queue's concurrency and rate ([`gate`](super::gate)), retried
//! with backoff; its answer (status, body, kept headers) is the item's
//! result.

use std::{collections::HashMap, sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method};
use tokio::{task::JoinSet, time::Instant};
use tonic::Status;

use super::super::{BoxFuture, Handler, HandlerConfig};
use super::{
    gate::{Cause, Gate},
    request::Template,
};
use crate::{
    contract::{Batch, BatchItem, ItemOutput, ItemResult, ResultSink},
    metrics::Metrics,
};

/// The attribute holding a result's HTTP status code.
pub const STATUS_ATTRIBUTE: &str = "status";

/// The `http_each` handler of one queue.
#[derive(Debug)]
pub struct Each {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: Arc<str>,
    client: reqwest::Client,
    method: Method,
    url: Template,
    headers: HeaderMap,
    keep: Vec<HeaderName>,
    timeout: Duration,
    retries: u32,
    /// Jittered exponential backoff between tries, as the remote kinds'.
    backoff: ExponentialBuilder,
    gate: Gate,
    metrics: Arc<Metrics>,
}

impl Each {
    /// Builds the handler: reads `env:`/`file:` headers and the CA file.
    ///
    /// # Errors
    /// INVALID_ARGUMENT naming what cannot be used.
    pub fn new(
        queue: Arc<str>,
        config: &HandlerConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Status> {
        let bad = |e: String| Status::invalid_argument(format!("queue {queue:?}: handler: {e}"));
        let method = Method::from_bytes(config.method.as_bytes())
            .map_err(|_| bad(format!("method {:?} is not a method", config.method)))?;
        let url = Template::parse(&config.url).map_err(bad)?;
        let headers = super::request::headers(&config.headers).map_err(bad)?;
        let keep = config
            .keep_headers
            .iter()
            .map(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| bad("keep_headers holds a name that is not a header name".into()))?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(
                crate::tls::http_client_tls(config.tls_ca_file.as_deref()).map_err(bad)?,
            )
            .pool_max_idle_per_host(config.max_in_flight)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| bad(format!("cannot build its HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                queue: queue.clone(),
                client,
                method,
                url,
                headers,
                keep,
                timeout: config.timeout,
                retries: config.retries,
                backoff: ExponentialBuilder::new()
                    .with_min_delay(config.retry_backoff)
                    .with_max_delay(config.retry_backoff_max)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times(),
                gate: Gate::new(config.max_in_flight, config.rate, config.burst),
                metrics,
            }),
        })
    }
}

impl Handler for Each {
    fn kind(&self) -> &'static str {
        "http_each"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let mut requests = JoinSet::new();
            for (index, item) in batch.items.iter().enumerate() {
                if sink.is_open(index) {
                    let (inner, item) = (self.inner.clone(), item.clone());
                    let deadline = batch.deadline;
                    requests.spawn(async move { (index, inner.call(item, deadline).await) });
                }
            }
            while let Some(done) = requests.join_next().await {
                if let Ok((index, result)) = done {
                    let _ = sink.send(index, result);
                }
            }
            Ok(())
        })
    }
}

/// How one try went.
enum Try {
    Done(ItemResult),
    /// Worth another try: why (the retries metric's label), the status
    /// to fail with when none is left, and what the API asked to wait.
    Again(&'static str, Status, Option<Duration>),
}

impl Inner {
    /// One item's request, tried again as the module docs say.
    async fn call(&self, item: BatchItem, deadline: Instant) -> ItemResult {
        let url = self.url.fill(&item.attributes)?;
        let (mut attempt, mut backoff) = (0, self.backoff.build());
        loop {
            let permit = self
                .gate
                .enter(deadline, |cause, waited| self.waited(cause, waited))
                .await?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Status::deadline_exceeded("the item's deadline passed"));
            }
            let outcome = self.send(&url, &item.payload, self.timeout.min(left)).await;
            drop(permit);
            let (reason, last, asked) = match outcome {
                Try::Done(result) => return result,
                Try::Again(reason, last, asked) => (reason, last, asked),
            };
            if attempt >= self.retries {
                return Err(last);
            }
            let wait = backoff
                .next()
                .unwrap_or_default()
                .max(asked.unwrap_or_default());
            if Instant::now() + wait >= deadline {
                return Err(last);
            }
            self.metrics
                .http_each_retries(&self.queue, reason)
                .increment(1);
            self.metrics
                .http_each_wait(&self.queue, "backoff")
                .record(wait.as_secs_f64());
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn send(&self, url: &str, payload: &Bytes, timeout: Duration) -> Try {
        let mut request = self
            .client
            .request(self.method.clone(), url)
            .headers(self.headers.clone())
            .timeout(timeout);
        if !payload.is_empty() {
            request = request.body(payload.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return self.broken(&e, false),
        };
        let status = response.status();
        self.metrics
            .http_each_requests(&self.queue, status.as_str())
            .increment(1);
        let asked = super::request::retry_after(response.headers());
        let mut attributes = HashMap::with_capacity(1 + self.keep.len());
        attributes.insert(STATUS_ATTRIBUTE.to_owned(), status.as_str().to_owned());
        for name in &self.keep {
            if let Some(v) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
                attributes.insert(name.as_str().to_owned(), v.to_owned());
            }
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return self.broken(&e, true),
        };
        if status.is_success() {
            self.gate.went_well();
            return Try::Done(Ok(ItemOutput {
                payload: body,
                attributes,
            }));
        }
        let failure = super::request::failure(status, &body);
        if status == http::StatusCode::TOO_MANY_REQUESTS {
            self.gate.too_many(asked);
        }
        if super::request::retryable(status) {
            let reason = match status.as_u16() {
                429 => "429",
                502 => "502",
                503 => "503",
                _ => "504",
            };
            return Try::Again(reason, failure, asked);
        }
        Try::Done(Err(failure))
    }

    /// A request that got no (whole) response: tried again when it never
    /// reached the server, or when its method is idempotent.
    fn broken(&self, e: &reqwest::Error, sent: bool) -> Try {
        self.metrics
            .http_each_requests(&self.queue, "error")
            .increment(1);
        let text = error_chain(e);
        if e.is_timeout() {
            return Try::Done(Err(Status::deadline_exceeded(format!(
                "the request timed out: {text}"
            ))));
        }
        let status = Status::unavailable(format!("the request failed: {text}"));
        if e.is_connect() && !sent {
            Try::Again("connect", status, None)
        } else if super::request::idempotent(&self.method) {
            Try::Again("broken", status, None)
        } else {
            Try::Done(Err(status))
        }
    }

    fn waited(&self, cause: Cause, waited: Duration) {
        self.metrics
            .http_each_wait(&self.queue, cause.as_str())
            .record(waited.as_secs_f64());
    }
}

/// An error with its sources ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
