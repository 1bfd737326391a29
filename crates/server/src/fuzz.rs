//! Fuzzing (tests only, proptest on stable): the case budget of every
//! target, and the targets that need a live queue: random control-API
//! policies through `UpdateQueue`, and random batch keys and attribute
//! maps through a queue that batches by key and cost. The decoders' own
//! targets sit beside them (`fuzz_grpc_timeout`, `fuzz_unpack`,
//! `fuzz_config`); `bench/fuzz.sh` runs them all on a time budget.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use proptest::{collection::vec, option, prelude::*, sample::select};
use tokio::{runtime::Runtime, sync::oneshot};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Code, Request};

use crate::{
    config::QueueConfig,
    control::ControlService,
    metrics::Metrics,
    pb::{self, batch_control_server::BatchControl},
    queue::{Answer, CostModel, Item, Oversize, Policy, Reply},
    registry::Registry,
};

/// One runtime and registry for every case of a run (a fresh queue each).
struct Harness {
    runtime: Runtime,
    registry: Arc<Registry>,
    control: ControlService,
    queues: AtomicU64,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let registry = Arc::new(Registry::new(
            Arc::new(Metrics::new()),
            CancellationToken::new(),
            4 << 20,
        ));
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            control: ControlService::new(
                registry.clone(),
                CancellationToken::new(),
                TaskTracker::new(),
            ),
            registry,
            queues: AtomicU64::new(0),
        }
    })
}

impl Harness {
    /// Runs `case` against a new queue of `config`, deleted afterwards.
    fn with_queue<T>(
        &self,
        config: &QueueConfig,
        case: impl AsyncFnOnce(&str) -> T,
    ) -> Result<T, TestCaseError> {
        let name = format!("q{}", self.queues.fetch_add(1, Ordering::Relaxed));
        self.runtime.block_on(async {
            self.registry
                .create(&name, config)
                .map_err(|e| TestCaseError::fail(format!("create: {e}")))?;
            let out = case(&name).await;
            self.registry
                .delete(&name, true)
                .await
                .map_err(|e| TestCaseError::fail(format!("delete: {e}")))?;
            Ok(out)
        })
    }
}

/// An item of `payload` and the receiver of its answer.
fn item(payload: Vec<u8>) -> (Item, oneshot::Receiver<Answer>) {
    let (tx, rx) = oneshot::channel();
    let item = Item {
        payload: payload.into(),
        attributes: HashMap::new(),
        priority: 0,
        timeout: None,
        answer_within: None,
        trace_id: None,
        trace: None,
        key: None,
        cost: None,
        idempotency_key: None,
        reply: Reply::Unary(tx),
        charge: Default::default(),
    };
    (item, rx)
}

/// Waits for every answer (flushing, for a queue that holds items back);
/// fails the case if one does not come within 10 s.
async fn answers(
    registry: &Registry,
    name: &str,
    receivers: Vec<oneshot::Receiver<Answer>>,
) -> Result<Vec<Answer>, TestCaseError> {
    let handle = registry
        .get(name)
        .ok_or_else(|| TestCaseError::fail("queue gone"))?;
    let mut out = Vec::with_capacity(receivers.len());
    for rx in receivers {
        let _ = handle.flush().await;
        let answer = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| TestCaseError::fail("an item was not answered within 10 s"))?
            .map_err(|_| TestCaseError::fail("an item was dropped unanswered"))?;
        out.push(answer);
    }
    Ok(out)
}

/// How often a policy field is set: a few fields per case, so that some
/// changes apply and some are refused.
const SET: f64 = 0.15;

/// A count as the control API carries it: edges and anything.
fn count() -> impl Strategy<Value = Option<u32>> {
    option::weighted(
        SET,
        prop_oneof![Just(0u32), Just(1), 0u32..200, any::<u32>()],
    )
}

/// An amount or duration in the API's units: edges and anything.
fn amount() -> impl Strategy<Value = Option<u64>> {
    option::weighted(
        SET,
        prop_oneof![
            Just(0u64),
            Just(1),
            0u64..100_000,
            Just(u64::MAX),
            any::<u64>()
        ],
    )
}

/// A name field: the valid names, near misses and any text.
fn name(valid: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    option::weighted(
        SET,
        prop_oneof![
            select(valid).prop_map(str::to_owned),
            "\\PC{0,10}",
            Just(String::new()),
        ],
    )
}

/// Any `QueuePolicy` the control API could be sent.
fn any_policy() -> impl Strategy<Value = pb::QueuePolicy> {
    let sizes = || {
        option::weighted(SET, vec(prop_oneof![0u32..200, any::<u32>()], 0..6))
            .prop_map(|v| v.map(|sizes| pb::BatchSizes { sizes }))
    };
    let weights = option::weighted(SET, vec(("\\PC{0,300}", any::<u32>()), 0..4)).prop_map(|v| {
        v.map(|w| pb::KeyWeights {
            weights: w.into_iter().collect(),
        })
    });
    let buckets = option::weighted(SET, vec(amount().prop_map(Option::unwrap_or_default), 0..6))
        .prop_map(|v| v.map(|bounds| pb::CostBuckets { bounds }));
    let batching = (
        count(),
        amount(),
        amount(),
        count(),
        option::weighted(SET, any::<bool>()),
        name(&["auto", "manual", "target", "aimd"]),
        count(),
        count(),
        amount(),
        count(),
        amount(),
        option::weighted(SET, any::<bool>()),
    );
    let keyed = (
        sizes(),
        count(),
        option::weighted(SET, "\\PC{0,300}"),
        count(),
        weights,
        name(&["unit", "bytes"]),
        option::weighted(SET, "\\PC{0,20}"),
        amount(),
        name(&["sum", "padded"]),
        name(&["refuse", "alone"]),
        buckets,
        (
            amount(),
            count(),
            name(&["off", "backend"]),
            option::weighted(SET, any::<bool>()),
        ),
    );
    (batching, keyed).prop_map(|(b, k)| pb::QueuePolicy {
        max_batch_size: b.0,
        max_batch_bytes: b.1,
        max_delay_us: b.2,
        min_batch_size: b.3,
        strict: b.4,
        mode: b.5,
        max_queue_items: b.6,
        max_in_flight_batches: b.7,
        item_timeout_ms: b.8,
        priority_levels: b.9,
        target_latency_us: b.10,
        shed: b.11,
        allowed_batch_sizes: k.0,
        shards: k.1,
        key_attribute: k.2,
        max_keys: k.3,
        weights: k.4,
        cost: k.5,
        cost_attribute: k.6,
        max_batch_cost: k.7,
        cost_model: k.8,
        oversize: k.9,
        cost_buckets: k.10,
        idempotency_window_ms: k.11.0,
        idempotency_max_keys: k.11.1,
        pace: k.11.2,
        top_up: k.11.3,
    })
}

/// An attribute value: numbers of every shape, and any text.
fn attribute_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("9007199254740993".to_owned()),
        "[0-9]{1,4}",
        "\\PC{0,300}",
    ]
}

/// One item's key, cost and attributes, as a client could send them.
#[derive(Debug, Clone)]
struct RandomItem {
    key: Option<String>,
    cost: Option<u64>,
    attributes: Vec<(String, String)>,
}

fn random_item() -> impl Strategy<Value = RandomItem> {
    let attribute_name = prop_oneof![Just("key".to_owned()), Just("cost".to_owned()), "\\PC{0,8}",];
    (
        option::of(prop_oneof!["[a-d]", "\\PC{0,300}"]),
        option::of(prop_oneof![0u64..100, any::<u64>()]),
        vec((attribute_name, attribute_value()), 0..4),
    )
        .prop_map(|(key, cost, attributes)| RandomItem {
            key,
            cost,
            attributes,
        })
}

/// A policy that batches by key and cost, every way it can.
fn keyed_policy() -> impl Strategy<Value = Policy> {
    (
        select(&[0u64, 10, 1000][..]),
        select(&[CostModel::Sum, CostModel::Padded][..]),
        select(&[Oversize::Refuse, Oversize::Alone][..]),
        select(vec![vec![], vec![4u64], vec![2, 8, 64]]),
        1usize..6,
    )
        .prop_map(|(budget, model, oversize, buckets, max_keys)| Policy {
            max_batch_size: 8,
            max_delay: Duration::from_millis(1),
            key_attribute: "key".into(),
            cost_attribute: "cost".into(),
            max_batch_cost: budget,
            cost_model: model,
            oversize,
            cost_buckets: buckets,
            max_keys,
            ..Policy::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

    /// Fuzz: any `QueuePolicy` through `UpdateQueue` is refused
    /// INVALID_ARGUMENT (or FAILED_PRECONDITION for `shards`) with a
    /// message, or applied; never a panic, and the queue answers an item
    /// afterwards either way.
    #[test]
    fn fuzz_update_queue(policy in any_policy()) {
        let h = harness();
        h.with_queue(&QueueConfig::default(), async |name: &str| {
            let sent = policy.clone();
            let result = h
                .control
                .update_queue(Request::new(pb::UpdateQueueRequest {
                    name: name.to_owned(),
                    policy: Some(policy),
                    handler: None,
                }))
                .await;
            match result {
                Ok(info) => {
                    let now = info.into_inner().policy.unwrap_or_default();
                    if let Some(size) = sent.max_batch_size {
                        prop_assert_eq!(now.max_batch_size, Some(size));
                    }
                    if let Some(mode) = sent.mode {
                        prop_assert_eq!(now.mode, Some(mode));
                    }
                }
                Err(status) => {
                    prop_assert!(
                        matches!(status.code(), Code::InvalidArgument | Code::FailedPrecondition),
                        "{status:?}"
                    );
                    prop_assert!(!status.message().is_empty());
                }
            }
            let (item, rx) = item(b"after".to_vec());
            if let Some(handle) = h.registry.get(name) {
                handle.submit(item).await;
            }
            let answer = answers(&h.registry, name, vec![rx]).await?;
            if let Err(status) = &answer[0].result {
                prop_assert!(
                    !matches!(status.code(), Code::Internal | Code::Unknown),
                    "{status:?}"
                );
            }
            Ok(())
        })??;
    }

    /// Fuzz: items with any batch key, cost and attribute map (keys,
    /// costs, numbers of every shape, long and odd text) through a queue
    /// batching by key and cost: each is answered once, its own payload or
    /// INVALID_ARGUMENT / RESOURCE_EXHAUSTED with a message; never a panic.
    #[test]
    fn fuzz_keys_and_attributes(policy in keyed_policy(), items in vec(random_item(), 1..24)) {
        let h = harness();
        let config = QueueConfig {
            policy,
            ..QueueConfig::default()
        };
        h.with_queue(&config, async |name: &str| {
            let handle = h.registry.get(name).ok_or_else(|| TestCaseError::fail("no queue"))?;
            let mut receivers = Vec::new();
            for (i, random) in items.iter().enumerate() {
                let (mut item, rx) = item(format!("item-{i}").into_bytes());
                item.key = random.key.as_deref().map(Arc::from);
                item.cost = random.cost;
                item.attributes = random.attributes.iter().cloned().collect();
                handle.submit(item).await;
                receivers.push(rx);
            }
            for (i, answer) in answers(&h.registry, name, receivers).await?.into_iter().enumerate() {
                match answer.result {
                    Ok(output) => {
                        let sent = format!("item-{i}");
                        prop_assert_eq!(&output.payload[..], sent.as_bytes());
                    }
                    Err(status) => {
                        prop_assert!(
                            matches!(status.code(), Code::InvalidArgument | Code::ResourceExhausted),
                            "{status:?}"
                        );
                        prop_assert!(!status.message().is_empty());
                    }
                }
            }
            Ok(())
        })??;
    }
}
