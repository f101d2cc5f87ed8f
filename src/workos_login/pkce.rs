//! PKCE (RFC 7636, S256 only) and the OAuth `state` for one sign-in: random values from
//! ring, the crypto library every wikibot binary already links.
//!
//! It must not reuse a value across sign-ins or expose the verifier before the code exchange:
//! the verifier leaves the process only in the `authenticate` request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use super::LoginError;

/// The secrets one sign-in holds until its callback: the PKCE verifier and the `state`.
pub struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    /// A fresh verifier: 32 random bytes, 43 base64url characters (RFC 7636 §4.1 allows 43
    /// to 128).
    pub fn generate() -> Result<Self, LoginError> {
        Ok(Self::from_verifier(random_token()?))
    }

    /// The pair for a given verifier (RFC 7636 appendix B's example uses this).
    pub fn from_verifier(verifier: String) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Self {
            verifier,
            challenge,
        }
    }

    /// `code_challenge`, sent with the authorize URL.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// `code_verifier`, sent only with the code exchange.
    pub fn verifier(&self) -> &str {
        &self.verifier
    }
}

/// 32 random bytes as base64url: the `state` and the PKCE verifier.
pub fn random_token() -> Result<String, LoginError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| LoginError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_example() {
        // RFC 7636 appendix B.
        let pkce = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn fresh_verifiers_are_long_enough_url_safe_and_distinct() {
        let a = Pkce::generate().unwrap();
        let b = Pkce::generate().unwrap();
        assert_eq!(a.verifier().len(), 43);
        assert!(
            a.verifier()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a.verifier(), b.verifier());
        assert_ne!(random_token().unwrap(), random_token().unwrap());
    }
}
