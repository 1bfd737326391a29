//! The remote handler: a batch (or what is left of it) goes to an endpoint
//! the pool picks, and fails, retries or splits by the rules in the
//! parent's docs.

use std::{sync::Arc, time::Duration};

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;
use tonic::Status;
use tracing::Instrument;

use super::{
    EndpointPool, PoolSettings,
    call::{CallError, CallInput},
    conn::Conn,
    dns::{self, Resolve, SystemResolver},
    endpoint::Lease,
    grpc, http, kserve,
};
use crate::{
    contract::{Batch, ItemOutput, ResultSink, SinkError},
    handler::config::{DnsName, Encoding, HandlerConfig},
    handler::{BoxFuture, Handler},
    metrics::{CallOutcome, Metrics},
    oip::ModelSpec,
    otel,
};

/// Time kept back from a batch's deadline for the answer to travel back.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

/// A handler whose batches go to remote endpoints.
#[derive(Debug)]
pub struct Remote {
    /// Where batches go.
    pool: Arc<EndpointPool>,
    /// Retries of a failed call on other endpoints.
    retries: u32,
    /// Split rejected batches.
    bisect: bool,
    /// Longest call.
    timeout: Duration,
    /// Waits between retries.
    backoff: ExponentialBuilder,
    /// Use ProcessBatchStream (grpc).
    streaming: bool,
    /// A message per item or one packed buffer (grpc).
    encoding: Encoding,
    /// Payloads are raw JSON (http).
    json_payloads: bool,
    /// The model called and the tensors of a row (kserve).
    model: Option<(String, Arc<ModelSpec>)>,
}

impl Remote {
    /// A remote handler for queue `queue`, with the configured endpoints
    /// registered (without lease).
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a bad endpoint.
    pub fn new(
        queue: Arc<str>,
        config: &HandlerConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, Status> {
        Self::with_resolver(queue, config, metrics, Arc::new(SystemResolver))
    }

    /// As [`Remote::new`], resolving `dns:///` endpoints with `resolver`
    /// (a task per name, from a tokio runtime, until the handler is gone).
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a bad endpoint.
    pub fn with_resolver(
        queue: Arc<str>,
        config: &HandlerConfig,
        metrics: Arc<Metrics>,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, Status> {
        let pool = Arc::new(EndpointPool::new(
            queue.clone(),
            PoolSettings {
                kind: config.kind,
                max_in_flight: config.max_in_flight,
                eject_after: config.eject_after.max(1),
                parallelism: config.parallelism,
                eject_for: config.eject_for,
                tls_ca_file: config.tls_ca_file.clone(),
            },
            metrics.clone(),
        ));
        for address in &config.endpoints {
            match DnsName::parse(address) {
                None => {
                    pool.register(address, 0, None, true)?;
                }
                Some(name) => {
                    let name = name.map_err(Status::invalid_argument)?;
                    let series = metrics.dns(&queue, &name.host);
                    dns::watch(&pool, name, config.resolve_every, resolver.clone(), series);
                }
            }
        }
        Ok(Self {
            pool,
            retries: config.retries,
            bisect: config.bisect,
            timeout: config.timeout,
            backoff: ExponentialBuilder::new()
                .with_min_delay(config.retry_backoff)
                .with_max_delay(config.retry_backoff_max)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            streaming: config.streaming,
            encoding: config.encoding,
            json_payloads: config.json_payloads,
            model: None,
        })
    }

    /// The same handler calling model `name` of a v2 server, a row of
    /// which holds `layout`'s tensors (kserve).
    pub fn serving(mut self, name: String, layout: Arc<ModelSpec>) -> Self {
        self.model = Some((name, layout));
        self
    }

    /// The queue's endpoints, for registration at runtime.
    pub fn pool(&self) -> Arc<EndpointPool> {
        self.pool.clone()
    }

    /// Runs the items `part` of the batch until each is answered.
    fn run_part<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
        part: Vec<usize>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let mut retries_left = self.retries;
            let mut backoff = self.backoff.build();
            loop {
                let open: Vec<usize> = part.iter().copied().filter(|&i| sink.is_open(i)).collect();
                if open.is_empty() {
                    return;
                }
                let deadline = batch
                    .deadline
                    .checked_sub(DEADLINE_MARGIN)
                    .unwrap_or(batch.deadline)
                    .min(Instant::now() + self.timeout);
                if deadline <= Instant::now() {
                    let status = Status::deadline_exceeded(
                        "the batch's deadline passed before a backend call",
                    );
                    return fail(sink, &open, &status);
                }
                let lease = match self.pool.acquire(deadline).await {
                    Ok(lease) => lease,
                    Err(status) => return fail(sink, &open, &status),
                };
                let input = CallInput {
                    batch,
                    indexes: &open,
                    deadline,
                };
                let result = self.call(&lease, &input, sink).await;
                match result {
                    Ok(()) => {
                        self.pool.record(lease.endpoint(), CallOutcome::Ok);
                        let missing = Status::internal(format!(
                            "backend {} returned no result for this item",
                            lease.endpoint().address
                        ));
                        return fail(sink, &open, &missing);
                    }
                    Err(CallError::Retry(status)) => {
                        self.pool.record(lease.endpoint(), CallOutcome::Unavailable);
                        tracing::warn!(
                            batch = batch.id,
                            endpoint = %lease.endpoint().address,
                            error = %status.message(),
                            retries_left,
                            "backend call failed"
                        );
                        if retries_left == 0 {
                            let status = Status::unavailable(format!(
                                "backend unavailable after {} attempts: {}",
                                self.retries + 1,
                                status.message()
                            ));
                            return fail(sink, &open, &status);
                        }
                        retries_left -= 1;
                        self.pool.retried(lease.endpoint());
                        drop(lease);
                        if let Some(wait) = backoff.next() {
                            tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
                        }
                    }
                    Err(CallError::Deadline(status)) => {
                        self.pool.record(lease.endpoint(), CallOutcome::Deadline);
                        let status = Status::deadline_exceeded(format!(
                            "backend {} did not answer before the deadline: {}",
                            lease.endpoint().address,
                            status.message()
                        ));
                        return fail(sink, &open, &status);
                    }
                    Err(CallError::BadAnswer(status)) => {
                        self.pool.record(lease.endpoint(), CallOutcome::Rejected);
                        tracing::warn!(
                            batch = batch.id,
                            endpoint = %lease.endpoint().address,
                            error = %status.message(),
                            "backend answer refused"
                        );
                        return fail(sink, &open, &status);
                    }
                    Err(CallError::Rejected(status)) => {
                        self.pool.record(lease.endpoint(), CallOutcome::Rejected);
                        drop(lease);
                        if self.bisect && open.len() > 1 {
                            let (left, right) = open.split_at(open.len() / 2);
                            let (left, right) = (left.to_vec(), right.to_vec());
                            self.run_part(batch, sink, left).await;
                            self.run_part(batch, sink, right).await;
                            return;
                        }
                        return fail(sink, &open, &status);
                    }
                }
            }
        })
    }

    async fn call(
        &self,
        lease: &Lease,
        input: &CallInput<'_>,
        sink: &mut dyn ResultSink,
    ) -> Result<(), CallError> {
        let indexes = input.indexes;
        let queue = &input.batch.queue;
        let batch_id = input.batch.id;
        let mut deliver = |index: u32, result: Result<ItemOutput, Status>| {
            let i = index as usize;
            if indexes.binary_search(&i).is_err() {
                tracing::warn!(%queue, batch = batch_id, index, "backend answered an item it was not sent; ignored");
                return;
            }
            match sink.send(i, result) {
                // Answered DEADLINE_EXCEEDED already; the result is late.
                Ok(()) | Err(SinkError::Expired(_)) => {}
                Err(e) => {
                    tracing::warn!(%queue, batch = batch_id, error = %e, "backend result ignored");
                }
            }
        };
        // Traces on: the call's span, and the headers that carry it.
        let (span, headers) = otel::backend_span(&lease.endpoint().address, indexes.len())
            .unwrap_or_else(|| (tracing::Span::none(), Vec::new()));
        let call = async {
            match &lease.endpoint().conn {
                Conn::Grpc(client) => {
                    let how = (self.streaming, self.encoding);
                    grpc::call(client.clone(), input, how, &headers, &mut deliver).await
                }
                Conn::Kserve(client) => match &self.model {
                    Some((name, layout)) => {
                        let how = (name.as_str(), layout.as_ref());
                        kserve::call(client.clone(), input, how, &headers, &mut deliver).await
                    }
                    None => Err(CallError::Rejected(Status::internal(
                        "a kserve handler without the queue's v2 model",
                    ))),
                },
                Conn::Http { client, url } => {
                    let how = (self.json_payloads, headers.as_slice());
                    http::call(client, url, input, how, &mut deliver).await
                }
            }
        };
        let result = match tokio::time::timeout_at(input.deadline, call)
            .instrument(span.clone())
            .await
        {
            Ok(result) => result,
            Err(_) => Err(CallError::Deadline(Status::deadline_exceeded(
                "call timed out",
            ))),
        };
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        result
    }
}

fn fail(sink: &mut dyn ResultSink, indexes: &[usize], status: &Status) {
    for &i in indexes {
        if sink.is_open(i) {
            let _ = sink.send(i, Err(status.clone()));
        }
    }
}

impl Handler for Remote {
    fn kind(&self) -> &'static str {
        self.pool.kind().as_str()
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let mut part: Vec<usize> = (0..batch.items.len()).collect();
            if let Some((_, layout)) = &self.model {
                // Input that can never work fails before any endpoint is
                // asked, so it is INVALID_ARGUMENT even with none healthy.
                part.retain(|&i| match kserve::read_rows(&batch.items[i], layout) {
                    Err(status) => {
                        let _ = sink.send(i, Err(status));
                        false
                    }
                    Ok(_) => true,
                });
            }
            self.run_part(batch, sink, part).await;
            Ok(())
        })
    }

    fn endpoints(&self) -> Option<Arc<EndpointPool>> {
        Some(self.pool())
    }
}
