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
    EventWebhook::load(&path, &Catalog::builtin()).map_err(|problem| problem.message)
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
