//! Cost-aware batching: what an item costs the backend (tokens, rows,
//! bytes), what a batch of such items costs under the queue's model, and
//! the length bucket an item batches in. Pure functions, tested with plain
//! `#[test]`s.
//!
//! - An item's cost is its request's `cost`, else the number in the
//!   attribute the queue's `cost_attribute` names, else its payload's bytes
//!   (`cost = "bytes"`) or 1 (`cost = "unit"`, the default). A cost is a
//!   whole number in `0..=2^53` (the integers a JSON number or a double
//!   holds exactly); anything else is refused, naming where it came from.
//! - A batch's cost is the items' costs added (`cost_model = "sum"`), or,
//!   for a model that pads every item to the longest (`"padded"`), the
//!   largest cost times the items (times the size it is padded to, with
//!   `allowed_batch_sizes`).
//! - `max_batch_cost` closes a batch before the next item would pass it; an
//!   item whose own cost passes it is refused at admission, or with
//!   `oversize = "alone"` goes in a batch of its own.
//! - `cost_buckets = [32, 64, 128]`: an item goes to the first bucket whose
//!   bound is at least its cost (past the last, to one more bucket), and
//!   items of different buckets never share a batch.

use serde::{Deserialize, Serialize};

use crate::validation::Named;

/// The largest cost an item or a budget may have: 2^53.
pub const MAX_COST: u64 = crate::limits::queue::COST.max;

/// Where an item's cost comes from when neither its request nor the
/// queue's `cost_attribute` gives one.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// Every item costs 1.
    #[default]
    Unit,
    /// An item costs its payload's length in bytes.
    Bytes,
}

/// How a batch's cost follows from its items'.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CostModel {
    /// The items' costs added (a model that does not pad).
    #[default]
    Sum,
    /// The largest item cost times the number of items (a model that pads
    /// every item to the longest, as transformers do).
    Padded,
}

/// What happens to an item whose own cost passes `max_batch_cost`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Oversize {
    /// INVALID_ARGUMENT at admission.
    #[default]
    Refuse,
    /// Sent in a batch of its own.
    Alone,
}

macro_rules! named {
    ($ty:ident, $what:literal, $(($variant:ident, $name:literal)),+ $(,)?) => {
        impl Named for $ty {
            const NAMES: &'static [&'static str] = &[$($name),+];

            fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }

            fn parse(name: &str) -> Result<Self, String> {
                match name {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(
                        concat!($what, " {:?} is not one of {}"),
                        other,
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }
    };
}

pub(crate) use named;

named!(CostSource, "cost", (Unit, "unit"), (Bytes, "bytes"));
named!(CostModel, "cost_model", (Sum, "sum"), (Padded, "padded"));
named!(Oversize, "oversize", (Refuse, "refuse"), (Alone, "alone"));

/// A running account of costs: their sum and the largest one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostTally {
    /// Items counted.
    pub n: usize,
    /// Their costs added (u128: 10^7 items of 2^53 each cannot overflow).
    pub sum: u128,
    /// The largest cost.
    pub max: u64,
}

impl CostTally {
    /// The tally with one more item of `cost`.
    pub fn with(self, cost: u64) -> Self {
        Self {
            n: self.n + 1,
            sum: self.sum + u128::from(cost),
            max: self.max.max(cost),
        }
    }

    /// The batch cost of these items under `model`, padded to `pad_to`
    /// items if given.
    pub fn cost(&self, model: CostModel, pad_to: Option<usize>) -> u128 {
        match model {
            CostModel::Sum => self.sum,
            CostModel::Padded => {
                u128::from(self.max) * pad_to.unwrap_or(self.n).max(self.n) as u128
            }
        }
    }

    /// Padded cost over summed cost (1 when nothing is wasted); `None` for
    /// items that cost nothing.
    pub fn padding_ratio(&self, pad_to: Option<usize>) -> Option<f64> {
        (self.sum > 0).then(|| self.cost(CostModel::Padded, pad_to) as f64 / self.sum as f64)
    }
}

/// A cost as the queue counts it against a budget (saturating at `u64`).
pub fn clamp(cost: u128) -> u64 {
    u64::try_from(cost).unwrap_or(u64::MAX)
}

/// What is wrong with a cost attribute's text, if anything; the cost if not.
pub(super) fn parse_cost(text: &str) -> Result<u64, &'static str> {
    if let Ok(n) = text.parse::<u64>() {
        return if n > MAX_COST {
            Err("over 2^53")
        } else {
            Ok(n)
        };
    }
    let Ok(x) = text.parse::<f64>() else {
        return Err("not a number");
    };
    if x.is_nan() {
        Err("not a number (NaN)")
    } else if x < 0.0 {
        Err("negative")
    } else if x > MAX_COST as f64 {
        Err("over 2^53")
    } else if x.fract() != 0.0 {
        Err("not a whole number")
    } else {
        // A whole number in 0..=2^53: exact as u64.
        Ok(x as u64)
    }
}

/// The bucket of an item of `cost`: the index of the first bound at least
/// `cost`, or one past the last bound (0 without buckets).
pub fn bucket_of(bounds: &[u64], cost: u64) -> u8 {
    let i = bounds.partition_point(|&bound| bound < cost);
    u8::try_from(i).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_and_padded_costs() {
        let t = [3, 10, 5]
            .into_iter()
            .fold(CostTally::default(), CostTally::with);
        assert_eq!(t.cost(CostModel::Sum, None), 18);
        assert_eq!(t.cost(CostModel::Padded, None), 30);
        assert_eq!(t.cost(CostModel::Padded, Some(4)), 40);
        assert_eq!(t.padding_ratio(None), Some(30.0 / 18.0));
        assert_eq!(CostTally::default().with(0).padding_ratio(None), None);
        // No overflow at the limits.
        let big = CostTally::default().with(MAX_COST).with(MAX_COST);
        assert_eq!(
            big.cost(CostModel::Padded, Some(1_000_000)),
            u128::from(MAX_COST) * 1_000_000
        );
        assert_eq!(clamp(u128::MAX), u64::MAX);
    }

    #[test]
    fn buckets_by_upper_bound() {
        let bounds = [32, 64, 128];
        assert_eq!(bucket_of(&bounds, 0), 0);
        assert_eq!(bucket_of(&bounds, 32), 0);
        assert_eq!(bucket_of(&bounds, 33), 1);
        assert_eq!(bucket_of(&bounds, 128), 2);
        assert_eq!(bucket_of(&bounds, 129), 3);
        assert_eq!(bucket_of(&[], 1_000), 0);
    }
}
