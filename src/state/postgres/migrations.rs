//! The server state's schema, versioned in `schema_version` and migrated on open, with an
//! advisory transaction lock so hosts that start together migrate one at a time.

use postgres::Client;

/// Taken by every migrating host for the length of its migration transaction.
const MIGRATION_LOCK: i64 = 0x6b65_7968_6f6f_6b01;

/// Each entry moves the schema from version `index` to `index + 1`. Times are Unix seconds as
/// in the SQLite state, except the leases, which are the server's own `timestamptz`.
const MIGRATIONS: [&str; 3] = [
    r#"
CREATE TABLE tasks (
    task          text PRIMARY KEY,
    first_seen    bigint NOT NULL,
    last_run      bigint,
    last_slot     bigint,
    webhook_gone  bigint
);
CREATE TABLE runs (
    id           bigserial PRIMARY KEY,
    task         text NOT NULL,
    name         text NOT NULL,
    slot         bigint,                 -- NULL for a forced run
    started_at   bigint NOT NULL,
    finished_at  bigint,
    matched      bigint NOT NULL DEFAULT 0,
    sent         boolean NOT NULL DEFAULT true,
    skipped      text,
    host         text,                   -- the host that ran it
    UNIQUE (task, slot)                  -- each slot once, whichever host gets there first
);
-- Taken before a slot's run is recorded: the loser of the insert says so and exits 0. A
-- claim whose run never got recorded (its host died) can be taken over once it expires.
CREATE TABLE slot_claims (
    task           text NOT NULL,
    slot           bigint NOT NULL,
    host           text NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    claimed_until  timestamptz NOT NULL,
    PRIMARY KEY (task, slot)
);
CREATE TABLE deliveries (
    seq              bigserial PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    run_id           bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task             text NOT NULL,
    license_id       bigint NOT NULL,
    activation_key   text NOT NULL,
    body             bytea NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'failed', 'delivered', 'dead')),
    attempts         bigint NOT NULL DEFAULT 0,
    created_at       bigint NOT NULL,
    next_attempt_at  bigint NOT NULL,
    updated_at       bigint NOT NULL,
    last_status      bigint,
    last_error       text,
    claimed_by       text,               -- host:pid sending it right now
    claimed_until    timestamptz,        -- the lease, by the server's clock
    event_type       text,
    event_key        text,
    order_key        text
);
CREATE INDEX deliveries_task_queue ON deliveries (task, seq)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_run ON deliveries (run_id);
CREATE TABLE attempts (
    delivery_seq  bigint NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    n             bigint NOT NULL,
    at            bigint NOT NULL,       -- unix milliseconds
    status        bigint,
    error         text,
    duration_ms   bigint NOT NULL,
    excerpt       text,
    host          text,                  -- the host that sent it
    PRIMARY KEY (delivery_seq, n)
);
CREATE TABLE bad_rows (
    id              bigserial PRIMARY KEY,
    run_id          bigint NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task            text NOT NULL,
    license_id      bigint NOT NULL,
    activation_key  text NOT NULL,
    reason          text NOT NULL,
    created_at      bigint NOT NULL
);
CREATE INDEX bad_rows_run ON bad_rows (run_id);
"#,
    // v2: event deliveries, as in the SQLite state's v7 and v8: the order index holds only
    // waiting event deliveries; the outbox cursor per license database moves in the same
    // transaction as the deliveries it produced; `expiries_seen` and `expiry_scans` are
    // `license.expired`'s; `webhook_sources` is what a 410 disables for a webhook URL.
    r#"
CREATE INDEX deliveries_order ON deliveries (task, order_key, seq)
    WHERE order_key IS NOT NULL AND status IN ('pending', 'failed');
CREATE TABLE outbox_cursors (
    license_db  text PRIMARY KEY,     -- the license database's canonical path
    taken       bigint NOT NULL,      -- the last outbox seq turned into deliveries
    updated_at  bigint NOT NULL
);
CREATE TABLE expiries_seen (
    license_db  text NOT NULL,
    license_id  bigint NOT NULL,
    expiry      text NOT NULL,        -- the expiry value: a renewal that moves it re-arms it
    seen_at     bigint NOT NULL,
    PRIMARY KEY (license_db, license_id, expiry)
);
CREATE TABLE expiry_scans (
    license_db  text PRIMARY KEY,
    scanned_to  text NOT NULL,        -- the window's end, as the database writes dates
    updated_at  bigint NOT NULL
);
CREATE TABLE webhook_sources (
    source        text PRIMARY KEY,   -- the webhook's name, `#2`... for further URLs
    webhook       text NOT NULL,
    url           text NOT NULL,
    first_seen    bigint NOT NULL,
    webhook_gone  bigint              -- set when the receiver answered 410 Gone
);
"#,
    // v3: as the SQLite state's v13: when a delivery last reached a webhook URL, kept by
    // `prune` as it deletes the deliveries that said so.
    r#"
ALTER TABLE webhook_sources ADD COLUMN last_delivered bigint;
"#,
];

/// The schema version this keyhook knows.
pub const KNOWN: i64 = MIGRATIONS.len() as i64;

/// Creates `schema` if needed and brings it up to date, in one transaction; returns the
/// version found, which is left alone when it is newer than [`KNOWN`].
pub fn migrate(client: &mut Client, schema: &str) -> Result<i64, postgres::Error> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    transaction.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path = \"{schema}\";
         CREATE TABLE IF NOT EXISTS schema_version (version bigint NOT NULL);"
    ))?;
    let version: Option<i64> = transaction
        .query_one("SELECT max(version) FROM schema_version", &[])?
        .get(0);
    let version = version.unwrap_or(0);
    if version > KNOWN {
        // Reported by the caller as too new; nothing is changed.
        transaction.rollback()?;
        return Ok(version);
    }
    for (index, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        transaction.batch_execute(step)?;
        transaction.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(index as i64 + 1)],
        )?;
    }
    transaction.commit()?;
    Ok(version)
}
