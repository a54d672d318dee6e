use super::*;
use crate::events::catalog::Catalog;
use crate::events::outbox;
use crate::licenses::schema;
use crate::state::StateDb;
use crate::state::deliveries::{LogFilter, Queue};

fn licenses(dir: &std::path::Path) -> Connection {
    let mut conn = Connection::open(dir.join("licenses.db")).unwrap();
    schema::create(&conn).unwrap();
    outbox::install(&mut conn, &Catalog::builtin()).unwrap();
    conn
}

fn route(source: &str, events: &[&str]) -> Route {
    Route {
        source: source.into(),
        webhook: source.split('#').next().unwrap().into(),
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

fn body(route: &Route, row: &OutboxRow, _: &Snapshot) -> Result<Vec<u8>, BodyError> {
    Ok(format!("{}:{}:{}", route.source, row.event_type, row.seq).into_bytes())
}

#[test]
fn each_event_goes_once_to_each_subscribed_source_under_a_stable_id() {
    let dir = tempfile::tempdir().unwrap();
    let writer = licenses(dir.path());
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    let routes = [
        route("all", &["license.created", "license.updated"]),
        route("all#2", &["license.created", "license.updated"]),
        route("created", &["license.created"]),
    ];
    let pass = Pass {
        license_db: "/x/licenses.db",
        routes: &routes,
        body: &body,
        batch: 2,
    };
    writer
        .execute_batch(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (1, 'K1');
             INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (2, 'K2');
             UPDATE LicenseKeys SET Email = 'a@b.c' WHERE ID = 1;",
        )
        .unwrap();
    let mut reader = Connection::open(dir.path().join("licenses.db")).unwrap();
    // A new outbox numbers its events from its install time (ms) times 100.
    let first: i64 = reader
        .query_row("SELECT min(seq) FROM keyhook_outbox", [], |row| row.get(0))
        .unwrap();
    assert!(first > 170_000_000_000_000 && first < 1 << 48, "{first}");
    let taken = take(&mut state, &mut reader, &pass, 100, &mut Vec::new()).unwrap();
    assert_eq!(
        taken,
        Taken {
            events: 3,
            deliveries: 8,
            behind: None,
        }
    );
    // Nothing new: nothing taken, and the cursor stayed with the deliveries.
    assert_eq!(
        take(&mut state, &mut reader, &pass, 100, &mut Vec::new()).unwrap(),
        Taken::default()
    );
    assert_eq!(state.outbox_cursor("/x/licenses.db").unwrap(), first + 2);
    let log = state.log(&LogFilter::default()).unwrap();
    let ids: BTreeSet<&str> = log.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 8, "unique per (event, source)");
    assert!(ids.contains(delivery_id(first, "all#2").as_str()));
    assert_eq!(delivery_id(1, "all#2"), delivery_id(1, "all#2"));
    assert_ne!(delivery_id(1, "all#2"), delivery_id(1, "all"));
    let claimed = state
        .claim(Queue::DueForTask("all", 100), "me", 100, 10)
        .unwrap();
    let got: Vec<(&str, Option<&str>, i64)> = claimed
        .iter()
        .map(|c| {
            (
                std::str::from_utf8(&c.body).unwrap(),
                c.event_type.as_deref(),
                c.license_id,
            )
        })
        .collect();
    // The update of license 1 waits for its creation; license 2 goes alongside.
    assert_eq!(
        got,
        [
            (
                format!("all:license.created:{first}").as_str(),
                Some("license.created"),
                1
            ),
            (
                format!("all:license.created:{}", first + 1).as_str(),
                Some("license.created"),
                2
            )
        ]
    );
}

#[test]
fn a_rolled_back_change_is_no_event_and_a_killed_pass_is_taken_again_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = licenses(dir.path());
    let transaction = writer.transaction().unwrap();
    transaction
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (9, 'K9')",
            [],
        )
        .unwrap();
    transaction.rollback().unwrap();
    writer
        .execute(
            "INSERT INTO LicenseKeys (ID, ActivationKey) VALUES (3, 'K3')",
            [],
        )
        .unwrap();
    let routes = [route("hook", &["license.created"])];
    let pass = Pass {
        license_db: "/x/licenses.db",
        routes: &routes,
        body: &body,
        batch: 100,
    };
    let mut reader = Connection::open(dir.path().join("licenses.db")).unwrap();
    // A pass killed before its commit left nothing: the same ids come out next time.
    let rows = read_after(&reader, 0, 100).unwrap();
    let planned: Vec<String> = deliveries(&pass, &rows, &mut Vec::new())
        .into_iter()
        .map(|d| d.id)
        .collect();
    let mut state = StateDb::open(&dir.path().join("state.db")).unwrap();
    take(&mut state, &mut reader, &pass, 100, &mut Vec::new()).unwrap();
    let log = state.log(&LogFilter::default()).unwrap();
    let recorded: Vec<String> = log.into_iter().map(|e| e.id).collect();
    assert_eq!(recorded, planned);
    assert_eq!(recorded.len(), 1, "the rolled back insert made no event");
}

#[test]
fn delivery_ids_keep_their_form() {
    // `evt_<seq, 12 hex>_<8 hex of the source's SHA-256>`, as every earlier pass made them.
    assert_eq!(delivery_id(1, "hook"), "evt_000000000001_0648298b");
    assert_eq!(
        delivery_id_of("evt_exp_2a_00000000", "hook"),
        "evt_exp_2a_00000000_0648298b"
    );
}
