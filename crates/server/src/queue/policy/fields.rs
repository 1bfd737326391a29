//! The table of the policy's fields, for the places that list them one by
//! one.

/// The policy fields, written once for every place that lists them one by
/// one (the control API's `QueuePolicy` both ways, `ctl`'s flags and its
/// `describe`): name in [`Policy`](super::Policy), name in `QueuePolicy`, kind (how the
/// value travels: `count` u32, `bytes` u64, `micros`/`millis` a duration
/// in those units, `flag` bool, `mode` a name, `levels` u32, `sizes` a
/// list of counts, `text` a string, `weights` a map of key to weight) and the help
/// text. `policy_fields!(m, args…)` expands to `m!(args…; (field, …), …)`.
#[macro_export]
macro_rules! policy_fields {
    ($m:ident $(, $arg:tt)*) => {
        $m! { $($arg),* ;
            (max_batch_size, max_batch_size, count,
                "Close a batch at this many items (trigger size)."),
            (max_batch_bytes, max_batch_bytes, bytes,
                "Close a batch before its payloads pass this many bytes (trigger bytes)."),
            (max_delay, max_delay_us, micros,
                "Close a batch when its oldest item has waited this long, e.g. \"2ms\" (trigger delay)."),
            (min_batch_size, min_batch_size, count,
                "A delay-triggered batch needs at least this many items."),
            (strict, strict, flag,
                "Count only live items towards min_batch_size (true or false)."),
            (mode, mode, mode,
                "auto (size, bytes, delay), manual (only a flush), target (a latency target) or aimd (Clipper-style, for comparison)."),
            (max_queue_items, max_queue_items, count,
                "Items the queue may hold; more are refused RESOURCE_EXHAUSTED."),
            (max_in_flight_batches, max_in_flight_batches, count,
                "Batches of the queue processed at once."),
            (item_timeout, item_timeout_ms, millis,
                "How long an item may wait when its request sets no timeout, e.g. \"30s\"."),
            (priority_levels, priority_levels, levels,
                "Priority levels (items carry 0 .. levels-1)."),
            (target_latency, target_latency_us, micros,
                "mode = \"target\": the end-to-end time an item should see at p99, e.g. \"20ms\"."),
            (shed, shed, flag,
                "mode = \"target\": refuse (RESOURCE_EXHAUSTED) items predicted to miss the target (true or false)."),
            (allowed_batch_sizes, allowed_batch_sizes, sizes,
                "Batch sizes a batch may have, ascending and ending with max_batch_size, e.g. \"1,8,32,64\" (\"\" for any); other counts go out padded to the next."),
            (shards, shards, count,
                "Actors (each on its own task, so on its own core) batching this queue; items spill to the next only when one is saturated. Fixed when the queue is created."),
            (key_attribute, key_attribute, text,
                "Batch by key: the attribute holding an item's key when its request and header name none (\"\" for none)."),
            (max_keys, max_keys, count,
                "Batch by key: most keys with items pending at once; more are refused RESOURCE_EXHAUSTED."),
            (weights, weights, weights,
                "Batch by key: weights in the fair share, e.g. \"tenant-a=3,tenant-b=2\" (others 1; \"\" for all 1); named keys get metric series of their own."),
            (cost, cost, name,
                "Cost budget: an item's cost when its request and cost_attribute give none: unit (1) or bytes (its payload's length)."),
            (cost_attribute, cost_attribute, text,
                "Cost budget: the attribute holding an item's cost, a whole number such as a token count (\"\" for none)."),
            (max_batch_cost, max_batch_cost, amount,
                "Cost budget: close a batch before its cost would pass this (trigger cost; 0 for no budget)."),
            (cost_model, cost_model, name,
                "Cost budget: a batch's cost: sum (items' costs added) or padded (largest cost times items)."),
            (oversize, oversize, name,
                "Cost budget: an item costing more than max_batch_cost is refused (INVALID_ARGUMENT) or sent alone: refuse or alone."),
            (cost_buckets, cost_buckets, bounds,
                "Length buckets: ascending upper bounds of item cost, e.g. \"32,64,128,256\" (\"\" for none); items of one bucket batch together."),
            (idempotency_window, idempotency_window_ms, millis,
                "How long an idempotency key's answer is kept for retries, e.g. \"60s\" (0 turns keys off)."),
            (idempotency_max_keys, idempotency_max_keys, count,
                "Most idempotency keys in flight or remembered at once; an item with a new key past it is refused RESOURCE_EXHAUSTED."),
            (top_up, top_up, flag,
                "Jobs: a batch that online items do not fill may be filled up with waiting job items (true or false; false: job items ride only in batches of their own)."),
            (pace, pace, name,
                "off (a batch goes when a slot of max_in_flight_batches is free) or backend (when the backend is predicted free for it: it paces by the parallelism its endpoints declare, else what it learns, at most max_in_flight_batches; each slot holds one batch working and one arriving)."),
        }
    };
}

/// One policy field as the table writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyField {
    /// Its name in the config (and in [`Policy`](super::Policy)).
    pub name: &'static str,
    /// Its name in the control API's `QueuePolicy`.
    pub pb: &'static str,
    /// How its value travels (see [`policy_fields!`]).
    pub kind: &'static str,
    /// Its help.
    pub help: &'static str,
}

macro_rules! field_table {
    (; $(($name:ident, $pb:ident, $kind:ident, $help:literal)),* $(,)?) => {
        /// Every policy field, in the table's order.
        pub const FIELDS: &[PolicyField] = &[ $( PolicyField {
            name: stringify!($name),
            pb: stringify!($pb),
            kind: stringify!($kind),
            help: $help,
        }, )* ];
    };
}

crate::policy_fields!(field_table);
