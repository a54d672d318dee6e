//! A deterministic demo license database: realistic rows spread around a given day, so that the
//! example searches, tasks and benchmarks always have something to match without a QLM server.

use chrono::{Datelike, Days, NaiveDate};
use rusqlite::{Connection, Statement, params};
use std::fmt::Write as _;

mod data;
pub mod postgres;
mod related;
mod row;

use data::{BUNDLES, COMPANIES, NOTES, PEOPLE, PRODUCT_PROPERTIES, PRODUCTS, SEATS, USER_DATA};
use row::Row;

/// Options for the demo data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// How many license rows to insert.
    pub licenses: usize,
    /// The day the dates are spread around; searches relative to it always find rows.
    pub today: NaiveDate,
    /// The same seed, `today` and starting table give the same rows.
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            licenses: 300,
            today: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            seed: 42,
        }
    }
}

/// Inserts `options.licenses` rows into an existing LicenseKeys table (schema::create was
/// already called) in one transaction and returns how many were written. The products, and
/// the customers the licenses refer to, are written in the same transaction.
///
/// Row numbers continue after the table's highest `ID`, so running it twice adds new licenses
/// (with new activation keys) instead of duplicates.
pub fn populate(conn: &mut Connection, options: &DemoOptions) -> rusqlite::Result<usize> {
    let calendar = Calendar::new(options.today)?;
    let tx = conn.transaction()?;
    let first: i64 = tx.query_row("SELECT coalesce(max(ID), 0) FROM LicenseKeys", [], |r| {
        r.get(0)
    })?;
    let rebuild = options.licenses >= REBUILD_INDEXES_FROM && first as usize <= options.licenses;
    let indexes = if rebuild {
        drop_indexes(&tx)?
    } else {
        Vec::new()
    };
    {
        let mut insert = tx.prepare(INSERT)?;
        let mut row = Row::default();
        for index in (first as u64)..(first as u64 + options.licenses as u64) {
            row.fill(index, options.seed, &calendar);
            row.insert(&mut insert)?;
        }
    }
    create_indexes(&tx, &indexes)?;
    related::populate_related(&tx)?;
    tx.commit()?;
    Ok(options.licenses)
}

/// From this many new rows (and at least as many as the table holds), dropping the indexes and
/// building them again afterwards is worth it: a million random inserts into ten date indexes
/// take over a minute, sorting them once a few seconds.
const REBUILD_INDEXES_FROM: usize = 10_000;

/// Drops the table's indexes and returns the statements that create them again. Inside the
/// transaction, so a failed populate leaves them in place.
fn drop_indexes(tx: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut indexes = tx.prepare(
        "SELECT name, sql FROM sqlite_schema \
         WHERE type = 'index' AND tbl_name = 'LicenseKeys' AND sql IS NOT NULL",
    )?;
    let indexes: Vec<(String, String)> = indexes
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (name, _) in &indexes {
        tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(indexes.into_iter().map(|(_, sql)| sql).collect())
}

/// Runs `indexes`, letting SQLite's sorter use a helper thread per spare core meanwhile.
fn create_indexes(tx: &Connection, indexes: &[String]) -> rusqlite::Result<()> {
    if indexes.is_empty() {
        return Ok(());
    }
    let previous: i64 = tx.query_row("PRAGMA threads", [], |r| r.get(0))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tx.execute_batch(&format!("PRAGMA threads = {}", cores.min(8)))?;
    let created = indexes.iter().try_for_each(|sql| tx.execute_batch(sql));
    tx.execute_batch(&format!("PRAGMA threads = {previous}"))?;
    created
}

/// What a row is there to show. The rotation guarantees every example search a share of the
/// rows on any day, however small the demo; the details within a scenario are random.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// A subscription that expires within the next 30 days.
    RenewingSoon,
    /// A subscription that expired yesterday.
    ExpiredYesterday,
    /// A trial that ends within the next 7 days.
    TrialEndingSoon,
    /// A trial that ended or ends within 30 days either side of today.
    Trial,
    /// A yearly subscription ordered yesterday.
    OrderedYesterday,
    /// A subscription that lapsed in the past year.
    Expired,
    /// A perpetual license.
    Perpetual,
    /// A subscription that runs for more than a month still.
    Active,
}

use Scenario::*;

const SCENARIOS: [Scenario; 20] = [
    RenewingSoon,
    Active,
    Perpetual,
    Trial,
    Expired,
    RenewingSoon,
    Active,
    ExpiredYesterday,
    Perpetual,
    TrialEndingSoon,
    RenewingSoon,
    Active,
    OrderedYesterday,
    Perpetual,
    Expired,
    Active,
    Trial,
    Active,
    Perpetual,
    Active,
];

/// Every ninth row has maintenance due this month and the next one due next month; coprime
/// with the scenario rotation, so every scenario gets both.
const MAINTENANCE_CYCLE: u64 = 9;

/// One row in 29 is disabled.
const DISABLED_CYCLE: u64 = 29;

const INSERT: &str = "INSERT INTO LicenseKeys (
    LicenseUpdatedOnServer, ActivationKey, FullName, Country, AffiliateID, Email, Duration,
    ExpiryDate, UsesAdminEncryption, MaintenanceRenewalDate, Features, OrderID, ReceiptID,
    SubscriptionID, LicenseModel, ProductID, MajorVersion, MinorVersion, NumLicenses,
    FloatingSeats, UserData, NewFeatures, NewFloatingSeats, ComputerID, ComputerName, Comment,
    LegacyKey, AvailableLicenses, OrderDate, ProductProperties, BundleID, ProductName,
    MaxReleaseCount, MaxReleasePeriodInDays, OrganizationID, SubscriptionExpiryDate, Disabled,
    ActivationDate, ActivationCount, ReleaseDate, OrderStatus, LastAccessedDate, CustomerID,
    CreationDate
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37,
    ?38, ?39, ?40, ?41, ?42, ?43, ?44)";

/// The first and last hour a generated time may fall in: QLM's `_start` macros are 00:00:01 and
/// `_end` 23:59:59, so a time at midnight would fall between two days' searches.
const FIRST_SECOND: u32 = 3600;
const LAST_SECOND: u32 = 23 * 3600;

/// The span of day offsets around today that the precomputed calendar covers; every generated
/// date lies within it (the oldest is an order two years and a bit back).
const FIRST_DAY: i32 = -800;
const LAST_DAY: i32 = 800;

/// Every day from `FIRST_DAY` to `LAST_DAY` around `today`, if all have four-digit years.
fn days_around(today: NaiveDate) -> Option<Vec<NaiveDate>> {
    let first = today.checked_sub_days(Days::new(FIRST_DAY.unsigned_abs().into()))?;
    let span = (LAST_DAY - FIRST_DAY) as usize + 1;
    let days: Vec<NaiveDate> = first.iter_days().take(span).collect();
    let four_digits = |day: &NaiveDate| (1..=9999).contains(&day.year());
    (days.len() == span && days.iter().all(four_digits)).then_some(days)
}

/// A point in time: days from today, and seconds into that day.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    day: i32,
    secs: u32,
}

/// A splitmix64 generator: tiny, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n`, without the bias of `%`.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: i32, high: i32) -> i32 {
        low + self.below((high - low + 1) as u64) as i32
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A time between 01:00 and 23:00 on `day`.
    fn at(&mut self, day: i32) -> Stamp {
        let secs = FIRST_SECOND + self.below(u64::from(LAST_SECOND - FIRST_SECOND) + 1) as u32;
        Stamp { day, secs }
    }

    /// A time between 01:00 and 23:00 on a day from `first` to `last` days from today.
    fn sometime(&mut self, first: i32, last: i32) -> Stamp {
        let day = self.between(first, last);
        self.at(day)
    }
}

/// splitmix64's finalizer: a bijection, so distinct row numbers give distinct keys.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The dates around today, formatted once, so a million rows cost no date arithmetic.
struct Calendar {
    /// `YYYY-MM-DD` for each day from `FIRST_DAY` to `LAST_DAY`, 10 bytes each.
    dates: String,
    /// Day offsets of the 1st of this month, the 1st of next month and the last of next month.
    this_month: i32,
    next_month: i32,
    next_month_end: i32,
}

impl Calendar {
    fn new(today: NaiveDate) -> rusqlite::Result<Self> {
        let days = days_around(today).ok_or_else(|| {
            let message =
                format!("demo dates must stay within years 1 to 9999; {today} is too near an end");
            rusqlite::Error::ToSqlConversionFailure(message.into())
        })?;
        let mut dates = String::with_capacity(days.len() * 10);
        for day in &days {
            // Cannot fail: writing to a String.
            let _ = write!(dates, "{}", day.format("%Y-%m-%d"));
        }
        let this_month = 1 - today.day() as i32;
        let next_month = this_month + i32::from(today.num_days_in_month());
        let next_first = days[(next_month - FIRST_DAY) as usize];
        Ok(Self {
            dates,
            this_month,
            next_month,
            next_month_end: next_month + i32::from(next_first.num_days_in_month()) - 1,
        })
    }

    /// `YYYY-MM-DD` of the day `day` days from today.
    fn date(&self, day: i32) -> &str {
        let start = (day.clamp(FIRST_DAY, LAST_DAY) - FIRST_DAY) as usize * 10;
        &self.dates[start..start + 10]
    }

    /// `YYYY-MM-DDTHH:MM:SS` into `out`, or an empty `out` (bound as NULL) for no date.
    fn write(&self, out: &mut String, stamp: Option<Stamp>) {
        out.clear();
        if let Some(Stamp { day, secs }) = stamp {
            out.push_str(self.date(day));
            out.push('T');
            push_two_digits(out, secs / 3600);
            out.push(':');
            push_two_digits(out, secs / 60 % 60);
            out.push(':');
            push_two_digits(out, secs % 60);
        }
    }
}

fn push_two_digits(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// The license's kind and its dates, decided by the scenario.
struct Plan {
    model: Model,
    duration: i64,
    /// When the order was placed, or the trial registered.
    created: Stamp,
    expiry: Option<Stamp>,
    subscription_expiry: Option<Stamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Trial,
    Subscription,
    Permanent,
}

impl Plan {
    fn new(scenario: Scenario, rng: &mut Rng) -> Self {
        match scenario {
            RenewingSoon => Self::subscription(rng, 0, 29),
            ExpiredYesterday => Self::subscription(rng, -1, -1),
            OrderedYesterday => Self::subscription(rng, 364, 364),
            Expired => Self::subscription(rng, -365, -2),
            Active => Self::subscription(rng, 31, 364),
            TrialEndingSoon => Self::trial(rng, 1, 7),
            Trial => Self::trial(rng, -30, 30),
            Perpetual => Self::perpetual(rng),
        }
    }

    /// A yearly subscription whose current term ends between `first` and `last` days from now.
    fn subscription(rng: &mut Rng, first: i32, last: i32) -> Self {
        let end = rng.sometime(first, last);
        Self {
            model: Model::Subscription,
            duration: 365,
            created: Stamp {
                day: end.day - 365,
                ..end
            },
            expiry: Some(end),
            subscription_expiry: Some(end),
        }
    }

    /// A trial that ends between `first` and `last` days from now, but started by yesterday.
    fn trial(rng: &mut Rng, first: i32, last: i32) -> Self {
        let duration = rng.pick(&[30, 14]);
        let end = rng.sometime(first, last.min(duration - 1));
        Self {
            model: Model::Trial,
            duration: i64::from(duration),
            created: Stamp {
                day: end.day - duration,
                ..end
            },
            expiry: Some(end),
            subscription_expiry: None,
        }
    }

    fn perpetual(rng: &mut Rng) -> Self {
        Self {
            model: Model::Permanent,
            duration: 0,
            created: rng.sometime(-730, -1),
            expiry: None,
            subscription_expiry: None,
        }
    }

    /// When maintenance renews if no special date was chosen: with the subscription, or a year
    /// after a perpetual purchase (possibly lapsed); trials have none.
    fn default_maintenance(&self) -> Option<Stamp> {
        match self.model {
            Model::Subscription => self.subscription_expiry,
            Model::Permanent => Some(Stamp {
                day: self.created.day + 365,
                ..self.created
            }),
            Model::Trial => None,
        }
    }
}

#[cfg(test)]
mod tests;
