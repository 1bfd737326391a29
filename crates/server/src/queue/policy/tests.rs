use std::{collections::HashMap, time::Duration};

use super::*;
use crate::error::Refusal;
use crate::{
    queue::cost::{CostModel, CostSource, MAX_COST, Oversize},
    validation::{ConfigError, Named},
};

fn policy() -> Policy {
    Policy {
        max_batch_size: 4,
        max_batch_bytes: 100,
        max_delay: Duration::from_millis(2),
        min_batch_size: 1,
        strict: false,
        mode: Mode::Auto,
        max_queue_items: 10,
        max_in_flight_batches: 1,
        item_timeout: Duration::from_secs(1),
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

fn view(len: usize, bytes: usize, age_us: u64) -> PendingView {
    PendingView {
        len,
        bytes,
        oldest_age: Duration::from_micros(age_us),
        cost: 0,
    }
}

#[test]
fn cost_closes_at_the_budget() {
    let p = Policy {
        max_batch_cost: 100,
        ..policy()
    };
    let at = |cost| {
        decide(
            &p,
            PendingView {
                cost,
                ..view(2, 2, 0)
            },
        )
    };
    assert!(matches!(at(99), Decision::WakeIn(_)));
    assert_eq!(at(100), Decision::Dispatch(Trigger::Cost));
    assert_eq!(at(101), Decision::Dispatch(Trigger::Cost));
    // Without a budget the cost is never looked at.
    assert!(matches!(
        decide(
            &policy(),
            PendingView {
                cost: 1_000,
                ..view(2, 2, 0)
            }
        ),
        Decision::WakeIn(_)
    ));
}

#[test]
fn empty_queue_is_idle() {
    assert_eq!(decide(&policy(), view(0, 0, 0)), Decision::Idle);
}

#[test]
fn size_closes_at_max_batch_size() {
    assert_eq!(
        decide(&policy(), view(3, 3, 0)),
        Decision::WakeIn(Duration::from_millis(2))
    );
    assert_eq!(
        decide(&policy(), view(4, 4, 0)),
        Decision::Dispatch(Trigger::Size)
    );
}

#[test]
fn bytes_close_at_max_batch_bytes() {
    assert_eq!(
        decide(&policy(), view(2, 100, 0)),
        Decision::Dispatch(Trigger::Bytes)
    );
    assert!(matches!(
        decide(&policy(), view(2, 99, 0)),
        Decision::WakeIn(_)
    ));
}

#[test]
fn delay_counts_from_the_oldest_item() {
    assert_eq!(
        decide(&policy(), view(1, 1, 1_500)),
        Decision::WakeIn(Duration::from_micros(500))
    );
    assert_eq!(
        decide(&policy(), view(1, 1, 2_000)),
        Decision::Dispatch(Trigger::Delay)
    );
}

#[test]
fn delay_waits_for_min_batch_size() {
    let p = Policy {
        min_batch_size: 3,
        ..policy()
    };
    assert_eq!(decide(&p, view(2, 2, 5_000)), Decision::Idle);
    assert_eq!(
        decide(&p, view(3, 3, 5_000)),
        Decision::Dispatch(Trigger::Delay)
    );
}

#[test]
fn manual_mode_never_dispatches_by_itself() {
    let p = Policy {
        mode: Mode::Manual,
        ..policy()
    };
    assert_eq!(decide(&p, view(100, 1_000, 60_000_000)), Decision::Idle);
}

#[test]
fn zero_delay_dispatches_at_once() {
    let p = Policy {
        max_delay: Duration::ZERO,
        ..policy()
    };
    assert_eq!(
        decide(&p, view(1, 1, 0)),
        Decision::Dispatch(Trigger::Delay)
    );
}

#[test]
fn items_are_checked_against_priority_levels_and_batch_bytes() {
    let mut policy = policy();
    policy.priority_levels = 2;
    policy.max_batch_bytes = 10;
    assert_eq!(check_item(&policy, "q", 1, 10), Ok(()));
    assert!(matches!(
        check_item(&policy, "q", 2, 1),
        Err(Refusal::BadPriority { max: 1, .. })
    ));
    assert!(matches!(
        check_item(&policy, "q", 0, 11),
        Err(Refusal::PayloadTooLarge {
            size: 11,
            limit: 10,
            ..
        })
    ));
}

fn sized(allowed: &[usize]) -> Policy {
    Policy {
        max_batch_size: *allowed.last().unwrap(),
        max_queue_items: 1000,
        allowed_batch_sizes: allowed.to_vec(),
        ..policy()
    }
}

fn take(len: usize, hold_rest: bool) -> Take {
    Take { len, hold_rest }
}

#[test]
fn without_allowed_sizes_every_batch_takes_up_to_max() {
    let p = policy();
    for trigger in Trigger::ALL {
        assert_eq!(batch_len(&p, trigger, 3, false), take(4, false));
    }
    assert_eq!(pad_to(&p, 3), None);
}

#[test]
fn delay_takes_the_largest_allowed_size_pending_and_holds_the_rest() {
    let p = sized(&[1, 8, 32]);
    assert_eq!(batch_len(&p, Trigger::Delay, 13, false), take(8, true));
    assert_eq!(batch_len(&p, Trigger::Delay, 31, false), take(8, true));
    assert_eq!(batch_len(&p, Trigger::Delay, 8, false), take(8, false));
    assert_eq!(batch_len(&p, Trigger::Delay, 5, false), take(1, true));
    // Held back once: all of them go, padded.
    assert_eq!(batch_len(&p, Trigger::Delay, 13, true), take(32, false));
    assert_eq!(pad_to(&p, 13), Some(32));
    assert_eq!(pad_to(&p, 8), None);
}

#[test]
fn fewer_than_the_smallest_allowed_size_go_at_once_padded() {
    let p = sized(&[8, 32]);
    assert_eq!(batch_len(&p, Trigger::Delay, 3, false), take(32, false));
    assert_eq!(pad_to(&p, 3), Some(8));
}

#[test]
fn an_allowed_size_below_min_batch_size_is_not_taken() {
    let p = Policy {
        min_batch_size: 10,
        ..sized(&[8, 32])
    };
    assert_eq!(batch_len(&p, Trigger::Delay, 12, false), take(32, false));
    assert_eq!(pad_to(&p, 12), Some(32));
    let p = Policy {
        min_batch_size: 8,
        ..sized(&[8, 32])
    };
    assert_eq!(batch_len(&p, Trigger::Delay, 12, false), take(8, true));
}

#[test]
fn size_bytes_flush_and_drain_take_what_they_take() {
    let p = sized(&[1, 8, 32]);
    for trigger in [
        Trigger::Size,
        Trigger::Bytes,
        Trigger::Flush,
        Trigger::Drain,
    ] {
        assert_eq!(batch_len(&p, trigger, 13, false), take(32, false));
    }
}

#[test]
fn allowed_sizes_must_ascend_and_end_with_max_batch_size() {
    let check = |allowed: Vec<usize>, max: usize| {
        Policy {
            max_batch_size: max,
            max_queue_items: 1000,
            allowed_batch_sizes: allowed,
            ..policy()
        }
        .validate("queues.q", 1 << 20)
    };
    assert!(check(vec![], 4).is_ok());
    assert!(check(vec![1, 2, 4], 4).is_ok());
    assert!(check(vec![4], 4).is_ok());
    let message = |r: Result<(), ConfigError>| r.unwrap_err().to_string();
    assert!(message(check(vec![1, 2], 4)).contains("must end with max_batch_size (4)"));
    assert!(message(check(vec![2, 1, 4], 4)).contains("strictly ascending"));
    assert!(message(check(vec![2, 2, 4], 4)).contains("strictly ascending"));
    assert!(message(check(vec![0, 4], 4)).contains("≥ 1"));
    assert!(message(check((1..=65).collect(), 65)).contains("entries"));
}

#[test]
fn adaptive_modes_take_a_target_and_no_allowed_sizes() {
    assert_eq!(Mode::parse("target"), Ok(Mode::Target));
    assert_eq!(Mode::parse("aimd"), Ok(Mode::Aimd));
    assert!(
        Mode::parse("fast")
            .unwrap_err()
            .contains("auto, manual, target, aimd")
    );
    let target = Policy {
        mode: Mode::Target,
        ..policy()
    };
    assert!(target.validate("queues.q", 1 << 20).is_ok());
    let zero = Policy {
        target_latency: Duration::ZERO,
        ..target.clone()
    };
    assert!(
        zero.validate("queues.q", 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("target_latency must be > 0")
    );
    let sized = Policy {
        allowed_batch_sizes: vec![2, 4],
        ..target
    };
    assert!(
        sized
            .validate("queues.q", 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("does not apply to mode = \"target\"")
    );
}

fn cost_policy() -> Policy {
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
    let p = cost_policy();
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
        ..cost_policy()
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
    let p = cost_policy();
    assert_eq!(item_cost(&p, "q", Some(100), &HashMap::new(), 0), Ok(100));
    let err = item_cost(&p, "q", Some(101), &HashMap::new(), 0).unwrap_err();
    assert!(
        err.to_string()
            .contains("of queue \"q\", whose oversize = \"refuse\" refuses it"),
        "{err}"
    );
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
fn cost_fields_are_checked() {
    let check = |p: Policy| p.validate("queues.q", 1 << 30);
    assert!(check(cost_policy()).is_ok());
    let message = |p: Policy| check(p).unwrap_err().to_string();
    assert!(
        message(Policy {
            cost_buckets: vec![64, 32],
            ..cost_policy()
        })
        .contains("queues.q.cost_buckets must be strictly ascending")
    );
    assert!(
        message(Policy {
            cost_buckets: vec![0, 32],
            ..cost_policy()
        })
        .contains("≥ 1")
    );
    assert!(
        message(Policy {
            max_batch_cost: MAX_COST + 1,
            ..cost_policy()
        })
        .contains("queues.q.max_batch_cost")
    );
    assert!(
        message(Policy {
            cost_buckets: (1..=65).collect(),
            ..cost_policy()
        })
        .contains("entries")
    );
    assert_eq!(CostModel::parse("padded"), Ok(CostModel::Padded));
    assert!(CostModel::parse("max").unwrap_err().contains("sum, padded"));
}
