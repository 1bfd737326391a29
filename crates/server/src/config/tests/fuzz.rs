//! The config parser with validation, fuzzed: documents of known fields
//! with values of any shape are refused in words or accepted, never a panic.

use proptest::{collection::vec, prelude::*, sample::select};

use crate::config::{Config, ConfigError};

/// A TOML value of any shape a field could be given.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        (0u64..70_000).prop_map(|v| v.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| format!("{v:?}")),
        "\"[0-9]{1,14}(ns|us|ms|s|m|h|d|y)\"",
        "\"[a-z0-9:/._-]{0,12}\"",
        Just("true".to_owned()),
        vec(0u64..100_000, 0..5).prop_map(|v| format!("{v:?}")),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
    ]
}

fn lines(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    vec((select(fields), any_value()), 0..6).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect()
    })
}

const SERVER_FIELDS: &[&str] = &[
    "stream_window",
    "http2_stream_window",
    "http2_connection_window",
    "max_message_bytes",
    "max_concurrent_streams",
    "max_header_list_bytes",
    "max_pending_reset_streams",
    "max_error_reset_streams",
    "max_requests_per_connection",
    "max_connections",
    "keepalive_interval",
    "keepalive_timeout",
    "shutdown_grace",
    "log_format",
    "grpc_addr",
];
const QUEUE_FIELDS: &[&str] = &[
    "max_batch_size",
    "max_batch_bytes",
    "max_delay",
    "min_batch_size",
    "strict",
    "top_up",
    "mode",
    "max_queue_items",
    "max_in_flight_batches",
    "item_timeout",
    "priority_levels",
    "allowed_batch_sizes",
    "target_latency",
    "shed",
    "shards",
    "key_attribute",
    "max_keys",
    "weights",
    "cost",
    "cost_attribute",
    "max_batch_cost",
    "cost_model",
    "oversize",
    "cost_buckets",
];
const HANDLER_FIELDS: &[&str] = &[
    "base",
    "per_item",
    "per_cost",
    "padded",
    "endpoints",
    "max_in_flight",
    "parallelism",
    "timeout",
    "retries",
    "retry_backoff",
    "retry_backoff_max",
    "bisect",
    "eject_after",
    "eject_for",
    "encoding",
    "model",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]
    /// Fuzz: any document of known fields with values of any shape is
    /// refused with a message (naming the field when it is a value
    /// problem) or is a valid config, never a panic.
    #[test]
    fn fuzz_config(
        server in lines(SERVER_FIELDS),
        queue in lines(QUEUE_FIELDS),
        kind in select(&["echo", "sim", "grpc", "http", "kserve", "nope"][..]),
        handler in vec((select(HANDLER_FIELDS), any_value()), 0..3),
    ) {
        let handler: Vec<String> = handler.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let doc = format!(
            "[server]\n{server}\n[queues.q]\n{queue}handler = {{ kind = \"{kind}\"{}{} }}\n",
            if handler.is_empty() { "" } else { ", " },
            handler.join(", ")
        );
        match Config::from_toml(&doc) {
            Ok(config) => match config.validate() {
                Ok(()) => {}
                Err(ConfigError::Invalid { field, problem }) => {
                    prop_assert!(!field.is_empty() && !problem.is_empty());
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            },
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
