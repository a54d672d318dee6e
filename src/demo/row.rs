//! One demo license row: its values decided from the scenario and random draws, and written
//! with one reused INSERT statement.

use super::*;

/// One row's values, reused from row to row so that generating allocates nothing. An empty
/// text buffer is written as NULL.
#[derive(Default)]
pub(super) struct Row {
    model: &'static str,
    duration: i64,
    person: (&'static str, &'static str),
    company: &'static str,
    customer_id: i64,
    organization_id: i64,
    product: (i64, &'static str),
    version: (i64, i64),
    features: &'static str,
    seats: i64,
    floating_seats: i64,
    activations: i64,
    disabled: bool,
    updated_on_server: bool,
    admin_encryption: bool,
    order_status: Option<i64>,
    max_release_count: i64,
    max_release_period: i64,
    affiliate: Option<&'static str>,
    user_data: Option<&'static str>,
    new_features: Option<&'static str>,
    comment: Option<&'static str>,
    product_properties: Option<&'static str>,
    bundle: Option<&'static str>,
    key: String,
    email: String,
    order_id: String,
    receipt_id: String,
    subscription_id: String,
    computer_id: String,
    computer_name: String,
    legacy_key: String,
    dates: Dates,
}

/// The text of each date column.
#[derive(Default)]
struct Dates {
    order: String,
    creation: String,
    expiry: String,
    subscription_expiry: String,
    maintenance: String,
    activation: String,
    last_accessed: String,
    release: String,
}

impl Row {
    pub(super) fn fill(&mut self, index: u64, seed: u64, calendar: &Calendar) {
        let mut rng = Rng(seed ^ mix(index));
        let plan = Plan::new(
            SCENARIOS[(index % SCENARIOS.len() as u64) as usize],
            &mut rng,
        );
        self.fill_customer(&mut rng);
        self.fill_product(&mut rng, plan.model);
        self.fill_identifiers(&mut rng, index, seed, plan.model);
        self.fill_extras(&mut rng);
        self.disabled = index % DISABLED_CYCLE == DISABLED_CYCLE / 2;
        self.duration = plan.duration;
        self.fill_dates(&mut rng, index, &plan, calendar);
    }

    fn fill_customer(&mut self, rng: &mut Rng) {
        let person = rng.below(PEOPLE.len() as u64) as usize;
        let company = rng.below(COMPANIES.len() as u64) as usize;
        self.person = PEOPLE[person];
        self.company = COMPANIES[company];
        self.customer_id = 1000 + (person * COMPANIES.len() + company) as i64;
        self.organization_id = 1 + company as i64;
        self.email.clear();
        push_folded(&mut self.email, self.person.0, '.');
        self.email.push('@');
        push_folded(&mut self.email, self.company, '-');
        self.email.push_str(".example");
    }

    fn fill_product(&mut self, rng: &mut Rng, model: Model) {
        let (id, name, versions, features) = rng.pick(&PRODUCTS);
        self.product = (id, name);
        self.version = rng.pick(versions);
        // A trial unlocks everything, so the customer sees what they would buy.
        self.features = match model {
            Model::Trial => features[features.len() - 1],
            _ => rng.pick(features),
        };
        self.seats = if model == Model::Trial {
            1
        } else {
            rng.pick(&SEATS)
        };
        let floating = self.seats > 1 && rng.chance(30);
        self.floating_seats = if floating { self.seats } else { 0 };
        self.model = match (model, floating) {
            (Model::Trial, _) => "trial",
            (Model::Subscription, false) => "subscription",
            (Model::Subscription, true) => "subscription_floating",
            (Model::Permanent, false) => "permanent",
            (Model::Permanent, true) => "permanent_floating",
        };
        self.order_status = (model != Model::Trial).then_some(1);
    }

    fn fill_identifiers(&mut self, rng: &mut Rng, index: u64, seed: u64, model: Model) {
        write_key(&mut self.key, rng, mix(index ^ mix(seed)));
        let number = 10_000 + index;
        for (buffer, prefix, wanted) in [
            (&mut self.order_id, "SO", model != Model::Trial),
            (&mut self.receipt_id, "RC", model != Model::Trial),
            (
                &mut self.subscription_id,
                "SUB",
                model == Model::Subscription,
            ),
        ] {
            buffer.clear();
            if wanted {
                // Cannot fail: writing to a String.
                let _ = write!(buffer, "{prefix}-{number:07}");
            }
        }
        self.legacy_key.clear();
        if rng.chance(10) {
            self.legacy_key.push_str("LK-");
            push_random(&mut self.legacy_key, rng, ALPHANUMERIC, 5);
            self.legacy_key.push('-');
            push_random(&mut self.legacy_key, rng, ALPHANUMERIC, 5);
        }
    }

    fn fill_extras(&mut self, rng: &mut Rng) {
        self.updated_on_server = rng.chance(25);
        self.admin_encryption = rng.chance(5);
        self.affiliate = rng
            .chance(15)
            .then(|| rng.pick(&["AFF-007", "AFF-042", "AFF-113"]));
        self.user_data = rng.chance(30).then(|| rng.pick(&USER_DATA));
        self.new_features = rng.chance(5).then_some("STD,PRO,ENT,");
        self.comment = match rng.below(10) {
            0..=5 => Some(self.company),
            6 => Some(rng.pick(&NOTES)),
            _ => None,
        };
        self.product_properties = rng.chance(20).then(|| rng.pick(&PRODUCT_PROPERTIES));
        self.bundle = rng.chance(10).then(|| rng.pick(&BUNDLES));
        let custom_release = rng.chance(20);
        self.max_release_count = if custom_release {
            rng.pick(&[3, 5, 10])
        } else {
            -2
        };
        self.max_release_period = if custom_release {
            rng.pick(&[30, 90])
        } else {
            -2
        };
    }

    fn fill_dates(&mut self, rng: &mut Rng, index: u64, plan: &Plan, calendar: &Calendar) {
        let maintenance = match index % MAINTENANCE_CYCLE {
            _ if plan.model == Model::Trial => None,
            0 => Some(rng.sometime(calendar.this_month, calendar.next_month - 1)),
            1 => Some(rng.sometime(calendar.next_month, calendar.next_month_end)),
            _ => plan.default_maintenance(),
        };
        let activation = rng.chance(85).then(|| activated_after(rng, plan.created));
        self.fill_activation(rng, activation);
        let ordered = (plan.model != Model::Trial).then_some(plan.created);
        let minutes_later = Stamp {
            secs: (plan.created.secs + rng.below(600) as u32).min(LAST_SECOND),
            ..plan.created
        };
        let dates = &mut self.dates;
        calendar.write(&mut dates.order, ordered);
        calendar.write(&mut dates.creation, Some(minutes_later));
        calendar.write(&mut dates.expiry, plan.expiry);
        calendar.write(&mut dates.subscription_expiry, plan.subscription_expiry);
        calendar.write(&mut dates.maintenance, maintenance);
        calendar.write(&mut dates.activation, activation);
        let last_accessed = activation.map(|a| rng.sometime(a.day.max(-60), -1));
        calendar.write(&mut dates.last_accessed, last_accessed);
        let released = activation.filter(|a| a.day < -1 && rng.chance(8));
        let release = released.map(|a| rng.sometime(a.day + 1, -1));
        calendar.write(&mut dates.release, release);
    }

    /// Activation counts and the machine a node-locked activation is bound to.
    fn fill_activation(&mut self, rng: &mut Rng, activation: Option<Stamp>) {
        self.activations = match activation {
            Some(_) => i64::from(rng.between(1, self.seats as i32)),
            None => 0,
        };
        self.computer_id.clear();
        self.computer_name.clear();
        if activation.is_some() && self.seats == 1 {
            push_random(&mut self.computer_id, rng, HEX, 12);
            self.computer_name
                .push_str(rng.pick(&["DESKTOP-", "LAPTOP-", "WS-"]));
            push_random(&mut self.computer_name, rng, ALPHANUMERIC, 7);
        }
    }

    pub(super) fn insert(&self, insert: &mut Statement<'_>) -> rusqlite::Result<()> {
        insert.execute(rusqlite::params_from_iter(self.cells()))?;
        Ok(())
    }

    /// The row's values in the order of `INSERT`'s columns: `LicenseInfo`'s, then the
    /// extra license columns (see `schema`).
    pub(super) fn cells(&self) -> [Cell<'_>; 44] {
        let dates = &self.dates;
        let flag = |on: bool| Cell::Int(i64::from(on));
        let optional = |text: Option<&'static str>| text.map_or(Cell::Null, Cell::Text);
        [
            flag(self.updated_on_server),
            Cell::Text(&self.key),
            Cell::Text(self.person.0),
            Cell::Text(self.person.1),
            optional(self.affiliate),
            Cell::Text(&self.email),
            Cell::Int(self.duration),
            or_null(&dates.expiry),
            flag(self.admin_encryption),
            or_null(&dates.maintenance),
            Cell::Text(self.features),
            or_null(&self.order_id),
            or_null(&self.receipt_id),
            or_null(&self.subscription_id),
            Cell::Text(self.model),
            Cell::Int(self.product.0),
            Cell::Int(self.version.0),
            Cell::Int(self.version.1),
            Cell::Int(self.seats),
            Cell::Int(self.floating_seats),
            optional(self.user_data),
            optional(self.new_features),
            Cell::Int(-1),
            or_null(&self.computer_id),
            or_null(&self.computer_name),
            optional(self.comment),
            or_null(&self.legacy_key),
            Cell::Int(self.seats - self.activations),
            or_null(&dates.order),
            optional(self.product_properties),
            optional(self.bundle),
            Cell::Text(self.product.1),
            Cell::Int(self.max_release_count),
            Cell::Int(self.max_release_period),
            Cell::Int(self.organization_id),
            or_null(&dates.subscription_expiry),
            flag(self.disabled),
            or_null(&dates.activation),
            Cell::Int(self.activations),
            or_null(&dates.release),
            self.order_status.map_or(Cell::Null, Cell::Int),
            or_null(&dates.last_accessed),
            Cell::Int(self.customer_id),
            or_null(&dates.creation),
        ]
    }
}

/// One value of a demo row, bound to SQLite's `INSERT` or written to PostgreSQL's `COPY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cell<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(match self {
            Cell::Null => ToSqlOutput::Owned(Value::Null),
            Cell::Int(number) => ToSqlOutput::from(*number),
            Cell::Text(text) => ToSqlOutput::from(*text),
        })
    }
}

/// Empty text is written as NULL.
fn or_null(text: &str) -> Cell<'_> {
    nullable(text).map_or(Cell::Null, Cell::Text)
}

/// Activated within three days of the order, but never later than yesterday.
fn activated_after(rng: &mut Rng, created: Stamp) -> Stamp {
    let day = (created.day + rng.between(0, 3)).min(-1).max(created.day);
    if day == created.day {
        let secs = (created.secs + rng.below(3600) as u32).min(LAST_SECOND);
        Stamp { day, secs }
    } else {
        rng.at(day)
    }
}

fn nullable(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

const ALPHANUMERIC: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_random(out: &mut String, rng: &mut Rng, alphabet: &[u8], count: usize) {
    for _ in 0..count {
        out.push(char::from(rng.pick(alphabet)));
    }
}

/// A 39-character key like QLM's: 13 characters spell `unique` in base 36 (enough for any
/// u64, so distinct values give distinct keys) and the rest are random.
fn write_key(out: &mut String, rng: &mut Rng, mut unique: u64) {
    out.clear();
    for _ in 0..13 {
        out.push(char::from(ALPHANUMERIC[(unique % 36) as usize]));
        unique /= 36;
    }
    push_random(out, rng, ALPHANUMERIC, 26);
}

/// Appends `text` folded to lowercase ASCII for an email address: accents dropped, spaces
/// become `separator`, anything else that has no ASCII form (punctuation, CJK) is left out.
pub(super) fn push_folded(out: &mut String, text: &str, separator: char) {
    let start = out.len();
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            ' ' | '/' if out.len() > start && !out.ends_with(separator) => out.push(separator),
            _ => out.push_str(fold_letter(c).unwrap_or_default()),
        }
    }
    if out.ends_with(separator) {
        out.pop();
    }
}

/// The ASCII spelling of the accented letters the demo names use.
fn fold_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'ā' => "a",
        'é' | 'è' | 'ê' | 'ë' | 'ě' => "e",
        'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
        'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'ō' | 'ő' => "o",
        'ú' | 'ù' | 'û' | 'ü' | 'ů' | 'ū' => "u",
        'ç' | 'č' | 'ć' => "c",
        'ñ' | 'ń' => "n",
        'š' | 'ś' => "s",
        'ž' | 'ź' | 'ż' => "z",
        'ř' => "r",
        'ł' => "l",
        'ð' => "d",
        'þ' => "th",
        'æ' => "ae",
        'ß' => "ss",
        _ => return None,
    })
}
