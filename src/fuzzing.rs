//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz) and for the regression test that
//! replays their corpora (`tests/fuzz_corpora.rs`): each takes arbitrary bytes, drives one
//! parser that faces the outside world, and checks the invariants its callers rely on. A
//! panic here is a bug.
//!
//! This module must not be used by the functions or the CLI; it exists for testing.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::store::{PagePath, WikiName};

/// Page and wiki names: anything accepted maps to a tree path and back, and carries none of
/// the characters or names the rules refuse.
pub fn names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(page) = PagePath::parse(text) {
        let tree_path = page.tree_path();
        assert!(tree_path.ends_with(crate::store::PAGE_FILE_SUFFIX));
        assert_eq!(PagePath::from_tree_path(&tree_path).as_ref(), Some(&page));
        assert!(!text.starts_with('/') && !text.ends_with('/'));
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() || "\\:*?|<>\"".contains(c))
        );
        for component in text.split('/') {
            assert!(!component.is_empty() && !component.starts_with('.'));
            assert!(!component.ends_with('.') && component.trim() == component);
        }
    }
    if let Ok(wiki) = WikiName::parse(text) {
        assert_eq!(wiki.repository_dir_name(), format!("{text}.git"));
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}

/// A git-probe event: whatever it is, the answer is a JSON object with a result or an error
/// of a known kind, never a panic.
pub fn git_probe_event(data: &[u8]) {
    static PROBE: OnceLock<crate::probes::git::GitProbe> = OnceLock::new();
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let probe = PROBE.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("wikibot-fuzz-{}", std::process::id()));
        let mut config = crate::store::StoreConfig::new(root);
        config.write_budget = Duration::from_millis(50);
        crate::probes::git::GitProbe::new(config)
    });
    let response = probe.handle(event);
    let body = response.as_object().expect("an object");
    match body.get("error") {
        Some(error) => assert!(matches!(
            error["kind"].as_str(),
            Some("invalid_input" | "not_found" | "conflict" | "busy" | "internal")
        )),
        None => assert!(body.contains_key("result"), "{response}"),
    }
}

/// A proxy event as the MCP server turns it into a request — API Gateway REST (v1), or the
/// 2.0 payload of HTTP APIs and function URLs: made safe for lambda_http, converted (which
/// must not panic), and stripped of its stage, leaving an absolute path.
pub fn apigw_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(parsed) = serde_json::from_value::<lambda_http::request::LambdaRequest>(
        crate::mcp::sanitize_event(event),
    ) else {
        return;
    };
    let request = crate::mcp::strip_stage(parsed.into());
    assert!(request.uri().path().starts_with('/'), "{}", request.uri());
}

/// A bearer header and the token in it, verified against a fixed key set: every outcome is a
/// principal or a typed error.
pub fn bearer_and_jwt(data: &[u8]) {
    static VERIFIER: OnceLock<(crate::auth::AuthKitVerifier, tokio::runtime::Runtime)> =
        OnceLock::new();
    let Ok(header) = axum::http::HeaderValue::from_bytes(data) else {
        return;
    };
    let token = crate::auth::bearer_token(&header);
    let (verifier, runtime) = VERIFIER.get_or_init(|| {
        let verifier =
            crate::auth::AuthKitVerifier::new("https://fuzz.authkit.app", "https://wiki/mcp")
                .expect("a verifier")
                // Never fetch keys: the fixed set is all there is.
                .with_timing(
                    Duration::from_secs(u64::MAX / 4),
                    Duration::from_secs(u64::MAX / 4),
                );
        let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_str(FUZZ_JWKS).expect("key set");
        verifier.preload(&keys).expect("keys load");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        (verifier, runtime)
    });
    let raw = token.unwrap_or_else(|| std::str::from_utf8(data).unwrap_or_default());
    let _ = runtime.block_on(verifier.verify(raw));
}

/// One RSA key, the shape AuthKit publishes: the public half of tests/fixtures/authkit-test-key.
const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"fuzz","alg":"RS256","use":"sig","n":"wKBH6hIpbVg2aVHhT-UWPG2szXmYQXs0NgfbOH82feE6OH7Mntfxi0QWFrkKTiGocLww_oPRuTAaSyBJNx7soYhPLBA8M1ftVSQo65z_CYGCt33-XDs0c4lzRXSdIIZW6yM9y4xhoY-ZRLrDMBMNzAbuWLFPMnPqu3uciDPlEdxrXkpDU5fWyPLHwFOeR19hAyA3wkn-n7TuKZyNiNcDwGq5eZ3vClQH-jN5OPGTaHeR3U7M5gjVTkCGpZbZD3ij9ESoqoVM_c58pbh5zHlueoS11dyn2E5cqXHCljkTi2tax8nXmCSPOhXj9C9YnJwNplpA3v_WzTGR5fzzQlbo1Q","e":"AQAB"}]}"#;
