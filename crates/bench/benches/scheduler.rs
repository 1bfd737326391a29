//! The scheduler alone: items/s through one queue in-process (no gRPC),
//! batch 64, 2 ms, with 64 and 1024 concurrent submitters, next to the
//! `tower-batch` crate on the same workload in the same run.
//!
//! batchgate's side goes through the real queue actor with the `echo`
//! handler (each item answered with its own payload); tower-batch's inner
//! service does nothing per item and nothing per flush.
//!
//! Run: `cargo bench --bench scheduler`

use batchgate_test_support::queue as test_queue;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use batchgate::{
    config::Mode,
    handler::Echo,
    metrics::Metrics,
    queue::{Policy, QueueHandle},
};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tower::{Service, ServiceExt};
use tower_batch::{Batch, BatchControl};

const BATCH: usize = 64;
const DELAY: Duration = Duration::from_millis(2);
/// Items per measured iteration, over all submitters.
const ITEMS: usize = 16_384;

fn policy() -> Policy {
    Policy {
        max_batch_size: BATCH,
        max_batch_bytes: 4 * 1024 * 1024,
        max_delay: DELAY,
        min_batch_size: 1,
        strict: false,
        mode: Mode::Auto,
        max_queue_items: 1_000_000,
        max_in_flight_batches: 4,
        item_timeout: Duration::from_secs(30),
        priority_levels: 1,
        target_latency: Duration::from_millis(20),
        shed: false,
        allowed_batch_sizes: Vec::new(),
        shards: 1,
        key_attribute: String::new(),
        max_keys: 1024,
        weights: Default::default(),
        ..Policy::default()
    }
}

/// A queue with the echo handler, its actor running on the current runtime.
fn batchgate_queue() -> QueueHandle {
    let spec = test_queue::spec(
        "bench",
        policy(),
        Arc::new(Echo),
        &Metrics::new(),
        Default::default(),
    );
    let (handle, actor) = QueueHandle::new(spec);
    tokio::spawn(actor);
    handle
}

async fn batchgate_round(queue: &QueueHandle, submitters: usize, payload: &Bytes) {
    let mut tasks = Vec::with_capacity(submitters);
    for _ in 0..submitters {
        let queue = queue.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ITEMS / submitters {
                let (item, rx) = test_queue::item(payload.clone(), 0, None);
                queue.submit(item).await;
                let answer = rx.await.expect("answered");
                assert!(answer.result.is_ok());
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter");
    }
}

/// tower-batch's inner service: nothing per item, nothing per flush.
#[derive(Clone)]
struct Noop;

impl Service<BatchControl<Bytes>> for Noop {
    type Response = ();
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: BatchControl<Bytes>) -> Self::Future {
        Box::pin(std::future::ready(Ok(())))
    }
}

async fn tower_batch_round(service: &Batch<Noop, Bytes>, submitters: usize, payload: &Bytes) {
    let mut tasks = Vec::with_capacity(submitters);
    for _ in 0..submitters {
        let mut service = service.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ITEMS / submitters {
                let ready = service.ready().await.expect("ready");
                ready.call(payload.clone()).await.expect("ok");
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter");
    }
}

fn scheduler(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let payload = Bytes::from_static(&[7; 16]);
    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(6));
    for submitters in [64, 1024] {
        let queue = runtime.block_on(async { batchgate_queue() });
        group.bench_with_input(
            BenchmarkId::new("batchgate", submitters),
            &submitters,
            |b, &n| {
                b.to_async(&runtime)
                    .iter(|| batchgate_round(&queue, n, &payload));
            },
        );
        let service = runtime.block_on(async { Batch::new(Noop, BATCH, DELAY) });
        group.bench_with_input(
            BenchmarkId::new("tower-batch", submitters),
            &submitters,
            |b, &n| {
                b.to_async(&runtime)
                    .iter(|| tower_batch_round(&service, n, &payload));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
