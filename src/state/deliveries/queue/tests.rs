//! The queue on a real SQLite file: what a claim takes, what a release gives back, and what
//! recording an attempt makes of its delivery.

use super::super::{AttemptRecord, Outcome, Queue, Status};
use crate::delivery::retry::SETTLED;
use crate::state::StateDb;

/// A state file with one run of `task` holding `count` pending deliveries, created at 1000.
fn queue_of(count: i64) -> (tempfile::TempDir, StateDb, i64) {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
    for n in 1..=count {
        run.add(&format!("msg_{n:028}"), n, &format!("K{n}"), &[b"{}"])
            .unwrap();
    }
    let run_id = run.commit(count as u64).unwrap();
    (dir, state, run_id)
}

/// A first attempt's outcome.
fn outcome(seq: i64, status: Status, next: i64) -> Outcome {
    Outcome {
        seq,
        n: 1,
        attempt: AttemptRecord {
            at_ms: 1_000_500,
            status: Some(if status == Status::Delivered {
                200
            } else {
                500
            }),
            error: (status != Status::Delivered).then(|| "HTTP 500".to_string()),
            duration_ms: 3,
            excerpt: String::new(),
        },
        status,
        next_attempt_at: next,
    }
}

#[test]
fn a_claim_takes_the_oldest_unclaimed_and_never_twice() {
    let (_dir, state, run_id) = queue_of(5);
    let first = state.claim(Queue::Run("t", run_id), "a", 1000, 2).unwrap();
    let ids: Vec<i64> = first.iter().map(|c| c.license_id).collect();
    assert_eq!(ids, [1, 2]);
    let second = state.claim(Queue::Run("t", run_id), "b", 1000, 10).unwrap();
    let ids: Vec<i64> = second.iter().map(|c| c.license_id).collect();
    assert_eq!(ids, [3, 4, 5], "claimed deliveries are not claimed again");
    assert!(
        state
            .claim(Queue::Run("t", run_id), "c", 1000, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn releasing_one_claimer_gives_back_only_its_own() {
    let (_dir, state, run_id) = queue_of(4);
    state.claim(Queue::Run("t", run_id), "a", 1000, 2).unwrap();
    state.claim(Queue::Run("t", run_id), "b", 1000, 2).unwrap();
    state.release_claims("t", Some("a")).unwrap();
    let again = state.claim(Queue::Run("t", run_id), "c", 1000, 10).unwrap();
    let ids: Vec<i64> = again.iter().map(|c| c.license_id).collect();
    assert_eq!(ids, [1, 2]);
    state.release_claims("t", None).unwrap();
    assert_eq!(
        state
            .claim(Queue::Run("t", run_id), "d", 1000, 10)
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn below_the_cursor_a_claim_takes_what_was_given_back_between_held_ones_whole_and_in_order() {
    let (_dir, state, run_id) = queue_of(10);
    let queue = Queue::Run("t", run_id);
    state.claim(queue, "a", 1000, 4).unwrap();
    state.claim(queue, "b", 1000, 4).unwrap();
    state.claim(queue, "a", 1000, 2).unwrap();
    state.release_claims("t", Some("b")).unwrap();
    let again = state.claim(queue, "c", 1000, 3).unwrap();
    let ids: Vec<i64> = again.iter().map(|c| c.license_id).collect();
    assert_eq!(
        ids,
        [5, 6, 7],
        "the given back ones, oldest first, up to the limit"
    );
    assert!(
        again
            .iter()
            .all(|c| c.body == b"{}" && c.activation_key == format!("K{}", c.license_id)),
        "read whole"
    );
    let rest = state.claim(queue, "c", 1000, 10).unwrap();
    let ids: Vec<i64> = rest.iter().map(|c| c.license_id).collect();
    assert_eq!(ids, [8]);
    assert!(state.claim(queue, "d", 1000, 10).unwrap().is_empty());
}

#[test]
fn an_attempt_is_stored_and_moves_its_delivery_on() {
    let (_dir, state, run_id) = queue_of(3);
    let claimed = state.claim(Queue::Run("t", run_id), "a", 1000, 3).unwrap();
    state
        .record_attempts(&[
            outcome(claimed[0].seq, Status::Delivered, 1000),
            outcome(claimed[1].seq, Status::Failed, 1060),
            outcome(claimed[2].seq, Status::Dead, 1000),
        ])
        .unwrap();
    // A run sends each delivery once: none of them is in its queue any more.
    assert!(
        state
            .claim(Queue::Run("t", run_id), "b", 5000, 10)
            .unwrap()
            .is_empty()
    );
    // The failed one is due for a retry at 1060, not before; delivered and dead never.
    assert!(
        state
            .claim(Queue::DueForTask("t", 1059), "b", 1059, 10)
            .unwrap()
            .is_empty()
    );
    let due = state
        .claim(Queue::DueForTask("t", 1060), "b", 1060, 10)
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].license_id, due[0].attempts), (2, 1));
    let attempts = state.attempts(&claimed[1].id).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
}

#[test]
fn a_requeued_delivery_is_due_again_whatever_its_status() {
    let (_dir, state, run_id) = queue_of(1);
    let claimed = state.claim(Queue::Run("t", run_id), "a", 1000, 1).unwrap();
    state
        .record_attempts(&[outcome(claimed[0].seq, Status::Delivered, 1000)])
        .unwrap();
    assert!(
        state
            .claim(Queue::One("t", claimed[0].seq), "b", 2000, 1)
            .unwrap()
            .is_empty()
    );
    state.requeue(claimed[0].seq, 2000).unwrap();
    let again = state
        .claim(Queue::One("t", claimed[0].seq), "b", 2000, 1)
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id, "the same delivery id");
    assert_eq!(state.tasks_with_due(2000).unwrap(), ["t"]);
    // One delivery is claimed for its own source only: a seq another source holds (a deleted
    // run's seq, taken again by the next insert) is not this source's.
    state.requeue(claimed[0].seq, 3000).unwrap();
    state.release_claims("t", Some("b")).unwrap();
    assert!(
        state
            .claim(Queue::One("u", claimed[0].seq), "c", 3000, 1)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        state
            .claim(Queue::One("t", claimed[0].seq), "c", 3000, 1)
            .unwrap()
            .len(),
        1,
        "its own source's claim takes it"
    );
}

#[test]
fn a_large_group_moves_each_delivery_on_by_its_own_outcome() {
    // 90 outcomes: statements of 64, 16, 4 and 1 rows, and runs of equal updates that a
    // failure in the middle cuts short.
    let (_dir, state, run_id) = queue_of(90);
    let claimed = state.claim(Queue::Run("t", run_id), "a", 1000, 90).unwrap();
    let failed = |index: usize| index == 20 || index == 85;
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .enumerate()
        .map(|(index, delivery)| match failed(index) {
            true => outcome(delivery.seq, Status::Failed, 1060),
            false => outcome(delivery.seq, Status::Delivered, 1000),
        })
        .collect();
    state.record_attempts(&outcomes).unwrap();
    let second = Outcome {
        n: 2,
        ..outcome(claimed[20].seq, Status::Delivered, 1000)
    };
    state.record_attempts(&[second]).unwrap();
    let entries = state.log(&Default::default()).unwrap();
    assert_eq!(entries.len(), 90);
    for entry in &entries {
        let index = claimed.iter().position(|d| d.id == entry.id).unwrap();
        let (status, attempts) = match index {
            20 => (Status::Delivered, 2),
            85 => (Status::Failed, 1),
            _ => (Status::Delivered, 1),
        };
        assert_eq!(
            (entry.status, entry.attempts),
            (status, attempts),
            "{index}"
        );
        let stored = state.attempts(&entry.id).unwrap();
        assert_eq!(stored.len() as i64, attempts, "{index}");
    }
    let numbers: Vec<i64> = state
        .conn
        .prepare("SELECT n FROM attempts WHERE delivery_seq = ?1 ORDER BY n")
        .unwrap()
        .query_map([claimed[20].seq], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        numbers,
        [1, 2],
        "two attempts of one delivery are numbered 1, 2"
    );
    let due = state
        .claim(Queue::DueForTask("t", 1060), "b", 1060, 10)
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.seq).collect::<Vec<_>>(),
        [claimed[85].seq]
    );
}

#[test]
fn a_group_out_of_order_or_with_gaps_moves_on_only_its_own_deliveries() {
    // Reversed (every UPDATE by seq list) and with gaps (ranges that stop at each gap): the
    // deliveries left out stay pending.
    let (_dir, state, run_id) = queue_of(40);
    let claimed = state.claim(Queue::Run("t", run_id), "a", 1000, 40).unwrap();
    let left_out = |index: usize| index % 7 == 3;
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .enumerate()
        .rev()
        .filter(|(index, _)| !left_out(*index))
        .map(|(_, delivery)| outcome(delivery.seq, Status::Delivered, 1000))
        .collect();
    state.record_attempts(&outcomes[..10]).unwrap();
    let mut forward = outcomes[10..].to_vec();
    forward.reverse();
    state.record_attempts(&forward).unwrap();
    for entry in state.log(&Default::default()).unwrap() {
        let index = claimed.iter().position(|d| d.id == entry.id).unwrap();
        let expected = match left_out(index) {
            true => (Status::Pending, 0),
            false => (Status::Delivered, 1),
        };
        assert_eq!((entry.status, entry.attempts), expected, "{index}");
    }
}

#[test]
fn a_delivered_row_keeps_its_size_so_it_is_rewritten_in_place() {
    // Times of this century take four bytes, as a real run's do.
    let now = 1_795_428_000;
    let dir = tempfile::tempdir().unwrap();
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    let mut run = state.begin_run("t", "T", None, now, true).unwrap();
    for n in 1..=500 {
        run.add(&format!("msg_{n:028}"), n, &format!("K{n}"), &[b"{}"])
            .unwrap();
    }
    let run_id = run.commit(500).unwrap();
    let stored = |state: &StateDb| -> (i64, i64) {
        state
            .conn
            .query_row(
                "SELECT sum(payload), count(*) FROM dbstat WHERE name = 'deliveries'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap()
    };
    let before = stored(&state);
    let claimed = state.claim(Queue::Run("t", run_id), "a", now, 500).unwrap();
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .map(|delivery| {
            let delivered = outcome(delivery.seq, Status::Delivered, SETTLED);
            Outcome {
                attempt: AttemptRecord {
                    at_ms: now * 1000 + 250,
                    ..delivered.attempt
                },
                ..delivered
            }
        })
        .collect();
    state.record_attempts(&outcomes).unwrap();
    let delivered: i64 = state
        .conn
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered' AND last_status = 200",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(delivered, 500);
    assert_eq!(
        stored(&state),
        before,
        "the deliveries' bytes and pages, pending and then delivered"
    );
}

#[test]
fn a_task_body_is_stored_packed_and_read_back_as_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    use crate::licenses::license_info::{Field, InfoBuffer, License, LicenseInfo};
    use crate::licenses::schema::{Kind, LICENSE_INFO};
    let values = LICENSE_INFO
        .iter()
        .enumerate()
        .map(|(index, (_, kind))| match kind {
            Kind::Bool => Field::Bool(index % 2 == 0),
            Kind::Text => Field::Text(format!("Ólafur \"{index}\",")),
            Kind::Int | Kind::Model => Field::Int(index as i64 - 3),
            Kind::Date => Field::Date((index % 2 == 0).then(|| "2026-01-31T08:00:00".into())),
        });
    let license = License {
        id: 1,
        subscription_expiry: None,
        info: LicenseInfo::from_fields(values.collect()),
    };
    let envelope = crate::delivery::payload::Envelope::new("Renewals", "crm \"1\"");
    let body = envelope.body(&license.info);
    let mut buffer = InfoBuffer::packing(0);
    let row = license.as_row(&mut buffer);
    let info = row.packed().unwrap();
    let [head, _, tail] = envelope.parts(&[]);
    let event = br#"{"event":"license.created"}"#;
    let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
    run.add_packed("msg_a", 1, "K1", head, info, tail).unwrap();
    run.add("msg_b", 2, "K2", &[event]).unwrap();
    let run_id = run.commit(2).unwrap();
    let stored: Vec<(Vec<u8>,)> = state
        .conn
        .prepare("SELECT body FROM delivery_bodies ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?,)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(stored[0].0.len() * 2 < body.len(), "packed");
    assert_eq!(stored[1].0, event, "any other body as it is");
    let claimed = state.claim(Queue::Run("t", run_id), "a", 1000, 10).unwrap();
    let bodies: Vec<&[u8]> = claimed.iter().map(|c| c.body.as_slice()).collect();
    assert_eq!(bodies, [body.as_slice(), event.as_slice()]);
    assert_eq!(state.body("msg_a").unwrap().unwrap(), body);
    assert_eq!(state.body("msg_b").unwrap().unwrap(), event);
    let log = state.log(&Default::default()).unwrap();
    let bytes: Vec<_> = log.iter().map(|entry| entry.bytes).collect();
    assert_eq!(
        bytes,
        [event.len() as i64, body.len() as i64],
        "log counts the bytes sent"
    );
    // A packed body damaged on disk: that delivery is given up (dead, saying why), never sent
    // with other bytes, and the others are still claimed.
    state
        .conn
        .execute(
            "UPDATE delivery_bodies SET body = substr(body, 1, 40) WHERE seq = 1",
            [],
        )
        .unwrap();
    state.release_claims("t", None).unwrap();
    let claimed = state.claim(Queue::Run("t", run_id), "b", 2000, 10).unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["msg_b"]);
    let (status, error, updated): (String, String, i64) = state
        .conn
        .query_row(
            "SELECT status, last_error, updated_at FROM deliveries WHERE id = 'msg_a'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), updated), ("dead", 2000));
    assert!(error.starts_with("a stored body is damaged"), "{error}");
    state.release_claims("t", None).unwrap();
    let again = state.claim(Queue::Run("t", run_id), "c", 2000, 10).unwrap();
    assert_eq!(again.len(), 1, "a dead delivery is not claimed again");
    let chain = error_chain(&state.body("msg_a").unwrap_err());
    assert!(
        chain.contains("delivery msg_a: a stored body is damaged"),
        "{chain}"
    );
}

/// An error and its sources, as `{:#}` prints them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain = format!("{chain}: {cause}");
        source = cause.source();
    }
    chain
}
