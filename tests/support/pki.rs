//! Certificates made at test time: a private CA, receivers' certificates it signs (for the
//! right names, the wrong ones, or expired), and client certificates for mutual TLS.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// A private certificate authority.
pub struct Ca {
    /// The CA's certificate, PEM: what `ca_file` holds.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, both PEM.
pub struct Identity {
    pub cert: String,
    pub key: String,
}

impl Ca {
    /// A new CA whose subject is `CN=<name>`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid now.
    pub fn server(&self, names: &[&str]) -> Identity {
        self.sign(names, ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for `names` that expired on 2024-01-31.
    pub fn expired_server(&self, names: &[&str]) -> Identity {
        self.sign(names, ExtendedKeyUsagePurpose::ServerAuth, true)
    }

    /// A client certificate for mutual TLS.
    pub fn client(&self, name: &str) -> Identity {
        self.sign(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Identity {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = rcgen::date_time_ymd(2023, 1, 1);
            params.not_after = rcgen::date_time_ymd(2024, 1, 31);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}
