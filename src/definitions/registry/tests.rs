use super::*;

const VALID: &str = r#"
name = "CRM activations"
url = "https://crm.example.com/hooks/keyhook"
events = ["license.activated", "license_released"]
environment = "staging"
description = "Tells the CRM when a seat is taken or freed."
secret_env = "CRM_WEBHOOK_SECRET"
signature = ["qlm", "standard"]
format = "standard"
concurrency = 4
max_retries = 3
"#;

fn load(text: &str) -> Result<EventWebhook, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.toml");
    std::fs::write(&path, text).unwrap();
    EventWebhook::load(&path, &Catalog::builtin()).map_err(|problems| {
        let messages: Vec<String> = problems.into_iter().map(|p| p.message).collect();
        messages.join("\n")
    })
}

#[test]
fn a_valid_webhook_loads() {
    let webhook = load(VALID).unwrap();
    assert_eq!(webhook.stem, "crm");
    assert_eq!(webhook.urls, ["https://crm.example.com/hooks/keyhook"]);
    assert_eq!(webhook.events, ["license.activated", "license.deactivated"]);
    assert_eq!(webhook.environment, Environment::Staging);
    assert_eq!(webhook.format, Format::Standard);
    assert_eq!(webhook.concurrency, Some(4));
    assert_eq!(webhook.endpoint.retry.max_retries, Some(3));
    assert!(webhook.enabled);
    assert!(webhook.fires_for("license.activated", Environment::Staging));
    assert!(!webhook.fires_for("license.activated", Environment::Production));
    assert!(!webhook.fires_for("license.created", Environment::Staging));
}

#[test]
fn addresses_come_as_url_urls_or_qlm_strings() {
    let qlm = VALID.replace(
        "url = \"https://crm.example.com/hooks/keyhook\"",
        "url = \"https://a.example/x; https://b.example/y;\"",
    );
    assert_eq!(
        load(&qlm).unwrap().urls,
        ["https://a.example/x", "https://b.example/y"]
    );
    let list = VALID.replace(
        "url = \"https://crm.example.com/hooks/keyhook\"",
        "urls = [\"https://a.example/x\", \"https://b.example/y\"]",
    );
    assert_eq!(load(&list).unwrap().urls.len(), 2);
}

#[test]
fn problems_name_the_field() {
    let url = "url = \"https://crm.example.com/hooks/keyhook\"";
    let cases = [
        (
            VALID.replace("license_released", "license_relased"),
            "field `events`: `license_relased` is not an event; did you mean `license_released`",
        ),
        (
            VALID.replace("staging", "qa"),
            "field `environment`: `qa` is not an environment",
        ),
        (
            VALID.replace("concurrency = 4", "concurrency = 0"),
            "field `concurrency`",
        ),
        (VALID.replace(url, ""), "no address"),
        (VALID.replace(url, &format!("{url}\nurls = []")), "not both"),
        (
            VALID.replace(url, "url = \" ; \""),
            "field `url`: no address",
        ),
        (
            VALID.replace(url, "url = \"https://a/x;https://a/x\""),
            "is there twice",
        ),
        (
            VALID.replace(url, "urls = [\"https://a/x\", \"ftp://b\"]"),
            "field `urls`",
        ),
        (
            VALID.replace("format = \"standard\"", "format = \"json\""),
            "format",
        ),
        (
            VALID.replace("secret_env", "secret_envv"),
            "unknown field `secret_envv`",
        ),
        (
            VALID.replace("max_retries = 3", "retry_schedule = \"fast\""),
            "`fast` is not a preset",
        ),
        (
            VALID.replace("name = \"CRM activations\"", "name = \" \""),
            "field `name` is empty",
        ),
    ];
    for (text, expected) in cases {
        let error = load(&text).unwrap_err();
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn environments() {
    assert_eq!(
        Environment::parse("Production"),
        Ok(Environment::Production)
    );
    assert_eq!(
        Environment::parse(" development "),
        Ok(Environment::Development)
    );
    assert!(Environment::parse("prod").is_err());
    assert_eq!(Environment::default().to_string(), "production");
}

#[test]
fn webhooks_for_picks_active_subscribers_of_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("webhooks")).unwrap();
    let write = |stem: &str, extra: &str| {
        let text = format!(
            "name = \"{stem}\"\nurl = \"https://{stem}.example/x\"\nsecret = \"s\"\n{extra}\n"
        );
        std::fs::write(dir.path().join(format!("webhooks/{stem}.toml")), text).unwrap();
    };
    write("all", "events = [\"license.*\"]");
    write("off", "events = [\"license.*\"]\nenabled = false");
    write("staging", "events = [\"*\"]\nenvironment = \"staging\"");
    write("customers", "events = [\"customer_modified\"]");
    std::fs::write(
        dir.path().join("keyhook.toml"),
        "[events]\nwebHookSecretKey = \"s\"\nlicense_activated = \"https://q.example/x\"\n",
    )
    .unwrap();
    let definitions = super::super::Definitions::load(dir.path());
    assert!(
        definitions.problems.is_empty(),
        "{:?}",
        definitions.problems
    );
    let names = |event: &str, environment| -> Vec<String> {
        let found = definitions.webhooks_for(event, environment);
        found.iter().map(|w| w.name.clone()).collect()
    };
    let production = Environment::Production;
    assert_eq!(
        names("license.activated", production),
        ["all", "qlm:license_activated:1"]
    );
    assert_eq!(
        names("license_activated", production),
        names("license.activated", production)
    );
    assert_eq!(names("customer.updated", production), ["customers"]);
    assert_eq!(names("customer.updated", Environment::Staging), ["staging"]);
    assert!(names("customer.updated", Environment::Development).is_empty());
}
