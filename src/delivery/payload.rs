//! The request body, byte for byte as QLM sends it: compact JSON, keys in QLM's order,
//! UTF-8 strings escaped no further than JSON requires.

use serde::Serialize;

use crate::licenses::license_info::LicenseInfo;

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "WebHookUserData")]
    user_data: &'a str,
    #[serde(rename = "LicenseInfo")]
    license_info: &'a LicenseInfo,
}

/// The body of the request for one license. It is built once and both signed and sent as is.
pub fn body(task_name: &str, user_data: &str, license_info: &LicenseInfo) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1024);
    let payload = Payload {
        name: task_name,
        user_data,
        license_info,
    };
    // Serializing strings, numbers and booleans into a Vec cannot fail.
    serde_json::to_writer(&mut bytes, &payload).expect("a payload always serializes");
    bytes
}
