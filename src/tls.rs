//! HTTPS clients: reqwest over rustls with `ring` as the crypto provider (the one crypto
//! library the Lambda binaries link; JWTs are verified with it too, see `auth::jwt_crypto`;
//! the WorkOS SDK behind `wikibot workos login` sends its requests through these too), and
//! the platform verifier, which reads the system CA store (`/etc/pki/tls/certs` on Lambda's
//! provided.al2023, or `SSL_CERT_FILE`).
//!
//! reqwest is built without a provider of its own (`rustls-no-provider`), so every client
//! must come from [`client_builder`]: a client built before a provider is installed panics.

/// Installs `ring` as rustls' provider for this process, unless one was installed before.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `reqwest::Client::builder()`, with the crypto provider installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_build_and_ring_is_the_provider() {
        super::client_builder().build().expect("client");
        super::client_builder().build().expect("a second client");
        let provider = rustls::crypto::CryptoProvider::get_default().expect("installed");
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            format!("{:?}", provider.cipher_suites),
            format!("{:?}", ring.cipher_suites)
        );
    }
}
