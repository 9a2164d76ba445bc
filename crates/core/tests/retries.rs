//! Store writes under failure: what is retried, how long it waits, that the whole request stays
//! inside its budget, and that an event is never stored twice nor answered 2xx unless stored.
//! Time is virtual (the in-memory store's clock), so these run instantly and deterministically.

mod common;

use std::time::Duration;

use acr_webhook_core::{handle, respond, Failure, Success};
use common::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn post_push(store: &MemoryStore, extra: &[(&str, &str)]) -> Result<Success, Failure> {
    let bearer = format!("Bearer {TEST_WEBHOOK_KEY}");
    let h = head("POST", "/acr", &[("authorization", &bearer)]);
    let cfg = config(extra);
    block_on(handle(&h, fixture("acr/push.json"), Ok(cfg), store, now()))
}

const PUSH_ID: &str = "cb8c3971-9adc-488b-bdd8-43cbb4974ff5";

#[test]
fn transient_failures_are_retried_until_stored() {
    for first in [
        Behaviour::Status(429, Some("30")),
        Behaviour::Status(449, None),
        Behaviour::Status(503, None),
        Behaviour::Status(408, None),
        Behaviour::Status(500, None),
        Behaviour::Unreachable,
        Behaviour::Stall,
    ] {
        let store = MemoryStore::scripted(&[first.clone(), first.clone(), Behaviour::Normal]);
        let outcome = post_push(&store, &[]);
        assert_eq!(
            outcome,
            Ok(Success::Stored {
                id: PUSH_ID.into(),
                unknown_action: None,
                conflicts_with: None
            }),
            "{first:?}"
        );
        assert_eq!(store.requests.borrow().len(), 3, "{first:?}");
        assert_eq!(store.documents.borrow().len(), 1);
        assert!(
            store.clock.get() <= MS(4000),
            "{first:?}: {:?}",
            store.clock.get()
        );
    }
}

#[test]
fn the_retry_after_the_store_asks_for_is_honoured() {
    let store = MemoryStore::scripted(&[Behaviour::Status(429, Some("250")), Behaviour::Normal]);
    assert!(post_push(&store, &[]).is_ok());
    assert_eq!(*store.sleeps.borrow(), vec![MS(250)]);
}

#[test]
fn a_write_whose_answer_was_lost_is_stored_once_and_reported_stored() {
    let store = MemoryStore::scripted(&[Behaviour::LostAnswer, Behaviour::Normal]);
    let outcome = post_push(&store, &[]);
    assert_eq!(
        outcome,
        Ok(Success::AlreadyStored {
            id: PUSH_ID.into(),
            conflicts_with: None
        })
    );
    assert_eq!(store.documents.borrow().len(), 1);
    // The lost create, the 409, and the read that finds the same content stored.
    assert_eq!(store.requests.borrow().len(), 3);
}

#[test]
fn final_refusals_are_not_retried() {
    for status in [400, 401, 403, 404, 413] {
        let store = MemoryStore::scripted(&[Behaviour::Status(status, None), Behaviour::Normal]);
        let outcome = post_push(&store, &[]);
        assert!(
            matches!(outcome, Err(Failure::StoreRefused(_))),
            "{status}: {outcome:?}"
        );
        assert_eq!(store.requests.borrow().len(), 1, "{status}");
        assert!(store.documents.borrow().is_empty());
    }
}

#[test]
fn a_store_that_never_recovers_gets_503_inside_the_budget() {
    for (behaviour, budget) in [
        (Behaviour::Status(503, None), 4000),
        (Behaviour::Stall, 4000),
        (Behaviour::Unreachable, 4000),
        (Behaviour::Status(429, Some("100")), 4000),
        (Behaviour::Stall, 1000),
        (Behaviour::Status(503, None), 200),
    ] {
        let store = MemoryStore::new();
        *store.behaviour.borrow_mut() = behaviour.clone();
        let budget_text = budget.to_string();
        let outcome = post_push(&store, &[("write_budget_ms", &budget_text)]);
        let response = respond(&outcome);
        assert_eq!(response.status(), 503, "{behaviour:?}");
        assert!(response.headers().contains_key("retry-after"));
        assert!(store.documents.borrow().is_empty());
        assert!(
            store.clock.get() <= MS(budget),
            "{behaviour:?} took {:?}",
            store.clock.get()
        );
        assert!(
            store.requests.borrow().len() >= 2 || budget < 400,
            "{behaviour:?} retried"
        );
        for t in store.timeouts.borrow().iter() {
            assert!(*t <= MS(budget / 4).max(MS(100)), "attempt timeout {t:?}");
        }
    }
}

#[test]
fn backoff_waits_grow_and_stay_jittered() {
    let store = MemoryStore::new();
    *store.behaviour.borrow_mut() = Behaviour::Status(503, None);
    let _ = post_push(&store, &[("write_budget_ms", "60000")]);
    let sleeps = store.sleeps.borrow();
    assert!(sleeps.len() >= 10, "{sleeps:?}");
    assert!(sleeps.iter().all(|s| *s <= MS(800)), "{sleeps:?}");
    let distinct: std::collections::HashSet<_> = sleeps.iter().collect();
    assert!(distinct.len() > sleeps.len() / 2, "jitter: {sleeps:?}");
}
