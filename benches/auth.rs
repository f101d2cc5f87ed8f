//! Criterion benchmark of AuthKit access-token verification with a warm key cache: the
//! per-request CPU cost of OAuth on the MCP server (RS256 signature, claims, issuer,
//! audience, expiry). Tokens are signed with the test key in `tests/fixtures/`.

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use wikibot::auth::AuthKitVerifier;

// Signs the token; verification is the server's own (`wikibot::auth::jwt_crypto`).
#[path = "../tests/common/jwt_signing.rs"]
mod jwt_signing;

const ISSUER: &str = "https://bench.authkit.app";
const RESOURCE: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp";

fn verification(c: &mut Criterion) {
    jwt_signing::install();
    let key = EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/authkit-test-key.pem"))
        .expect("test key");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("bench".into());
    let verifier = AuthKitVerifier::new(ISSUER, RESOURCE).expect("HTTP client");
    verifier.preload(&JwkSet { keys: vec![jwk] }).expect("keys");

    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({"iss": ISSUER, "aud": RESOURCE, "sub": "user_bench", "iat": now, "exp": now + 3600});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("token");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    c.bench_function("verify AuthKit RS256 token (warm JWKS cache)", |b| {
        b.iter(|| runtime.block_on(verifier.verify(&token)).expect("valid"))
    });
}

criterion_group!(benches, verification);
criterion_main!(benches);
