//! The randomized chaos test of event webhooks: a writer makes about 2,000 random changes to the
//! license database in many transactions (some rolled back) while `keyhook watch` runs and is
//! killed with SIGKILL at random moments and restarted. The writer keeps its own log of what it
//! committed and computes the events it expects from the built-in catalog's rules
//! (`src/events/builtin.toml`), never from keyhook's tables. Afterwards every committed change
//! produced exactly its events, in commit order per row; a rolled-back change none; and every
//! delivery arrived, duplicates only as byte-identical re-sends under the same id.
//!
//! The seed is printed; `KEYHOOK_CHAOS_SEED=<n> cargo test events_chaos -- --nocapture`
//! replays the writer's changes (the kill moments depend on timing too).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::Test;
use keyhook::receiver::{Reply, Server};

/// SplitMix64: a small seeded generator, so a failure's writer can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len() as u64) as usize])
        }
    }
}

/// The columns of a license the catalog's conditions read.
#[derive(Clone, Default, Debug)]
struct License {
    computer_id: Option<String>,
    activation_count: i64,
    disabled: i64,
    customer_id: Option<i64>,
}

/// The writer's model of the database: what it believes is committed.
#[derive(Clone, Default)]
struct Model {
    licenses: BTreeMap<i64, License>,
    customers: BTreeSet<i64>,
}

/// An entity, as the receiver sees it: (table, row key).
type Entity = (&'static str, i64);

/// The license events an update fires, in the catalog's order: `license.activated`,
/// `.deactivated`, `.suspended`, `.assigned`, then `.updated` (always).
fn update_events(old: &License, new: &License) -> Vec<&'static str> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut events = Vec::new();
    let (old_pc, new_pc) = (text(&old.computer_id), text(&new.computer_id));
    if (!new_pc.is_empty() && old_pc != new_pc) || new.activation_count > old.activation_count {
        events.push("license.activated");
    }
    if (!old_pc.is_empty() && new_pc.is_empty()) || new.activation_count < old.activation_count {
        events.push("license.deactivated");
    }
    if old.disabled == 0 && new.disabled != 0 {
        events.push("license.suspended");
    }
    if new.customer_id.is_some() && new.customer_id != old.customer_id {
        events.push("license.assigned");
    }
    events.push("license.updated");
    events
}

/// Every event type a webhook can subscribe to that a trigger makes (no `license.expired`, which
/// is time-based: the writer's licenses have no expiry).
const SUBSCRIBED: &str = r#"["license.created", "license.activated", "license.deactivated",
  "license.suspended", "license.assigned", "license.updated", "license.deleted",
  "customer.created", "customer.updated", "customer.deleted"]"#;

/// The marker a rolled-back transaction writes: no payload may ever carry it.
const ROLLED_BACK: &str = "ROLLED-BACK";

struct Writer {
    rng: Rng,
    next_license: i64,
    next_customer: i64,
    /// Changes made (statements executed), committed or not.
    changes: usize,
    committed_changes: usize,
}

impl Writer {
    /// One random change inside `tx`, applied to `model`; the events it fires, per entity.
    fn change(
        &mut self,
        tx: &rusqlite::Transaction,
        model: &mut Model,
        events: &mut Vec<(Entity, &'static str)>,
        rolled_back: bool,
    ) {
        self.changes += 1;
        let ids: Vec<i64> = model.licenses.keys().copied().collect();
        let customers: Vec<i64> = model.customers.iter().copied().collect();
        let mark = |value: String| {
            if rolled_back {
                format!("{ROLLED_BACK} {value}")
            } else {
                value
            }
        };
        let roll = self.rng.below(100);
        match (roll, self.rng.pick(&ids)) {
            (0..=14, _) | (_, None) => {
                let id = self.next_license;
                self.next_license += 1;
                let customer = if self.rng.chance(50) {
                    self.rng.pick(&customers)
                } else {
                    None
                };
                tx.execute(
                    "INSERT INTO LicenseKeys (ID, ActivationKey, Email, Comment, CustomerID) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        id,
                        format!("K{id}"),
                        format!("u{id}@example.com"),
                        mark(format!("created {id}")),
                        customer
                    ],
                )
                .unwrap();
                model.licenses.insert(
                    id,
                    License {
                        customer_id: customer,
                        ..License::default()
                    },
                );
                events.push((("LicenseKeys", id), "license.created"));
            }
            (15..=29, Some(id)) => {
                // An activation: ComputerID set (or changed) and/or ActivationCount up.
                let old = model.licenses[&id].clone();
                let mut new = old.clone();
                match self.rng.below(3) {
                    0 => new.computer_id = Some(format!("PC-{}", self.rng.below(1000))),
                    1 => new.activation_count += 1,
                    _ => {
                        new.computer_id = Some(format!("PC-{}", self.rng.below(1000)));
                        new.activation_count += 1;
                    }
                }
                tx.execute(
                    "UPDATE LicenseKeys SET ComputerID = ?2, ActivationCount = ?3, \
                     ActivationDate = '2026-11-23T10:00:00', Comment = ?4 WHERE ID = ?1",
                    rusqlite::params![
                        id,
                        new.computer_id,
                        new.activation_count,
                        mark("activated".into())
                    ],
                )
                .unwrap();
                self.updated(model, events, id, new);
            }
            (30..=41, Some(id)) => {
                // A release: ComputerID cleared and/or ActivationCount down (maybe to NULL).
                let old = model.licenses[&id].clone();
                let mut new = old.clone();
                if self.rng.chance(60) {
                    new.computer_id = if self.rng.chance(50) {
                        None
                    } else {
                        Some(String::new())
                    };
                }
                if self.rng.chance(60) {
                    new.activation_count -= 1;
                }
                let count: Option<i64> = if new.activation_count == 0 && self.rng.chance(30) {
                    None // NULL reads as 0 in the conditions
                } else {
                    Some(new.activation_count)
                };
                tx.execute(
                    "UPDATE LicenseKeys SET ComputerID = ?2, ActivationCount = ?3, \
                     ReleaseDate = '2026-11-23T10:00:00', Comment = ?4 WHERE ID = ?1",
                    rusqlite::params![id, new.computer_id, count, mark("released".into())],
                )
                .unwrap();
                self.updated(model, events, id, new);
            }
            (42..=49, Some(id)) => {
                // Disabled on or off.
                let mut new = model.licenses[&id].clone();
                new.disabled = i64::from(self.rng.chance(50));
                tx.execute(
                    "UPDATE LicenseKeys SET Disabled = ?2, Comment = ?3 WHERE ID = ?1",
                    rusqlite::params![id, new.disabled, mark("disabled".into())],
                )
                .unwrap();
                self.updated(model, events, id, new);
            }
            (50..=56, Some(id)) => {
                // Assigned to a customer (maybe the same one again), or unassigned.
                let mut new = model.licenses[&id].clone();
                new.customer_id = if self.rng.chance(80) {
                    self.rng.pick(&customers).or(new.customer_id)
                } else {
                    None
                };
                tx.execute(
                    "UPDATE LicenseKeys SET CustomerID = ?2, Comment = ?3 WHERE ID = ?1",
                    rusqlite::params![id, new.customer_id, mark("assigned".into())],
                )
                .unwrap();
                self.updated(model, events, id, new);
            }
            (57..=66, Some(id)) => {
                // A plain update, sometimes one that changes nothing (it still fires).
                let email = if self.rng.chance(20) {
                    format!("u{id}@example.com")
                } else {
                    format!("u{id}.{}@example.com", self.rng.below(1000))
                };
                tx.execute(
                    "UPDATE LicenseKeys SET Email = ?2, UserData = ?3 WHERE ID = ?1",
                    rusqlite::params![id, email, mark("updated".into())],
                )
                .unwrap();
                let same = model.licenses[&id].clone();
                self.updated(model, events, id, same);
            }
            (67..=70, Some(id)) => {
                // A bulk update of a range of rows: one statement, several rows, each one event.
                let to = id + 1 + self.rng.below(8) as i64;
                let n = tx
                    .execute(
                        "UPDATE LicenseKeys SET Features = ?3 WHERE ID BETWEEN ?1 AND ?2",
                        rusqlite::params![id, to, mark(format!("bulk {}", self.rng.below(99)))],
                    )
                    .unwrap();
                let hit: Vec<i64> = model.licenses.range(id..=to).map(|(k, _)| *k).collect();
                assert_eq!(n, hit.len(), "the writer's model matches its database");
                for each in hit {
                    let same = model.licenses[&each].clone();
                    self.updated(model, events, each, same);
                }
            }
            (71..=77, Some(id)) => {
                tx.execute("DELETE FROM LicenseKeys WHERE ID = ?1", [id])
                    .unwrap();
                model.licenses.remove(&id);
                events.push((("LicenseKeys", id), "license.deleted"));
            }
            (78..=86, _) => {
                let id = self.next_customer;
                self.next_customer += 1;
                tx.execute(
                    "INSERT INTO Customers (CustomerID, FullName, Email) VALUES (?1, ?2, ?3)",
                    rusqlite::params![id, mark(format!("Customer {id}")), format!("c{id}@x.y")],
                )
                .unwrap();
                model.customers.insert(id);
                events.push((("Customers", id), "customer.created"));
            }
            (87..=95, _) => match self.rng.pick(&customers) {
                Some(customer) => {
                    tx.execute(
                        "UPDATE Customers SET Company = ?2 WHERE CustomerID = ?1",
                        rusqlite::params![customer, mark(format!("Co {}", self.rng.below(50)))],
                    )
                    .unwrap();
                    events.push((("Customers", customer), "customer.updated"));
                }
                None => self.changes -= 1,
            },
            _ => match self.rng.pick(&customers) {
                Some(customer) => {
                    tx.execute("DELETE FROM Customers WHERE CustomerID = ?1", [customer])
                        .unwrap();
                    model.customers.remove(&customer);
                    events.push((("Customers", customer), "customer.deleted"));
                }
                None => self.changes -= 1,
            },
        }
    }

    fn updated(
        &self,
        model: &mut Model,
        events: &mut Vec<(Entity, &'static str)>,
        id: i64,
        new: License,
    ) {
        let old = model
            .licenses
            .insert(id, new.clone())
            .expect("a live license");
        for event in update_events(&old, &new) {
            events.push((("LicenseKeys", id), event));
        }
    }
}

fn start_watch(test: &Test) -> Child {
    test.process(["watch", "--poll", "10ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start watch")
}

/// The entity a delivery is about, from its standard payload.
fn entity_of(event: &str, body: &[u8]) -> Entity {
    let json: serde_json::Value = serde_json::from_slice(body).expect("JSON body");
    let data = &json["data"];
    if event.starts_with("customer.") {
        (
            "Customers",
            data["CustomerID"].as_i64().expect("CustomerID"),
        )
    } else {
        let key = data["ActivationKey"].as_str().expect("ActivationKey");
        ("LicenseKeys", key[1..].parse().expect("K<ID>"))
    }
}

#[test]
fn random_changes_under_sigkilled_watch_arrive_exactly_as_committed() {
    let seed: u64 = std::env::var("KEYHOOK_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("events_chaos seed: {seed} (replay with KEYHOOK_CHAOS_SEED={seed})");
    // Each answer takes a little while, so a kill often lands with requests in flight (their
    // outcomes not yet recorded): those are re-sent under the same id.
    let server = Server::start("127.0.0.1:0", |_| {
        Reply::ok().with_delay(Duration::from_millis(2))
    })
    .unwrap();
    let test = Test::new().write(
        "webhooks/chaos.toml",
        &format!(
            "name = \"chaos\"\nurl = \"{}\"\nevents = {SUBSCRIBED}\nsecret = \"s3cret\"\n\
             format = \"standard\"\nconcurrency = 4\n",
            server.url("/")
        ),
    );
    test.keyhook(["events", "install"]).assert().success();

    let mut conn = rusqlite::Connection::open(test.path("licenses.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut writer = Writer {
        rng: Rng(seed),
        next_license: 1,
        next_customer: 1,
        changes: 0,
        committed_changes: 0,
    };
    let mut model = Model::default();
    // Per entity, the events expected, in commit order.
    let mut expected: BTreeMap<Entity, Vec<&'static str>> = BTreeMap::new();
    let mut expected_total = 0;
    let (mut transactions, mut rolled_back_transactions) = (0, 0);

    const CHANGES: usize = 2_000;
    let mut kills_at: Vec<usize> = (0..3 + writer.rng.below(3))
        .map(|_| 100 + writer.rng.below(CHANGES as u64 - 200) as usize)
        .collect();
    kills_at.sort_unstable();
    let mut kills = 0;
    let mut watch = start_watch(&test);
    let started = Instant::now();
    while writer.changes < CHANGES {
        let rollback = writer.rng.chance(15);
        let size = 1 + writer.rng.below(8);
        let mut draft = model.clone();
        let mut events = Vec::new();
        {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            let before = writer.changes;
            for _ in 0..size {
                writer.change(&tx, &mut draft, &mut events, rollback);
            }
            transactions += 1;
            if rollback {
                rolled_back_transactions += 1;
                tx.rollback().unwrap();
            } else {
                tx.commit().unwrap();
                writer.committed_changes += writer.changes - before;
                model = draft;
                expected_total += events.len();
                for (entity, event) in events {
                    expected.entry(entity).or_default().push(event);
                }
            }
        }
        if kills_at.first().is_some_and(|&at| writer.changes >= at) {
            kills_at.remove(0);
            if writer.rng.chance(60) {
                // Mid-send: once watch is posting this batch, with answers in flight.
                let sent = server.request_count();
                let until = Instant::now() + Duration::from_secs(2);
                while server.request_count() == sent && Instant::now() < until {
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::thread::sleep(Duration::from_micros(writer.rng.below(3_000)));
            } else {
                // Any moment: a pass under way, about to start, or none.
                std::thread::sleep(Duration::from_micros(writer.rng.below(30_000)));
            }
            watch.kill().unwrap();
            watch.wait().unwrap();
            kills += 1;
            watch = start_watch(&test);
        } else if writer.rng.chance(30) {
            std::thread::sleep(Duration::from_millis(writer.rng.below(8)));
        }
    }
    let writing = started.elapsed();
    // Let the last watch deliver for a moment, then kill it once more, and drain.
    std::thread::sleep(Duration::from_millis(200));
    watch.kill().unwrap();
    watch.wait().unwrap();
    let drain = test.keyhook(["dispatch"]).output().unwrap();
    assert_eq!(
        drain.status.code(),
        Some(0),
        "the final dispatch drains: {}",
        String::from_utf8_lossy(&drain.stderr)
    );
    println!(
        "events_chaos: {} changes ({} committed) in {transactions} transactions \
         ({rolled_back_transactions} rolled back), {kills} SIGKILLs of watch, \
         {expected_total} events expected; writing took {writing:?}",
        writer.changes, writer.committed_changes
    );
    assert!(
        kills >= 3,
        "watch was killed {kills} times (wanted at least 3)"
    );

    // Bounded wait until the receiver has at least one of every expected delivery.
    let deadline = Instant::now() + Duration::from_secs(20);
    let requests = loop {
        let requests = server.requests();
        let ids: BTreeSet<String> = requests
            .iter()
            .filter_map(|r| r.header("X-Keyhook-Delivery").map(str::to_string))
            .collect();
        if ids.len() >= expected_total || Instant::now() > deadline {
            break requests;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    // Each delivery id: one event, one entity, one body; duplicates are byte-identical re-sends.
    let mut by_id: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
    let mut arrived: BTreeMap<Entity, Vec<(String, String)>> = BTreeMap::new();
    let mut duplicates = 0;
    for request in &requests {
        let id = request
            .header("X-Keyhook-Delivery")
            .expect("a delivery id")
            .to_string();
        let event = request.header("X-Keyhook-Event").expect("an event type");
        assert!(
            !request.body_text().contains(ROLLED_BACK),
            "a rolled-back change was delivered: {id} {}",
            request.body_text()
        );
        match by_id.get(&id) {
            Some((first_event, first_body)) => {
                duplicates += 1;
                assert_eq!(first_event, event, "{id}: a re-send keeps the event");
                assert!(
                    first_body == &request.body,
                    "{id}: a re-send is byte-identical"
                );
            }
            None => {
                by_id.insert(id.clone(), (event.to_string(), request.body.clone()));
                arrived
                    .entry(entity_of(event, &request.body))
                    .or_default()
                    .push((event.to_string(), id));
            }
        }
    }
    println!(
        "events_chaos: {} requests, {} delivery ids, {duplicates} duplicates (re-sends)",
        requests.len(),
        by_id.len()
    );

    // Per entity: exactly the expected events, first arrivals in commit order.
    let mut wrong = Vec::new();
    for entity in expected
        .keys()
        .chain(arrived.keys())
        .collect::<BTreeSet<_>>()
    {
        let want = expected.get(entity).cloned().unwrap_or_default();
        let got: Vec<&str> = arrived
            .get(entity)
            .map(|list| list.iter().map(|(event, _)| event.as_str()).collect())
            .unwrap_or_default();
        if want != got {
            wrong.push(format!("{entity:?}: expected {want:?}, arrived {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "seed {seed}: {} of {} entities differ:\n{}",
        wrong.len(),
        expected.len(),
        wrong.join("\n")
    );
    assert_eq!(by_id.len(), expected_total, "seed {seed}: one id per event");
    // Per entity, ids (which carry the outbox seq) grow with commit order too.
    for list in arrived.values() {
        let ids: Vec<&String> = list.iter().map(|(_, id)| id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(
            ids, sorted,
            "seed {seed}: per-entity ids arrive in seq order"
        );
    }
}
