//! The jsonwebtoken crypto provider of the test processes: the server's own verifier
//! (`wikibot::auth::jwt_crypto`, RS256 with `ring`), plus what only tests do — sign RS256 and
//! HS256 tokens and publish a private key's public half as a JWK — also with `ring`.
//!
//! jsonwebtoken has one provider per process, taken at first use, so everything in `tests/`
//! that signs or makes a JWK calls [`install`] first; the server code installed in the same
//! process later keeps this one, and so verifies exactly as in production.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory,
    verifier_factory: wikibot::auth::jwt_crypto::verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key,
        ..KeyUtils::new_unimplemented()
    },
};

pub fn install() {
    // Err when already installed: by an earlier call, which is the same provider.
    let _ = PROVIDER.install_default();
}

fn rsa_pub_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((public.n, public.e))
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    match (algorithm, key.family()) {
        (Algorithm::RS256, AlgorithmFamily::Rsa) | (Algorithm::HS256, AlgorithmFamily::Hmac) => {
            Ok(Box::new(TestSigner(*algorithm, key.clone())))
        }
        (Algorithm::RS256 | Algorithm::HS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct TestSigner(Algorithm, EncodingKey);

impl Signer<Vec<u8>> for TestSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let key = self.1.as_bytes();
        if self.0 == Algorithm::HS256 {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
            return Ok(ring::hmac::sign(&key, message).as_ref().to_vec());
        }
        let pair = RsaKeyPair::from_der(key).map_err(failed)?;
        let mut signature = vec![0; pair.public().modulus_len()];
        let rng = ring::rand::SystemRandom::new();
        pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .map_err(failed)?;
        Ok(signature)
    }
}

// ring's errors implement std's `Error` only with its `std` feature.
fn failed(error: impl std::fmt::Display) -> signature::Error {
    signature::Error::from_source(error.to_string())
}

impl JwtSigner for TestSigner {
    fn algorithm(&self) -> Algorithm {
        self.0
    }
}
