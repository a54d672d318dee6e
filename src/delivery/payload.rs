//! The request body, byte for byte as QLM sends it: compact JSON, keys in QLM's order,
//! UTF-8 strings escaped no further than JSON requires.
//!
//! Written here rather than by serde_json: the keys are known in advance, strings are
//! written by [`crate::json`], and a license's `LicenseInfo` object comes written as its row
//! was read. The bytes are serde_json's (a test holds the two side by side).

use crate::json::push_str;
use crate::licenses::license_info::{LicenseInfo, LicenseRow, pack_body, unpack_body};

/// What every body of one task shares: everything before the `LicenseInfo` object.
pub struct Envelope {
    start: Vec<u8>,
}

impl Envelope {
    pub fn new(task_name: &str, user_data: &str) -> Envelope {
        let mut start = Vec::with_capacity(64 + task_name.len() + user_data.len());
        start.extend_from_slice(b"{\"Name\":");
        push_str(&mut start, task_name);
        start.extend_from_slice(b",\"WebHookUserData\":");
        push_str(&mut start, user_data);
        start.extend_from_slice(b",\"LicenseInfo\":");
        Envelope { start }
    }

    /// The body of the request for one license. It is built once and both signed and sent
    /// as is.
    pub fn body(&self, license_info: &LicenseInfo) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.start.len() + 1536);
        bytes.extend_from_slice(&self.start);
        license_info.write_json(&mut bytes);
        bytes.push(b'}');
        bytes
    }

    /// [`Envelope::body`] for a license as its row holds it: the same bytes.
    pub fn body_of(&self, license: &LicenseRow) -> Vec<u8> {
        let Some(info) = license.packed() else {
            return self.parts(license.info_json().unwrap_or_default()).concat();
        };
        // Read packed: as a SQLite state would store it, then unpacked as a claim does.
        let mut packed = Vec::new();
        pack_body(&self.start, info, b"}", &mut packed);
        let body = unpack_body(&packed).expect("values just packed unpack");
        body.into_owned()
    }

    /// The body around a `LicenseInfo` object already written (`info`), in its three
    /// pieces, for a caller that copies them end to end itself.
    pub fn parts<'a>(&'a self, info: &'a [u8]) -> [&'a [u8]; 3] {
        [&self.start, info, b"}"]
    }
}

/// The body of the request for one license of task `task_name`.
pub fn body(task_name: &str, user_data: &str, license_info: &LicenseInfo) -> Vec<u8> {
    Envelope::new(task_name, user_data).body(license_info)
}

#[cfg(test)]
mod tests;
