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

/// Rows of each table of a run's: runs, deliveries, bodies, bad rows (from another connection).
fn counts(path: &std::path::Path) -> [i64; 4] {
    let other = rusqlite::Connection::open(path).unwrap();
    ["runs", "deliveries", "delivery_bodies", "bad_rows"].map(|table| {
        other
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .unwrap()
    })
}

/// Bodies this big make a piece of [`super::PIECE_BYTES`] hold about 250 deliveries.
const BODY: [u8; 4000] = [b'x'; 4000];

#[test]
fn a_big_run_is_committed_in_pieces_that_are_no_run_until_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut state = StateDb::open(&path).unwrap();
    let per_piece = super::PIECE_BYTES / (BODY.len() + super::ROW_BYTES);
    let count = 4 * per_piece + 10;
    let mut run = state.begin_run("t", "T", Some(3600), 1000, true).unwrap();
    run.add_bad(7, "BAD", "a blob in Email").unwrap();
    for n in 0..2 * per_piece + 70 {
        run.add(&format!("msg_{n:028}"), n as i64, "K", &[&BODY])
            .unwrap();
    }
    // Two pieces are in the file, the run marked: not a run to anyone yet.
    let [runs, deliveries, bodies, bad] = counts(&path);
    assert_eq!((runs, bad), (1, 1));
    assert!(deliveries >= 2 * per_piece as i64 - 64 && deliveries == bodies);
    let other = StateDb::open(&path).unwrap();
    assert!(!other.slot_ran("t", 3600).unwrap());
    assert_eq!(other.unfinished_run("t", 3600).unwrap(), None);
    assert!(
        other.latest_runs().unwrap().is_empty(),
        "`status` shows no run"
    );
    drop(other);
    for n in 2 * per_piece + 70..count {
        run.add(&format!("msg_{n:028}"), n as i64, "K", &[&BODY])
            .unwrap();
    }
    let run_id = run.commit(count as u64 + 1).unwrap();
    assert_eq!(counts(&path), [1, count as i64, count as i64, 1]);
    assert!(state.slot_ran("t", 3600).unwrap());
    assert_eq!(state.latest_runs().unwrap().len(), 1);
    let (matched, marked): (i64, Option<i64>) = state
        .conn
        .query_row(
            "SELECT matched, recording FROM runs WHERE id = ?1",
            [run_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((matched, marked), (count as i64 + 1, None));
    // Nothing a later run of the task's lock holder would take for a killed recording.
    assert_eq!(state.clear_killed_recordings("t").unwrap(), 0);
    assert_eq!(foreign_keys(&state), 1);
}

#[test]
fn a_piece_goes_on_above_what_another_process_added_between_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut state = StateDb::open(&path).unwrap();
    let mut run = state.begin_run("t", "T", None, 1000, true).unwrap();
    for n in 0..100 {
        run.add(&format!("msg_a{n:027}"), n, "K", &[b"a"]).unwrap();
    }
    run.flush().unwrap();
    // Between two pieces, another process's run takes the next seqs.
    run.conn.execute_batch("COMMIT").unwrap();
    run.open = false;
    run.pieces = true;
    let mut other = StateDb::open(&path).unwrap();
    let mut theirs = other.begin_run("u", "U", None, 1000, true).unwrap();
    for n in 0..5 {
        theirs
            .add(&format!("msg_b{n:027}"), n, "K", &[b"b"])
            .unwrap();
    }
    theirs.commit(5).unwrap();
    run.begin_piece().unwrap();
    for n in 100..200 {
        run.add(&format!("msg_a{n:027}"), n, "K", &[b"a"]).unwrap();
    }
    run.commit(200).unwrap();
    let seqs: Vec<(i64, String)> = state
        .conn
        .prepare("SELECT seq, task FROM deliveries ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let tasks: String = seqs.iter().map(|(_, task)| task.as_str()).collect();
    assert_eq!(
        tasks,
        format!("{}{}{}", "t".repeat(100), "u".repeat(5), "t".repeat(100))
    );
    assert!(seqs.iter().zip(1..).all(|((seq, _), n)| *seq == n));
}

#[test]
fn a_run_given_up_after_some_pieces_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut state = StateDb::open(&path).unwrap();
    let before: i64 = state
        .conn
        .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
        .unwrap();
    let mut run = state.begin_run("t", "T", Some(60), 1000, true).unwrap();
    run.add_bad(1, "BAD", "text in LicenseID").unwrap();
    for n in 0..700 {
        run.add(&format!("msg_{n:028}"), n, "K", &[&BODY]).unwrap();
    }
    assert!(counts(&path)[1] > 0, "pieces were committed");
    drop(run);
    assert_eq!(counts(&path), [0; 4]);
    assert_eq!(foreign_keys(&state), 1);
    let after: i64 = state
        .conn
        .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
        .unwrap();
    assert_eq!(after, before);
}

#[test]
fn a_recording_killed_after_some_pieces_is_removed_by_the_next_lock_holder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    // Another task's run, complete, stays whatever happens to this one.
    let mut state = StateDb::open(&path).unwrap();
    let mut kept = state.begin_run("u", "U", Some(60), 900, true).unwrap();
    kept.add("msg_kept", 1, "K", &[b"{}"]).unwrap();
    kept.commit(1).unwrap();
    for clear in ["begin_run", "release_claims"] {
        let mut killed = StateDb::open(&path).unwrap();
        let mut run = killed.begin_run("t", "T", Some(60), 1000, true).unwrap();
        run.add_bad(1, "BAD", "text in LicenseID").unwrap();
        for n in 0..700 {
            run.add(&format!("msg_{n:028}"), n, "K", &[&BODY]).unwrap();
        }
        // As a SIGKILL would: no drop, no rollback but the connection's own at its close.
        std::mem::forget(run);
        drop(killed);
        let [runs, deliveries, _, bad] = counts(&path);
        assert!(runs == 2 && deliveries > 1 && bad == 1, "{clear}");
        assert!(!state.slot_ran("t", 60).unwrap());
        assert_eq!(state.unfinished_run("t", 60).unwrap(), None);
        // No one else sees it: not waiting, not due, not in the log, not found by its id.
        let all = crate::state::deliveries::LogFilter::default();
        assert_eq!(state.waiting_by_task().unwrap(), [("u".to_string(), 1)]);
        assert_eq!(state.tasks_with_due(i64::MAX).unwrap(), ["u"]);
        let logged: Vec<String> = state.log(&all).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(logged, ["msg_kept"]);
        assert!(state.bad_rows(&all).unwrap().is_empty());
        assert!(
            state
                .find_deliveries(&format!("msg_{:028}", 5), 2)
                .unwrap()
                .is_empty()
        );
        assert_eq!(state.tasks_recording().unwrap(), ["t"]);
        // Another task's lock holder leaves it.
        assert_eq!(state.clear_killed_recordings("u").unwrap(), 0);
        match clear {
            "begin_run" => {
                let mut run = state.begin_run("t", "T", Some(60), 2000, true).unwrap();
                run.add("msg_again", 5, "K", &[b"{}"]).unwrap();
                run.commit(1).unwrap();
                assert_eq!(counts(&path), [2, 2, 2, 0], "{clear}");
                state
                    .conn
                    .execute("DELETE FROM deliveries WHERE id = 'msg_again'", [])
                    .unwrap();
                state
                    .conn
                    .execute("DELETE FROM runs WHERE task = 't'", [])
                    .unwrap();
            }
            _ => {
                state.release_claims("t", None).unwrap();
                assert_eq!(counts(&path), [1, 1, 1, 0], "{clear}");
            }
        }
        assert!(state.tasks_recording().unwrap().is_empty());
    }
}
