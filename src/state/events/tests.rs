use super::*;
use crate::state::deliveries::{AttemptRecord, LogFilter, Outcome, Queue, Status};

fn delivery(seq: i64, source: &str, order: &str) -> EventDelivery {
    EventDelivery {
        id: format!("evt_{seq:012x}_{source}"),
        source: source.into(),
        event_type: "license.updated".into(),
        event_key: format!("evt_{seq:012x}"),
        order_key: Some(order.into()),
        license_id: 1,
        activation_key: "K".into(),
        body: format!("{{\"seq\":{seq}}}").into_bytes(),
    }
}

fn batch(from: i64, taken: i64, deliveries: Vec<EventDelivery>) -> EventBatch {
    EventBatch {
        license_db: "/db/licenses.db".into(),
        from,
        taken,
        deliveries,
        expiries: Vec::new(),
    }
}

fn open() -> (tempfile::TempDir, StateDb) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(&dir.path().join("state.db")).unwrap();
    (dir, state)
}

fn claim_ids(state: &StateDb, source: &str) -> Vec<String> {
    let claimed = state
        .claim(Queue::DueForTask(source, 1000), "me", 1000, 64)
        .unwrap();
    claimed.into_iter().map(|c| c.id).collect()
}

fn settle(state: &StateDb, id: &str, status: Status, next: i64) {
    let (seq, attempts): (i64, i64) = state
        .conn
        .query_row(
            "SELECT seq, attempts FROM deliveries WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let attempt = AttemptRecord {
        at_ms: 1_000_000,
        status: Some(500),
        error: Some("boom".into()),
        duration_ms: 1,
        excerpt: String::new(),
    };
    state
        .record_attempts(&[Outcome {
            seq,
            n: attempts + 1,
            attempt,
            status,
            next_attempt_at: next,
        }])
        .unwrap();
}

#[test]
fn the_cursor_moves_with_its_deliveries_and_a_stale_pass_writes_nothing() {
    let (_dir, mut state) = open();
    assert_eq!(state.outbox_cursor("/db/licenses.db").unwrap(), 0);
    let first = batch(0, 2, vec![delivery(1, "hook", "LicenseKeys:1")]);
    assert_eq!(state.record_events(&first, 1000).unwrap(), Recorded::Done);
    assert_eq!(state.outbox_cursor("/db/licenses.db").unwrap(), 2);
    // A pass that read from 0 too (a second dispatcher) is refused, and adds nothing.
    let stale = batch(0, 3, vec![delivery(3, "hook", "LicenseKeys:1")]);
    assert_eq!(state.record_events(&stale, 1000).unwrap(), Recorded::Raced);
    assert_eq!(state.outbox_cursor("/db/licenses.db").unwrap(), 2);
    assert_eq!(state.log(&LogFilter::default()).unwrap().len(), 1);
    // Another license database has its own cursor.
    assert_eq!(state.outbox_cursor("/db/other.db").unwrap(), 0);
}

#[test]
fn a_later_event_of_one_entity_waits_for_the_earlier_until_it_is_delivered_or_dead() {
    let (_dir, mut state) = open();
    let deliveries = vec![
        delivery(1, "hook", "LicenseKeys:1"),
        delivery(2, "hook", "LicenseKeys:2"),
        delivery(3, "hook", "LicenseKeys:1"),
        delivery(4, "hook", "LicenseKeys:1"),
    ];
    state.record_events(&batch(0, 4, deliveries), 1000).unwrap();
    let [first, second, third, fourth] =
        ["1", "2", "3", "4"].map(|n| format!("evt_00000000000{n}_hook"));
    // Different licenses go together; the later events of license 1 wait.
    assert_eq!(claim_ids(&state, "hook"), [first.clone(), second.clone()]);
    // Still claimed (in flight): nothing more.
    assert!(claim_ids(&state, "hook").is_empty());
    // The first fails: the third still waits, and `log` says for what.
    settle(&state, &first, Status::Failed, 2000);
    settle(&state, &second, Status::Delivered, 0);
    assert!(claim_ids(&state, "hook").is_empty());
    let log = state.log(&LogFilter::default()).unwrap();
    let waiting = log.iter().find(|e| e.id == third).unwrap();
    assert_eq!(waiting.waiting_for.as_deref(), Some(first.as_str()));
    // Dead no longer blocks: the third goes, the fourth waits for it.
    settle(&state, &first, Status::Dead, 0);
    assert_eq!(claim_ids(&state, "hook"), std::slice::from_ref(&third));
    settle(&state, &third, Status::Delivered, 0);
    assert_eq!(claim_ids(&state, "hook"), [fourth]);
}

#[test]
fn the_order_check_reads_the_index_of_waiting_event_deliveries() {
    let (_dir, state) = open();
    let plan: Vec<String> = state
        .conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT 1 FROM deliveries AS e INDEXED BY deliveries_order
             WHERE e.task = 'a' AND e.order_key = 'b' AND e.seq < 5
               AND e.order_key IS NOT NULL AND e.status IN ('pending', 'failed')",
        )
        .unwrap()
        .query_map([], |row| row.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|line| line.contains("deliveries_order")),
        "{plan:?}"
    );
}

#[test]
fn expiries_are_remembered_per_license_and_value() {
    let (_dir, mut state) = open();
    let mut first = batch(0, 0, Vec::new());
    first.expiries = vec![(7, "2026-11-20T10:00:00".into())];
    state.record_events(&first, 1000).unwrap();
    assert!(
        state
            .expiry_seen("/db/licenses.db", 7, "2026-11-20T10:00:00")
            .unwrap()
    );
    assert!(
        !state
            .expiry_seen("/db/licenses.db", 7, "2027-11-20T10:00:00")
            .unwrap()
    );
}

#[test]
fn a_410_disables_a_webhook_source_until_it_is_enabled() {
    let (_dir, state) = open();
    assert_eq!(
        state.see_source("hook#2", "hook", "http://x", 10).unwrap(),
        None
    );
    state.set_webhook_gone("hook#2", Some(20)).unwrap();
    assert_eq!(
        state.see_source("hook#2", "hook", "http://x", 30).unwrap(),
        Some(20)
    );
    assert_eq!(state.enable_webhook("hook").unwrap(), 1);
    assert_eq!(
        state.see_source("hook#2", "hook", "http://x", 40).unwrap(),
        None
    );
}

#[test]
fn a_big_pass_keeps_event_order_bodies_and_one_run_per_source() {
    let (_dir, mut state) = open();
    // 75 deliveries (one statement of 64, one of 8, three of 1), two sources interleaved,
    // each event its own entity so that all of them wait to be sent at once.
    let deliveries: Vec<EventDelivery> = (1..=75)
        .map(|seq| {
            let source = if seq % 3 == 0 { "second" } else { "first" };
            delivery(seq, source, &format!("LicenseKeys:{seq}"))
        })
        .collect();
    let recorded = state.record_events(&batch(0, 75, deliveries.clone()), 1000);
    assert_eq!(recorded.unwrap(), Recorded::Done);
    for source in ["first", "second"] {
        let claimed = state
            .claim(Queue::DueForTask(source, 1000), "me", 1000, 100)
            .unwrap();
        let expected: Vec<&EventDelivery> =
            deliveries.iter().filter(|d| d.source == source).collect();
        assert_eq!(claimed.len(), expected.len(), "{source}");
        for (claimed, expected) in claimed.iter().zip(&expected) {
            assert_eq!(claimed.id, expected.id);
            assert_eq!(claimed.body, expected.body);
            assert_eq!(claimed.event_type.as_deref(), Some("license.updated"));
        }
        let (runs, matched): (i64, i64) = state
            .conn
            .query_row(
                "SELECT count(*), sum(matched) FROM runs WHERE task = ?1",
                [source],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((runs, matched), (1, expected.len() as i64), "{source}");
    }
    // Seqs follow event order, with nothing between them.
    let ids: Vec<String> = state
        .conn
        .prepare("SELECT id FROM deliveries ORDER BY seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, expected);
    let (low, high): (i64, i64) = state
        .conn
        .query_row("SELECT min(seq), max(seq) FROM deliveries", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(high - low + 1, 75);
}
