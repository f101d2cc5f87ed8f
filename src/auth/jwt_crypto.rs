//! The cryptography behind [`jsonwebtoken`] here: RS256 signature verification with `ring`,
//! the one crypto library the binaries link (rustls uses it too, see [`crate::tls`]).
//!
//! jsonwebtoken's own backends are aws-lc-rs (about a third of the `mcp-server` binary) and
//! RustCrypto (a second library for RSA, ECDSA and EdDSA); AuthKit signs with RS256 only, so
//! this provider verifies RS256 and refuses everything else. It never signs.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey};

/// RS256 verification with `ring`; installed by [`install`].
pub static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(unsupported()),
        rsa_pub_components_from_public_key: |_| Err(unsupported()),
        ec_pub_components_from_private_key: |_, _| Err(unsupported()),
        ed_pub_components_from_private_key: |_, _| Err(unsupported()),
        compute_digest: |_, _| Err(unsupported()),
    },
};

/// Makes [`PROVIDER`] jsonwebtoken's provider for this process, unless one was installed
/// before (jsonwebtoken takes the first; tests install one that also signs, and verifies
/// with [`verifier_factory`]).
pub fn install() {
    let _ = PROVIDER.install_default();
}

fn unsupported() -> Error {
    ErrorKind::InvalidAlgorithm.into()
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(unsupported())
}

/// A verifier for `algorithm` with `key`: RS256 and an RSA key only (the checks
/// jsonwebtoken's own backends make, with the same errors).
pub fn verifier_factory(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::RS256 {
        return Err(unsupported());
    }
    if key.family() != AlgorithmFamily::Rsa {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(Rs256Verifier(key.clone())))
}

struct Rs256Verifier(DecodingKey);

impl Verifier<Vec<u8>> for Rs256Verifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), signature::Error> {
        let verified = match self.0.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents {
                // ring wants minimal big-endian integers; a JWK's may carry leading zeros,
                // which aws-lc (jsonwebtoken's default backend) accepts.
                n: without_leading_zeros(n),
                e: without_leading_zeros(e),
            }
            .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature),
            // A DER RSAPublicKey (`DecodingKey::from_rsa_der`/`from_rsa_pem`).
            DecodingKeyKind::SecretOrDer(der) => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).verify(message, signature)
            }
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn without_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zeros_are_dropped() {
        assert_eq!(without_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(without_leading_zeros(&[1, 0, 1]), &[1, 0, 1]);
        assert_eq!(without_leading_zeros(&[0, 0]), &[] as &[u8]);
    }

    #[test]
    fn only_rs256_with_an_rsa_key() {
        let rsa = DecodingKey::from_rsa_raw_components(&[1; 256], &[1, 0, 1]);
        assert!(verifier_factory(&Algorithm::RS256, &rsa).is_ok());
        for other in [
            Algorithm::RS384,
            Algorithm::PS256,
            Algorithm::HS256,
            Algorithm::ES256,
        ] {
            let refused = verifier_factory(&other, &rsa).err().expect("refused");
            assert!(
                matches!(refused.kind(), ErrorKind::InvalidAlgorithm),
                "{other:?}"
            );
        }
        let hmac = DecodingKey::from_secret(b"secret");
        let refused = verifier_factory(&Algorithm::RS256, &hmac)
            .err()
            .expect("refused");
        assert!(matches!(refused.kind(), ErrorKind::InvalidKeyFormat));
    }
}
