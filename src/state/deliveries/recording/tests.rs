use crate::state::StateDb;

#[test]
fn a_big_run_commits_whole_and_leaves_the_automatic_checkpoint_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut state = StateDb::open(&path).unwrap();
    let autocheckpoint = |state: &StateDb| -> i64 {
        state
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap()
    };
    let before = autocheckpoint(&state);
    assert_eq!(before, 32 * 1024 * 1024 / crate::state::PAGE_SIZE);
    let count = super::CHECKPOINT_BEHIND_FROM + 10;
    let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
    for n in 0..count {
        let id = format!("msg_{n:028}");
        run.add(&id, n as i64, "K", &[&[b'x'; 1200]]).unwrap();
    }
    run.commit(count).unwrap();
    assert_eq!(autocheckpoint(&state), before);
    // Another connection sees the whole run, bodies included, checkpointed or not.
    let other = rusqlite::Connection::open(&path).unwrap();
    let stored: (i64, i64) = other
        .query_row(
            "SELECT count(*), sum(length(body)) FROM delivery_bodies",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(stored, (count as i64, count as i64 * 1200));
}

#[test]
fn batched_deliveries_keep_their_own_bodies_and_seq_follows_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    let count = super::ROWS_PER_INSERT as i64 + 7;
    for run in 0..2 {
        let mut recorder = state.begin_run("t", "T", None, 1000, true).unwrap();
        for n in 0..count {
            let id = format!("msg_{run}_{n:026}");
            recorder
                .add(&id, n, &format!("K{n}"), &[id.as_bytes()])
                .unwrap();
        }
        recorder.commit(count as u64).unwrap();
    }
    let rows: Vec<(i64, String, String, i64, Vec<u8>)> = state
        .conn
        .prepare(
            "SELECT d.seq, d.id, d.activation_key, d.license_id, b.body
             FROM deliveries d JOIN delivery_bodies b USING (seq) ORDER BY d.seq",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len() as i64, 2 * count);
    for (index, (seq, id, key, license_id, body)) in rows.into_iter().enumerate() {
        assert_eq!(seq, index as i64 + 1);
        assert_eq!(id.as_bytes(), body.as_slice());
        assert_eq!(key, format!("K{license_id}"));
        assert_eq!(id, format!("msg_{}_{license_id:026}", index as i64 / count));
    }
}

fn foreign_keys(state: &StateDb) -> i64 {
    state
        .conn
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn foreign_keys_are_checked_again_once_a_run_or_a_group_of_outcomes_ends() {
    use crate::state::deliveries::{AttemptRecord, Outcome, Queue, Status};
    let dir = tempfile::tempdir().unwrap();
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    // A run given up (dropped without its commit): rolled back, checks on.
    let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
    run.add("msg_dropped", 1, "K", &[b"{}"]).unwrap();
    drop(run);
    assert_eq!(foreign_keys(&state), 1);
    // A committed run: checks on.
    let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
    run.add("msg_kept", 2, "K", &[b"{", b"}"]).unwrap();
    let run_id = run.commit(1).unwrap();
    assert_eq!(foreign_keys(&state), 1);
    let claimed = state
        .claim(Queue::Run("t", run_id), "me", 2000, 10)
        .unwrap();
    assert_eq!(claimed.len(), 1, "only the committed run's delivery");
    assert_eq!(
        claimed[0].body, b"{}",
        "a body given in pieces is stored end to end"
    );
    let outcome = Outcome {
        seq: claimed[0].seq,
        n: 1,
        attempt: AttemptRecord {
            at_ms: 2_000_000,
            status: Some(200),
            error: None,
            duration_ms: 1,
            excerpt: "ok".into(),
        },
        status: Status::Delivered,
        next_attempt_at: 2000,
    };
    state.record_attempts(&[outcome]).unwrap();
    assert_eq!(foreign_keys(&state), 1);
    // With the checks on, an attempt of no delivery is refused, and nothing is left orphaned.
    let orphan = state.conn.execute(
        "INSERT INTO attempts (delivery_seq, n, at, duration_ms) VALUES (999, 1, 0, 0)",
        [],
    );
    assert!(orphan.is_err());
    let orphans: i64 = state
        .conn
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(orphans, 0);
}
