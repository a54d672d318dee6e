//! The fixed tables the demo rows draw from: customers, companies, products and the odd
//! details (seats, notes, bundles) that make the rows look real.

/// Customers: a name and the country it belongs to, many outside ASCII to exercise encoding.
pub(super) const PEOPLE: [(&str, &str); 24] = [
    ("José Álvarez", "ES"),
    ("Zoë Müller", "DE"),
    ("Łukasz Wróbel", "PL"),
    ("Søren Kierkegård", "DK"),
    ("Chloé Dubois", "FR"),
    ("Mei Chen 陈美", "CN"),
    ("Ólafur Þórsson", "IS"),
    ("Emily Carter", "US"),
    ("James O'Brien", "IE"),
    ("Priya Raghunathan", "IN"),
    ("Kenji Watanabe 渡辺健二", "JP"),
    ("Fatma Yılmaz", "TR"),
    ("Björn Sjöström", "SE"),
    ("Ana Conceição", "BR"),
    ("Jiří Dvořák", "CZ"),
    ("Eero Mäkinen", "FI"),
    ("Zoltán Kovács", "HU"),
    ("Aoife Ní Bhriain", "IE"),
    ("Thandiwe Nkosi", "ZA"),
    ("Noah Williams", "GB"),
    ("Sofia Rossi", "IT"),
    ("Mateo García", "MX"),
    ("Hannah Schmidt", "AT"),
    ("Liam Nguyen", "AU"),
];

/// Companies: the email domain is derived from the name, and the name goes in `Comment`.
pub(super) const COMPANIES: [&str; 14] = [
    "Müller & Söhne GmbH",
    "Café Olé S.L.",
    "Øresund Data A/S",
    "Żółty Kod sp. z o.o.",
    "Björk Analytics AB",
    "Acme Widgets Inc.",
    "Globex Corporation",
    "Initech LLC",
    "Studio Élan SARL",
    "Tōkyō Systems K.K.",
    "Brasília Dados Ltda.",
    "Þingvellir Hugbúnaður ehf.",
    "Smith & Jones Ltd",
    "Nordlicht Software",
];

/// A product: id, name, (major, minor) versions sold, feature sets sold.
type Product = (
    i64,
    &'static str,
    &'static [(i64, i64)],
    &'static [&'static str],
);

pub(super) const PRODUCTS: [Product; 4] = [
    (1, "Demo", &[(1, 0), (1, 2)], &["STD,"]),
    (
        2,
        "Orion Studio",
        &[(5, 0), (5, 1), (6, 0)],
        &["STD,", "STD,PRO,", "STD,PRO,ENT,"],
    ),
    (
        3,
        "Vega Server",
        &[(2, 3), (3, 0)],
        &["STD,", "STD,CLUSTER,"],
    ),
    (4, "Lyra Mobile", &[(1, 4), (2, 0)], &["STD,", "STD,PRO,"]),
];

pub(super) const SEATS: [i64; 8] = [1, 1, 1, 1, 1, 5, 10, 25];

pub(super) const USER_DATA: [&str; 4] = [
    "source=web",
    "source=reseller",
    "campaign=black-friday",
    "crm=HS-20931",
];

pub(super) const NOTES: [&str; 3] = [
    "Asked for \"net 30\" terms",
    "Reseller: Ñandú Distribución",
    "Upgrade quote sent; awaiting PO",
];

pub(super) const PRODUCT_PROPERTIES: [&str; 2] = [
    r#"<properties><property section="limits" name="projects" value="10"/></properties>"#,
    r#"<properties><property section="limits" name="projects" value="unlimited"/></properties>"#,
];

pub(super) const BUNDLES: [&str; 2] = ["BND-0001", "BND-0002"];
