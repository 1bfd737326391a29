//! Admission: whether an item may join the queue (draining, size and
//! priority checks, target-mode shedding, its cost and lane, the queue's
//! limit), and into which lane.

use tokio::time::Instant;

use super::state::Actor;
use crate::{
    error::Refusal,
    metrics::Outcome,
    queue::{
        cost,
        item::{BACKGROUND, Item},
        policy::{self, Mode},
        target,
    },
};

impl Actor {
    /// Queues an item, or answers it with the reason it cannot be queued.
    pub(super) fn accept(&mut self, item: Item, now: Instant) {
        let spec = &self.spec;
        let admitted = if self.draining {
            Err(Refusal::Draining(spec.name.to_string()))
        } else {
            policy::check_item(&spec.policy, &spec.name, item.priority, item.payload.len())
        };
        // Background items wait for room instead of being shed.
        if admitted.is_ok()
            && item.priority != BACKGROUND
            && spec.policy.mode == Mode::Target
            && spec.policy.shed
            && let Err(refusal) = self.shed_check(&item)
        {
            self.spec.metrics.items(Outcome::Shed, 1);
            item.reply.err(refusal.into(), None);
            return;
        }
        let cost = admitted.and_then(|()| {
            policy::item_cost(
                &self.spec.policy,
                &self.spec.name,
                item.cost,
                &item.attributes,
                item.payload.len(),
            )
        });
        let lane = cost.and_then(|cost| {
            let bucket = cost::bucket_of(&self.spec.policy.cost_buckets, cost);
            self.lane_of(&item, bucket).map(|lane| (lane, cost))
        });
        let admitted = lane.and_then(|(lane, cost)| {
            let spec = &self.spec;
            let limit = spec.policy.max_queue_items;
            let total = self.lanes.len();
            let backlog = &mut self.lanes.get_mut(lane).backlog;
            let others =
                self.place.load.others_depth(self.place.index) + total - backlog.pending().len();
            let (room, dropped) = backlog.room_for_one(limit, others, now, &spec.name);
            self.count(dropped);
            room.map(|()| (lane, cost))
        });
        match admitted {
            Ok((lane, cost)) => {
                // The rate the target is kept for is the online items':
                // background items only fill what batches leave.
                if self.spec.policy.mode.adaptive() && item.priority != BACKGROUND {
                    let units = if self.spec.policy.budgeted() { cost } else { 1 };
                    (self.learner).arrived(now, usize::try_from(units).unwrap_or(usize::MAX));
                }
                self.lanes.get_mut(lane).backlog.push_item(
                    item,
                    cost,
                    now,
                    self.spec.policy.item_timeout,
                );
                if self.spec.policy.shards > 1 {
                    let depth = self.lanes.len();
                    self.place.load.set_depth(self.place.index, depth);
                }
            }
            Err(refusal) => {
                self.spec.metrics.items(Outcome::Rejected, 1);
                item.reply.err(refusal.into(), None);
            }
        }
    }

    /// `shed = true`: whether `item` can be answered within its limit,
    /// given the queue ahead of it and the learned handler time.
    pub(super) fn shed_check(&self, item: &Item) -> Result<(), Refusal> {
        let policy = &self.spec.policy;
        if self.learner.samples() < target::SHED_AFTER_SAMPLES {
            return Ok(());
        }
        let pending = self.lanes.all().iter().map(|l| self.units(l)).sum();
        let predicted =
            target::predicted_wait(policy, self.learner.line(), pending, self.in_flight.len());
        let limit = target::shed_limit(policy, item.timeout.unwrap_or(policy.item_timeout));
        match predicted {
            Some(predicted) if predicted > limit => Err(Refusal::Shed {
                queue: self.spec.name.to_string(),
                predicted,
                limit,
            }),
            _ => Ok(()),
        }
    }
}
