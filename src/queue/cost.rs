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

use super::policy::{Named, Policy};
use crate::{
    error::Refusal,
    validation::{ConfigError, at_most, invalid},
};

/// The largest cost an item or a budget may have: 2^53.
pub const MAX_COST: u64 = 1 << 53;
/// Most entries of `cost_buckets`.
pub const MAX_BUCKETS: usize = 64;

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

named!(CostSource, "cost", (Unit, "unit"), (Bytes, "bytes"));
named!(CostModel, "cost_model", (Sum, "sum"), (Padded, "padded"));
named!(Oversize, "oversize", (Refuse, "refuse"), (Alone, "alone"));

/// A running account of costs: their sum and the largest one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Items counted.
    pub n: usize,
    /// Their costs added (u128: 10^7 items of 2^53 each cannot overflow).
    pub sum: u128,
    /// The largest cost.
    pub max: u64,
}

impl Tally {
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
fn parse_cost(text: &str) -> Result<u64, &'static str> {
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

/// The cost of an item of `queue`: its request's `requested`, else its
/// `cost_attribute`'s number, else by `policy.cost`; checked against the
/// budget (see the module docs).
///
/// # Errors
/// [`Refusal::BadCost`] naming the field or attribute, or
/// [`Refusal::CostOverBudget`].
pub fn item_cost(
    policy: &Policy,
    queue: &str,
    requested: Option<u64>,
    attributes: &std::collections::HashMap<String, String>,
    payload_len: usize,
) -> Result<u64, Refusal> {
    let bad = |from: String, value: String, why: &'static str| Refusal::BadCost {
        queue: queue.to_owned(),
        from,
        value,
        why,
    };
    let from_attribute = (!policy.cost_attribute.is_empty())
        .then(|| attributes.get(&policy.cost_attribute))
        .flatten();
    let cost = match (requested, from_attribute) {
        (Some(n), _) if n > MAX_COST => {
            return Err(bad("request field cost".into(), n.to_string(), "over 2^53"));
        }
        (Some(n), _) => n,
        (None, Some(text)) => parse_cost(text).map_err(|why| {
            bad(
                format!("attribute {:?}", policy.cost_attribute),
                crate::error::quoted(text),
                why,
            )
        })?,
        (None, None) => match policy.cost {
            CostSource::Unit => 1,
            CostSource::Bytes => payload_len as u64,
        },
    };
    let budget = policy.max_batch_cost;
    if budget > 0 && cost > budget && policy.oversize == Oversize::Refuse {
        return Err(Refusal::CostOverBudget {
            queue: queue.to_owned(),
            cost,
            budget,
        });
    }
    Ok(cost)
}

/// The bucket of an item of `cost`: the index of the first bound at least
/// `cost`, or one past the last bound (0 without buckets).
pub fn bucket_of(bounds: &[u64], cost: u64) -> u8 {
    let i = bounds.partition_point(|&bound| bound < cost);
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// Checks the cost fields of a policy; `field` names them.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the first bad field.
pub fn validate(policy: &Policy, field: &impl Fn(&str) -> String) -> Result<(), ConfigError> {
    at_most(
        &field("max_batch_cost"),
        policy.max_batch_cost,
        MAX_COST,
        "",
    )?;
    at_most(
        &field("cost_attribute"),
        policy.cost_attribute.len(),
        super::policy::MAX_KEY_BYTES,
        " bytes",
    )?;
    let bounds = &policy.cost_buckets;
    at_most(
        &field("cost_buckets"),
        bounds.len(),
        MAX_BUCKETS,
        " entries",
    )?;
    if bounds.first() == Some(&0) {
        return Err(invalid(field("cost_buckets"), "bounds must be ≥ 1"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(
            field("cost_buckets"),
            format!("must be strictly ascending, got {bounds:?}"),
        ));
    }
    at_most(
        &field("cost_buckets"),
        bounds.last().copied().unwrap_or(0),
        MAX_COST,
        " (its largest bound)",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn policy() -> Policy {
        Policy {
            cost_attribute: "tokens".into(),
            max_batch_cost: 100,
            ..Policy::default()
        }
    }

    fn attrs(tokens: &str) -> HashMap<String, String> {
        HashMap::from([("tokens".to_owned(), tokens.to_owned())])
    }

    #[test]
    fn the_request_field_wins_then_the_attribute_then_the_source() {
        let p = policy();
        assert_eq!(item_cost(&p, "q", Some(7), &attrs("9"), 3), Ok(7));
        assert_eq!(item_cost(&p, "q", None, &attrs("9"), 3), Ok(9));
        assert_eq!(item_cost(&p, "q", None, &HashMap::new(), 3), Ok(1));
        let bytes = Policy {
            cost: CostSource::Bytes,
            ..p
        };
        assert_eq!(item_cost(&bytes, "q", None, &HashMap::new(), 3), Ok(3));
        // Whole numbers written as floats are whole numbers.
        assert_eq!(item_cost(&bytes, "q", None, &attrs("4e1"), 3), Ok(40));
        assert_eq!(item_cost(&bytes, "q", None, &attrs("0"), 3), Ok(0));
    }

    #[test]
    fn bad_costs_are_refused_naming_where_they_came_from() {
        let p = Policy {
            max_batch_cost: 0,
            ..policy()
        };
        for (text, why) in [
            ("-3", "negative"),
            ("NaN", "not a number (NaN)"),
            ("abc", "not a number"),
            ("", "not a number"),
            ("9007199254740993", "over 2^53"),
            ("1e300", "over 2^53"),
            ("inf", "over 2^53"),
            ("2.5", "not a whole number"),
        ] {
            let err = item_cost(&p, "q", None, &attrs(text), 0).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("attribute \"tokens\""), "{message}");
            assert!(message.contains(why), "{text}: {message}");
            assert_eq!(
                tonic::Status::from(err).code(),
                tonic::Code::InvalidArgument
            );
        }
        assert_eq!(
            item_cost(&p, "q", None, &attrs("9007199254740992"), 0),
            Ok(MAX_COST)
        );
        let err = item_cost(&p, "q", Some(MAX_COST + 1), &HashMap::new(), 0).unwrap_err();
        assert!(err.to_string().contains("request field cost"), "{err}");
    }

    #[test]
    fn an_oversize_item_is_refused_or_let_through_alone() {
        let p = policy();
        assert_eq!(item_cost(&p, "q", Some(100), &HashMap::new(), 0), Ok(100));
        let err = item_cost(&p, "q", Some(101), &HashMap::new(), 0).unwrap_err();
        assert!(matches!(
            err,
            Refusal::CostOverBudget {
                cost: 101,
                budget: 100,
                ..
            }
        ));
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::InvalidArgument
        );
        let alone = Policy {
            oversize: Oversize::Alone,
            ..p
        };
        assert_eq!(
            item_cost(&alone, "q", Some(101), &HashMap::new(), 0),
            Ok(101)
        );
    }

    #[test]
    fn sum_and_padded_costs() {
        let t = [3, 10, 5].into_iter().fold(Tally::default(), Tally::with);
        assert_eq!(t.cost(CostModel::Sum, None), 18);
        assert_eq!(t.cost(CostModel::Padded, None), 30);
        assert_eq!(t.cost(CostModel::Padded, Some(4)), 40);
        assert_eq!(t.padding_ratio(None), Some(30.0 / 18.0));
        assert_eq!(Tally::default().with(0).padding_ratio(None), None);
        // No overflow at the limits.
        let big = Tally::default().with(MAX_COST).with(MAX_COST);
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

    #[test]
    fn cost_fields_are_checked() {
        let check = |p: Policy| validate(&p, &|f: &str| format!("queues.q.{f}"));
        assert!(check(policy()).is_ok());
        let message = |p: Policy| check(p).unwrap_err().to_string();
        assert!(
            message(Policy {
                cost_buckets: vec![64, 32],
                ..policy()
            })
            .contains("queues.q.cost_buckets must be strictly ascending")
        );
        assert!(
            message(Policy {
                cost_buckets: vec![0, 32],
                ..policy()
            })
            .contains("≥ 1")
        );
        assert!(
            message(Policy {
                max_batch_cost: MAX_COST + 1,
                ..policy()
            })
            .contains("queues.q.max_batch_cost")
        );
        assert!(
            message(Policy {
                cost_buckets: (1..=65).collect(),
                ..policy()
            })
            .contains("entries")
        );
        assert_eq!(CostModel::parse("padded"), Ok(CostModel::Padded));
        assert!(CostModel::parse("max").unwrap_err().contains("sum, padded"));
    }
}
