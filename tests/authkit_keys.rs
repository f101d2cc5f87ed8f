//! AuthKit key-set handling against the mock: rotation is picked up, an outage costs one
//! fetch per interval instead of one per request, and keys we already have keep working when
//! a refresh fails.

mod common;

use std::time::Duration;

use common::mock_authkit::{self, MockAuthKit};
use wikibot::auth::{AuthKitVerifier, TokenError};

const RESOURCE: &str = "https://wiki.example/mcp";

fn rotated_token(authkit: &MockAuthKit) -> String {
    let claims = mock_authkit::claims(&authkit.issuer, RESOURCE);
    mock_authkit::sign(
        &mock_authkit::rs256_header(mock_authkit::ROTATED_KEY_ID),
        &claims,
        &mock_authkit::other_key(),
    )
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_the_interval_allows() {
    let authkit = MockAuthKit::start().await;
    let verifier = AuthKitVerifier::new(&authkit.issuer, RESOURCE)
        .unwrap()
        .with_timing(Duration::from_millis(200), Duration::from_secs(3600));
    verifier
        .verify(&authkit.token(RESOURCE, |_| {}))
        .await
        .unwrap();
    assert_eq!(authkit.jwks_fetches(), 1);

    authkit.rotate_keys();
    let rotated = rotated_token(&authkit);
    assert_eq!(
        verifier.verify(&rotated).await,
        Err(TokenError::UnknownKey),
        "too soon to refetch"
    );
    assert_eq!(authkit.jwks_fetches(), 1);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let principal = verifier.verify(&rotated).await.unwrap();
    assert_eq!(principal.subject, mock_authkit::USER);
    assert_eq!(authkit.jwks_fetches(), 2);
    verifier
        .verify(&authkit.token(RESOURCE, |_| {}))
        .await
        .unwrap();
    assert_eq!(authkit.jwks_fetches(), 2, "both keys now cached");
}

#[tokio::test]
async fn an_outage_costs_one_fetch_per_interval_not_one_per_request() {
    let authkit = MockAuthKit::start().await;
    authkit.fail_jwks(true);
    let verifier = AuthKitVerifier::new(&authkit.issuer, RESOURCE).unwrap();
    for _ in 0..20 {
        let err = verifier
            .verify(&authkit.token(RESOURCE, |_| {}))
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err}");
    }
    assert_eq!(authkit.jwks_fetches(), 1);
}

#[tokio::test]
async fn known_keys_keep_working_when_a_refresh_fails() {
    let authkit = MockAuthKit::start().await;
    // Keys expire at once and may be refetched at once: every call tries a refresh.
    let verifier = AuthKitVerifier::new(&authkit.issuer, RESOURCE)
        .unwrap()
        .with_timing(Duration::ZERO, Duration::ZERO);
    verifier
        .verify(&authkit.token(RESOURCE, |_| {}))
        .await
        .unwrap();
    authkit.fail_jwks(true);
    verifier
        .verify(&authkit.token(RESOURCE, |_| {}))
        .await
        .unwrap();
    assert_eq!(
        authkit.jwks_fetches(),
        2,
        "the refresh was tried and failed"
    );
    // A key we do not have, while AuthKit cannot tell us its current set: a rotation and a
    // forgery look alike, so the answer is "unavailable" (503), not "invalid" (401).
    let unknown = rotated_token(&authkit);
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(TokenError::KeysUnavailable(_))
    ));
    assert!(verifier.retry_after() >= Duration::from_secs(1));
    authkit.fail_jwks(false);
    assert_eq!(
        verifier.verify(&unknown).await,
        Err(TokenError::UnknownKey),
        "once AuthKit answers, an unknown key is a refusal"
    );
}
