//! A TLS server side for tests: a self-signed certificate for 127.0.0.1 and localhost.

use std::sync::Arc;

/// A fresh self-signed certificate for 127.0.0.1 and localhost, and a TLS acceptor serving
/// it (rustls with ring, as the host's client side uses).
pub fn self_signed() -> (
    rustls::pki_types::CertificateDer<'static>,
    tokio_rustls::TlsAcceptor,
) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key.into())
    .unwrap();
    (cert, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
