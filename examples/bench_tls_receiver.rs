//! The HTTPS receiver of the benchmark (`bench/bench.py`): keyhook's own receiver over TLS,
//! answering `200 ok` to every request and printing nothing per request.
//!
//! Run: `cargo run --release --example bench_tls_receiver -- CA_PEM_OUT`. At start-up it makes
//! a private CA and a certificate it signs for `127.0.0.1` and `localhost` (rcgen), writes the
//! CA's certificate to `CA_PEM_OUT` (what the benchmark's task names as `ca_file`), listens on a
//! free port of 127.0.0.1 and prints `PORT <n>`. Like `bench/receiver.c`, `GET /__count`
//! answers how many other requests it has answered. It serves until killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keyhook::receiver::{Reply, Server, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

fn main() {
    let Some(ca_out) = std::env::args().nth(1) else {
        eprintln!("usage: bench_tls_receiver CA_PEM_OUT");
        std::process::exit(2);
    };
    let (ca_pem, cert_pem, key_pem) = certificates();
    std::fs::write(&ca_out, ca_pem).unwrap_or_else(|error| {
        eprintln!("cannot write {ca_out}: {error}");
        std::process::exit(1);
    });
    let tls = ServerTls::from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
        .expect("the certificate just made");
    let answered = Arc::new(AtomicU64::new(0));
    let server = Server::start_unrecorded_with("127.0.0.1:0", Some(tls), move |request| {
        if request.method == "GET" && request.path() == "/__count" {
            return Reply::ok().with_body(answered.load(Ordering::Relaxed).to_string());
        }
        answered.fetch_add(1, Ordering::Relaxed);
        Reply::ok()
    })
    .unwrap_or_else(|error| {
        eprintln!("cannot listen on 127.0.0.1: {error}");
        std::process::exit(1);
    });
    println!("PORT {}", server.addr().port());
    loop {
        std::thread::park();
    }
}

/// A private CA's certificate, and a server certificate (with its key) that it signed.
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "keyhook bench CA");
    let ca_pem = ca.self_signed(&ca_key).expect("CA certificate").pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    (ca_pem, cert.pem(), key.serialize_pem())
}
