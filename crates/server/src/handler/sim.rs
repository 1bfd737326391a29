//! The `sim` handler: a simulated model whose batch of `n` items (n: the
//! size it is padded to, if any) takes `base + per_item × n + per_cost ×
//! cost`, where cost is the items' costs added, or with `padded` the
//! largest item cost times `n` (a model that pads every item to the
//! longest), then echoes every item. It shows what batching is worth for a
//! backend with a high fixed cost per call (a GPU model, a bulk insert),
//! and drives the benchmarks.
//!
//! It takes the time it says: with the server's precise timer, to within
//! tens of microseconds (tokio's timer alone rounds up to whole
//! milliseconds, so a 1 ms sim took about 2.2 ms).

use std::{sync::Arc, time::Duration};

use tonic::Status;

use super::{BoxFuture, Echo, Handler};
use crate::{
    contract::{Batch, ResultSink},
    timer::{self, PreciseTimer},
};

/// A handler that sleeps for a batch's simulated time, then echoes.
#[derive(Debug, Clone)]
pub struct Sim {
    /// Fixed cost of a batch.
    pub base: Duration,
    /// Cost of each item in it.
    pub per_item: Duration,
    /// Cost of each unit of the items' cost.
    pub per_cost: Duration,
    /// Whether the items' cost counts padded to the largest.
    pub padded: bool,
    /// Sub-millisecond sleeps; `None`: tokio's timer alone (a paused test
    /// clock needs that).
    pub precise: Option<Arc<PreciseTimer>>,
}

impl Sim {
    /// How long a batch of `n` items whose costs come to `cost` (added, or
    /// padded when the sim is) takes.
    pub fn time(&self, n: usize, cost: u128) -> Duration {
        let nanos = |d: Duration, k: u128| d.as_nanos().saturating_mul(k);
        let total = self
            .base
            .as_nanos()
            .saturating_add(nanos(self.per_item, n as u128))
            .saturating_add(nanos(self.per_cost, cost));
        Duration::from_nanos(u64::try_from(total).unwrap_or(u64::MAX))
    }

    /// The simulated time of `batch`.
    pub fn time_of(&self, batch: &Batch) -> Duration {
        // A padded batch costs what a batch of its padded size does.
        let n = batch
            .pad_to
            .unwrap_or(batch.items.len())
            .max(batch.items.len());
        let cost = if self.per_cost.is_zero() {
            0
        } else if self.padded {
            let max = batch.items.iter().map(|i| i.cost).max().unwrap_or(0);
            u128::from(max) * n as u128
        } else {
            batch.items.iter().map(|i| u128::from(i.cost)).sum()
        };
        self.time(n, cost)
    }
}

impl Handler for Sim {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn process<'a>(
        &'a self,
        batch: &'a Batch,
        sink: &'a mut dyn ResultSink,
    ) -> BoxFuture<'a, Result<(), Status>> {
        let took = self.time_of(batch);
        Box::pin(async move {
            timer::sleep(self.precise.as_deref(), took).await;
            Echo::answer_all(batch, sink);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bytes::Bytes;
    use tokio::time::Instant;

    use super::*;
    use crate::contract::{BatchItem, Trigger};

    fn batch(costs: &[u64], pad_to: Option<usize>) -> Batch {
        Batch {
            id: 1,
            queue: "q".into(),
            trigger: Trigger::Size,
            items: costs
                .iter()
                .map(|&cost| BatchItem {
                    payload: Bytes::new(),
                    attributes: HashMap::new(),
                    trace_id: None,
                    cost,
                })
                .collect(),
            deadline: Instant::now(),
            pad_to,
            key: None,
            cost: 0,
        }
    }

    #[test]
    fn the_time_follows_count_and_cost_summed_or_padded() {
        let us = Duration::from_micros;
        let mut sim = Sim {
            base: us(1000),
            per_item: us(10),
            per_cost: us(1),
            padded: false,
            precise: None,
        };
        assert_eq!(
            sim.time_of(&batch(&[10, 100, 40], None)),
            us(1000 + 30 + 150)
        );
        sim.padded = true;
        assert_eq!(
            sim.time_of(&batch(&[10, 100, 40], None)),
            us(1000 + 30 + 300)
        );
        assert_eq!(
            sim.time_of(&batch(&[10, 100, 40], Some(4))),
            us(1000 + 40 + 400)
        );
        sim.per_cost = Duration::ZERO;
        assert_eq!(sim.time_of(&batch(&[10, 100, 40], None)), us(1030));
    }
}
