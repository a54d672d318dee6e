use serde::Serialize;

use super::*;
use crate::licenses::schema::LICENSE_INFO;

/// The body as serde_json writes it: what [`body`] must give, byte for byte.
fn serde_body(task_name: &str, user_data: &str, license_info: &LicenseInfo) -> Vec<u8> {
    #[derive(Serialize)]
    struct Payload<'a> {
        #[serde(rename = "Name")]
        name: &'a str,
        #[serde(rename = "WebHookUserData")]
        user_data: &'a str,
        #[serde(rename = "LicenseInfo")]
        license_info: &'a LicenseInfo,
    }
    let payload = Payload {
        name: task_name,
        user_data,
        license_info,
    };
    serde_json::to_vec(&payload).unwrap()
}

#[test]
fn the_body_is_serde_jsons_byte_for_byte() {
    for text in LicenseInfo::awkward_texts() {
        for flip in [false, true] {
            let info = LicenseInfo::sample(&text, flip);
            assert_eq!(
                String::from_utf8(body(&text, &text, &info)).unwrap(),
                String::from_utf8(serde_body(&text, &text, &info)).unwrap(),
                "{text:?}"
            );
        }
    }
}

#[test]
fn field_names_need_no_escaping() {
    assert!(
        LICENSE_INFO
            .iter()
            .all(|(name, _)| name.bytes().all(|byte| byte.is_ascii_alphanumeric()))
    );
}
