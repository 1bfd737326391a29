//! Batch keys: which lane an item's key leads to (made on first use, up to
//! `max_keys`), and the per-key depth gauges.

use super::state::Actor;
use crate::{
    error::Refusal,
    queue::{
        item::Item,
        lanes::{KeySeries, TooManyKeys},
        policy,
    },
};

impl Actor {
    /// The lane of an item's batch key (its request's or header's, else the
    /// queue's `key_attribute`'s; the keyless lane without one) in cost
    /// bucket `bucket`.
    pub(super) fn lane_of(&mut self, item: &Item, bucket: u8) -> Result<usize, Refusal> {
        let policy = &self.spec.policy;
        let from_attribute = || {
            (!policy.key_attribute.is_empty())
                .then(|| item.attributes.get(&policy.key_attribute))
                .flatten()
                .filter(|k| !k.is_empty())
                .map(|k| std::sync::Arc::<str>::from(k.as_str()))
        };
        let key = item.key.clone().or_else(from_attribute);
        let Some(key) = key else {
            return Ok(self.lanes.keyless(bucket));
        };
        if key.len() > policy::MAX_KEY_BYTES {
            return Err(Refusal::KeyTooLong {
                len: key.len(),
                max: policy::MAX_KEY_BYTES,
            });
        }
        let metrics = &self.spec.metrics;
        let new = |key: &str| {
            let named = policy.weights.contains_key(key);
            let label = if named {
                key
            } else {
                crate::metrics::OTHER_KEYS
            };
            let (items, depth) = metrics.key_series(label);
            let weight = policy.weights.get(key).copied().unwrap_or(1);
            let series = KeySeries {
                items,
                depth,
                named,
            };
            (weight, series)
        };
        self.lanes
            .keyed(&key, bucket, policy.max_keys, new)
            .map_err(|TooManyKeys| Refusal::TooManyKeys {
                queue: self.spec.name.to_string(),
                key: key.to_string(),
                limit: policy.max_keys,
            })
    }

    /// Sets the per-key depth gauges, while keyed lanes exist (and once
    /// after): each named key its own, the others summed under `other`;
    /// then drops idle lanes other than the first (their named gauges go
    /// to 0).
    pub(super) fn show_keys(&mut self) {
        if self.lanes.keys() == 0 && !self.keyed_shown {
            // Lanes of other cost buckets, without keys: no gauges.
            if self.lanes.extra() > 0 {
                self.lanes.drop_idle();
            }
            return;
        }
        let mut other: Option<(metrics::Gauge, usize)> = None;
        // A named key's lanes (one per cost bucket) add up to its depth.
        let mut named: std::collections::BTreeMap<&str, (&metrics::Gauge, usize)> =
            Default::default();
        for lane in &self.lanes.all()[1..] {
            let (Some(series), Some(key)) = (&lane.series, &lane.key) else {
                continue;
            };
            let depth = lane.backlog.pending().len();
            let sum = if series.named {
                &mut named.entry(key).or_insert((&series.depth, 0)).1
            } else {
                &mut other.get_or_insert_with(|| (series.depth.clone(), 0)).1
            };
            *sum += depth;
        }
        for (gauge, depth) in named.into_values() {
            gauge.set(depth as f64);
        }
        match other {
            Some((gauge, depth)) => gauge.set(depth as f64),
            None if self.keyed_shown => {
                let (_, gauge) = self.spec.metrics.key_series(crate::metrics::OTHER_KEYS);
                gauge.set(0.0);
            }
            None => {}
        }
        self.lanes.drop_idle();
        self.keyed_shown = self.lanes.keys() > 0;
    }
}
