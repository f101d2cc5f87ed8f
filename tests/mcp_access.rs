//! Who may use the wiki, and whose name a commit carries (issue 10): the access policy by
//! user id, e-mail, domain and organization (allowed, denied with `403 insufficient_scope`,
//! read-only with write tools refused), authors' real names and e-mails from WorkOS's User
//! Management API (the mock in `common::mock_authkit`) or JWT-template claims, and what
//! happens when WorkOS cannot be reached: an honest fallback author, and `503` instead of a
//! denial we cannot be sure of.

mod common;

use common::mcp::{TestServer, call_tool, rpc_request, tool_call};
use common::mock_authkit::{API_KEY, MockAuthKit, USER, USER_EMAIL, USER_NAME, UsersMode};
use serde_json::{Value, json};
use wikibot::auth::{AccessPolicy, StaticToken, UserAccess};
use wikibot::mcp::{AuthConfig, AuthKitConfig, config::directory_config};

const STATIC: &str = "static-token-for-access-tests-0123456789";

struct Fixture {
    root: tempfile::TempDir,
    authkit: MockAuthKit,
    server: TestServer,
    http: reqwest::Client,
}

/// `policy`: `MCP_ALLOW` syntax, or `None` for `MCP_ALLOW_ANY_USER`; `lookups`: whether the
/// server has a WorkOS API key (pointed at the mock).
async fn fixture(policy: Option<&str>, lookups: bool) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let authkit = MockAuthKit::start().await;
    let users = match policy {
        Some(text) => UserAccess::Policy(AccessPolicy::parse("MCP_ALLOW", text).unwrap()),
        None => UserAccess::AnyUser,
    };
    let mut config = AuthKitConfig::new(authkit.issuer.clone(), users);
    if lookups {
        config.directory = directory_config(
            Some(API_KEY),
            Some(&authkit.issuer),
            ("WORKOS_API_KEY", "WORKOS_BASE_URL"),
        )
        .unwrap();
    }
    let auth = AuthConfig::Required {
        authkit: Some(config),
        static_token: Some(StaticToken::new(STATIC).unwrap()),
    };
    let server = TestServer::start(root.path(), auth, &[]).await;
    Fixture {
        root,
        authkit,
        server,
        http: wikibot::tls::client_builder().build().unwrap(),
    }
}

impl Fixture {
    /// A token for `user`, after `customize` edits its claims.
    fn token_for(&self, user: &str, customize: impl FnOnce(&mut Value)) -> String {
        self.authkit.token(&self.server.url, |claims| {
            claims["sub"] = json!(user);
            customize(claims);
        })
    }

    async fn call(&self, token: &str, tool: &str, args: Value) -> (bool, String) {
        call_tool(&self.http, &self.server.url, Some(token), tool, args).await
    }

    async fn write(&self, token: &str, page: &str) -> (bool, String) {
        self.call(
            token,
            "write_note",
            json!({"path": page, "content": format!("# {page}\n")}),
        )
        .await
    }

    /// The raw HTTP answer to an `echo` call.
    async fn echo(&self, token: &str) -> reqwest::Response {
        rpc_request(
            &self.http,
            &self.server.url,
            Some(token),
            &tool_call("echo", json!({"text": "hi"})),
        )
        .send()
        .await
        .unwrap()
    }

    /// `%an <%ae>` of the newest commit.
    fn last_author(&self) -> String {
        let repo = self.root.path().join("wiki.git");
        common::git(&repo, &["log", "-1", "--format=%an <%ae>", "main"])
            .trim()
            .to_owned()
    }
}

fn fallback(user: &str) -> String {
    format!("{user} <{user}@users.wikibot.invalid>")
}

/// Asserts a `403` whose challenge says `insufficient_scope` and whose body says why.
async fn assert_forbidden(response: reqwest::Response, expected: &[&str]) {
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer resource_metadata=")
            && challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    let why = body["error_description"].as_str().unwrap();
    for part in expected {
        assert!(why.contains(part), "{part:?} missing from {why:?}");
    }
}

/// Asserts a `503` with a `Retry-After` in whole seconds, a JSON body, and no challenge (the
/// client must keep its token).
async fn assert_unavailable(response: reqwest::Response, expected: &str) {
    assert_eq!(response.status(), 503);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(response.headers().get("www-authenticate").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let why = body["error_description"].as_str().unwrap();
    assert!(why.contains(expected), "{why}");
}

#[tokio::test]
async fn commits_carry_the_real_name_and_email_from_workos_looked_up_once() {
    let f = fixture(None, true).await;
    let token = f.token_for(USER, |_| {});
    let (error, text) = f.call(&token, "list_notes", json!({})).await;
    assert!(!error, "{text}");
    assert_eq!(f.authkit.user_lookups(), 0, "reads never ask WorkOS");

    let (error, text) = f.write(&token, "First").await;
    assert!(!error, "{text}");
    assert_eq!(f.last_author(), format!("{USER_NAME} <{USER_EMAIL}>"));
    let (error, text) = f.write(&token, "Second").await;
    assert!(!error, "{text}");
    assert_eq!(
        f.authkit.user_lookups(),
        1,
        "cached across requests (warm invocations)"
    );
    let (_, history) = f
        .call(&token, "get_history", json!({"path": "Second"}))
        .await;
    assert!(
        history.contains(&format!("{USER_NAME} <{USER_EMAIL}>")),
        "{history}"
    );

    // A user WorkOS knows by e-mail only: the address is the name.
    f.authkit
        .add_user("user_01NONAME", None, "grace@example.net", true);
    let (error, _) = f
        .write(&f.token_for("user_01NONAME", |_| {}), "Third")
        .await;
    assert!(!error);
    assert_eq!(f.last_author(), "grace@example.net <grace@example.net>");
}

#[tokio::test]
async fn jwt_template_claims_name_the_author_without_a_lookup() {
    let f = fixture(None, true).await;
    let token = f.token_for(USER, |c| {
        c["name"] = json!("Countess of Lovelace");
        c["email"] = json!("countess@example.com");
    });
    let (error, text) = f.write(&token, "Templated").await;
    assert!(!error, "{text}");
    assert_eq!(
        f.last_author(),
        "Countess of Lovelace <countess@example.com>"
    );
    assert_eq!(f.authkit.user_lookups(), 0);
}

#[tokio::test]
async fn when_workos_fails_a_commit_falls_back_to_the_id_and_the_next_write_recovers() {
    let f = fixture(None, true).await;
    let token = f.token_for(USER, |_| {});

    f.authkit.set_users_mode(UsersMode::Failing);
    let (error, text) = f.write(&token, "During").await;
    assert!(!error, "a write does not fail because WorkOS does: {text}");
    assert_eq!(f.last_author(), fallback(USER));

    // The mock answers after 5 s: had the write waited for it (no timeout), the commit
    // would carry the real name.
    f.authkit.set_users_mode(UsersMode::Hanging);
    let (error, text) = f.write(&token, "Slow").await;
    assert!(!error, "{text}");
    assert_eq!(f.last_author(), fallback(USER));

    f.authkit.set_users_mode(UsersMode::Normal);
    let (error, text) = f.write(&token, "After").await;
    assert!(!error, "{text}");
    assert_eq!(
        f.last_author(),
        format!("{USER_NAME} <{USER_EMAIL}>"),
        "failures are not cached"
    );
}

#[tokio::test]
async fn a_429_holds_lookups_back_for_its_retry_after() {
    let f = fixture(None, true).await;
    let token = f.token_for(USER, |_| {});
    f.authkit.set_users_mode(UsersMode::RateLimited(30));
    for page in ["One", "Two", "Three"] {
        let (error, text) = f.write(&token, page).await;
        assert!(!error, "{text}");
        assert_eq!(f.last_author(), fallback(USER));
    }
    assert_eq!(f.authkit.user_lookups(), 1, "no request while backing off");
}

#[tokio::test]
async fn the_policy_admits_by_user_id_and_refuses_everyone_else_with_403() {
    let f = fixture(Some(&format!("user:{USER}=rw")), true).await;
    let ada = f.token_for(USER, |_| {});
    assert_eq!(f.echo(&ada).await.status(), 200);
    assert_eq!(f.authkit.user_lookups(), 0, "an id rule needs no lookup");
    let (error, text) = f.write(&ada, "Allowed").await;
    assert!(!error, "{text}");

    let stranger = f.token_for("user_01STRANGER", |c| c["org_id"] = json!("org_01ELSE"));
    assert_forbidden(
        f.echo(&stranger).await,
        &[
            "user_01STRANGER",
            "org_01ELSE",
            "not on this wiki's access list",
        ],
    )
    .await;
    // The static token is the operator's own credential, outside the policy.
    assert_eq!(f.echo(STATIC).await.status(), 200);
}

#[tokio::test]
async fn read_only_callers_read_but_every_write_is_refused_with_a_clear_tool_error() {
    let f = fixture(Some(&format!("user:{USER}=ro")), true).await;
    let (error, _) = f.write(STATIC, "Existing").await;
    assert!(!error);
    let reader = f.token_for(USER, |_| {});
    let (error, text) = f
        .call(&reader, "read_note", json!({"path": "Existing"}))
        .await;
    assert!(!error && text.contains("# Existing"), "{text}");
    let (error, text) = f.write(&reader, "Mine").await;
    assert!(error, "{text}");
    assert!(
        text.contains("write_note refused")
            && text.contains("read-only")
            && text.contains(&format!("user:{USER}=ro")),
        "{text}"
    );
    let (error, text) = f.call(&reader, "read_note", json!({"path": "Mine"})).await;
    assert!(error && text.contains("does not exist"), "{text}");
    assert_eq!(common::commit_count(&f.root.path().join("wiki.git")), 1);
}

#[tokio::test]
async fn email_and_domain_rules_count_only_verified_addresses_and_exact_domains() {
    let f = fixture(
        Some("email:ADA@example.com=ro, domain:example.org=rw"),
        true,
    )
    .await;
    let add = |id: &str, email: &str, verified: bool| {
        f.authkit
            .add_user(id, Some(("Test", "User")), email, verified);
    };
    add("user_01BOB", "Bob@Example.ORG", true);
    add("user_01EVE", "eve@evil-example.org", true);
    add("user_01SUB", "sub@mail.example.org", true);
    add("user_01MALLORY", "mallory@example.org", false);

    // Ada's verified address matches an e-mail rule (case-insensitively): read-only.
    let ada = f.token_for(USER, |_| {});
    assert_eq!(f.echo(&ada).await.status(), 200);
    let (error, text) = f.write(&ada, "Ada").await;
    assert!(error && text.contains("email:ada@example.com=ro"), "{text}");

    let bob = f.token_for("user_01BOB", |_| {});
    let (error, text) = f.write(&bob, "Bob").await;
    assert!(!error, "{text}");
    assert_eq!(f.last_author(), "Test User <Bob@Example.ORG>");

    for (id, why) in [
        ("user_01EVE", "eve@evil-example.org"),
        ("user_01SUB", "sub@mail.example.org"),
        ("user_01MALLORY", "not verified"),
        ("user_01UNKNOWN", "no verified e-mail"),
    ] {
        let token = f.token_for(id, |_| {});
        assert_forbidden(f.echo(&token).await, &[id, why]).await;
    }

    // A JWT template that carries a verified address spares the lookup.
    let before = f.authkit.user_lookups();
    let templated = f.token_for("user_01TEMPLATED", |c| {
        c["email"] = json!("tess@example.org");
        c["email_verified"] = json!(true);
    });
    assert_eq!(f.echo(&templated).await.status(), 200);
    let unverified_claim = f.token_for("user_01CLAIMED", |c| {
        c["email"] = json!("claimed@example.org");
    });
    assert_forbidden(f.echo(&unverified_claim).await, &["user_01CLAIMED"]).await;
    assert_eq!(
        f.authkit.user_lookups(),
        before + 1,
        "only the unverified claim was checked with WorkOS"
    );
}

#[tokio::test]
async fn organization_rules_use_the_tokens_org_id() {
    let f = fixture(Some("org:org_01ACME=rw"), true).await;
    let member = f.token_for("user_01MEMBER", |c| c["org_id"] = json!("org_01ACME"));
    assert_eq!(f.echo(&member).await.status(), 200);
    let outsider = f.token_for("user_01OUTSIDER", |c| c["org_id"] = json!("org_01OTHER"));
    assert_forbidden(f.echo(&outsider).await, &["org_01OTHER"]).await;
    let none = f.token_for("user_01NOORG", |c| {
        c.as_object_mut().unwrap().remove("org_id");
    });
    assert_forbidden(f.echo(&none).await, &["user_01NOORG"]).await;
    assert_eq!(f.authkit.user_lookups(), 0, "no e-mail rules, no lookups");
}

#[tokio::test]
async fn when_workos_is_down_an_email_rule_answers_503_not_403() {
    let f = fixture(Some("domain:example.com=rw, user:user_01IDONLY=ro"), true).await;
    let ada = f.token_for(USER, |_| {});
    let id_only = f.token_for("user_01IDONLY", |_| {});
    f.authkit.set_users_mode(UsersMode::Failing);

    // Only the domain rule could admit Ada: we cannot know, so it is not a denial.
    assert_unavailable(f.echo(&ada).await, "WorkOS could not be reached").await;
    // Admitted by id for sure; the domain rule might grant more, and the refusal says so.
    assert_eq!(f.echo(&id_only).await.status(), 200);
    let (error, text) = f.write(&id_only, "Limited").await;
    assert!(
        error && text.contains("read-only") && text.contains("WorkOS could not be reached"),
        "{text}"
    );

    f.authkit.set_users_mode(UsersMode::Normal);
    assert_eq!(f.echo(&ada).await.status(), 200);
    let (error, text) = f.write(&ada, "Recovered").await;
    assert!(!error, "{text}");
    assert_eq!(f.last_author(), format!("{USER_NAME} <{USER_EMAIL}>"));
}

#[tokio::test]
async fn without_an_api_key_authors_come_from_claims_or_the_id() {
    let f = fixture(None, false).await;
    let (error, _) = f.write(&f.token_for(USER, |_| {}), "Bare").await;
    assert!(!error);
    assert_eq!(f.last_author(), fallback(USER));
    assert_eq!(f.authkit.user_lookups(), 0);
    // And the policy's e-mail rules then rest on verified claims alone.
    let g = fixture(Some("domain:example.com=rw"), false).await;
    let plain = g.token_for(USER, |_| {});
    assert_forbidden(g.echo(&plain).await, &["no WorkOS API key"]).await;
    let claimed = g.token_for(USER, |c| {
        c["email"] = json!(USER_EMAIL);
        c["email_verified"] = json!(true);
    });
    assert_eq!(g.echo(&claimed).await.status(), 200);
}
