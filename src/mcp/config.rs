//! The MCP server's configuration: read from the environment (Lambda, `mcp-server`) or built
//! by `wikibot serve`, validated once at start-up so that a bad setting stops the server with
//! a message naming the variable instead of failing requests later.
//!
//! | variable | meaning |
//! |---|---|
//! | `MCP_RESOURCE_URL` | the public URL of the MCP endpoint, exactly as clients use it (e.g. `https://abc.execute-api.us-east-1.amazonaws.com/mcp`, or `https://wiki.example.com/mcp` on a custom domain); tokens must be issued for it |
//! | `AUTHKIT_DOMAIN` | the AuthKit issuer (`https://<subdomain>.authkit.app`); empty turns OAuth off |
//! | `MCP_AUTH_TOKEN` | a static bearer token accepted alongside OAuth (≥ 32 characters); empty turns it off |
//! | `MCP_ALLOW` | with OAuth: who may use the wiki, e.g. `user:user_01…=rw, email:ada@example.com=ro, domain:example.com=rw, org:org_01…=ro` (see `auth::policy`) |
//! | `MCP_ALLOW_ANY_USER` | with OAuth: `true` lets every user AuthKit signs in read and write; OAuth needs this or `MCP_ALLOW` |
//! | `WORKOS_API_KEY` | the WorkOS API key (`sk_…`): names and e-mails for commits, verified e-mails for the policy; unset: from token claims only |
//! | `WORKOS_BASE_URL` | the WorkOS API; default `https://api.workos.com` |
//! | `MCP_NAME_CLAIM`, `MCP_EMAIL_CLAIM`, `MCP_EMAIL_VERIFIED_CLAIM` | JWT-template claims holding the user's name, e-mail and its verification; default `name`, `email`, `email_verified` |
//! | `MCP_ALLOWED_ORIGINS` | comma-separated browser origins allowed to call; default: the resource URL's origin |
//! | `MCP_ALLOWED_HOSTS` | comma-separated extra `Host` values; the resource URL's host is always allowed |
//! | `MCP_SCOPES` | scopes advertised to clients; default `openid profile email offline_access` |
//! | `WIKIBOT_WIKI` | the wiki this server serves; default `wiki` |
//! | `WIKIBOT_ROOT` and the other store settings | see `docs/git-probe.md` |
//!
//! This module must not start anything.

use std::path::Path;

use url::Url;

use crate::auth::directory::DEFAULT_BASE_URL;
use crate::auth::{AccessPolicy, ApiKey, DirectoryConfig, IdentityClaims, StaticToken, UserAccess};
use crate::config::{ConfigError, env_bool, env_string};
use crate::store::{StoreConfig, WikiName};

pub const DEFAULT_WIKI: &str = "wiki";
pub const DEFAULT_SCOPES: &str = "openid profile email offline_access";

#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error(transparent)]
    Env(#[from] ConfigError),
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error("{0}")]
    Setup(String),
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ServerConfigError {
    ServerConfigError::Invalid {
        name,
        problem: problem.into(),
    }
}

/// How callers authenticate.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once at start-up; boxing would only burden every caller"
)]
pub enum AuthConfig {
    /// AuthKit OAuth and/or a static token; at least one is set.
    Required {
        authkit: Option<AuthKitConfig>,
        static_token: Option<StaticToken>,
    },
    /// No authentication: only for a loopback server (MCP conformance runs).
    Disabled,
}

/// OAuth through WorkOS AuthKit: whose tokens, who of their holders may do what, and how to
/// learn their names and e-mails.
#[derive(Debug, Clone)]
pub struct AuthKitConfig {
    /// The issuer URL (`https://<subdomain>.authkit.app`).
    pub issuer: String,
    pub users: UserAccess,
    pub claims: IdentityClaims,
    /// `None` without an API key: names and e-mails only from token claims.
    pub directory: Option<DirectoryConfig>,
}

impl AuthKitConfig {
    /// Default claim names, no WorkOS lookups.
    pub fn new(issuer: impl Into<String>, users: UserAccess) -> Self {
        Self {
            issuer: issuer.into(),
            users,
            claims: IdentityClaims::default(),
            directory: None,
        }
    }

    pub fn with_directory(mut self, directory: DirectoryConfig) -> Self {
        self.directory = Some(directory);
        self
    }
}

/// Who may sign in, from the policy and the "open to anyone" switch; OAuth needs exactly one.
/// `names` are the settings' names as the operator sees them (variables or flags).
pub fn user_access(
    policy: AccessPolicy,
    any_user: bool,
    names: (&'static str, &'static str),
) -> Result<UserAccess, ServerConfigError> {
    let (policy_name, any_name) = names;
    match (policy.is_empty(), any_user) {
        (false, false) => Ok(UserAccess::Policy(policy)),
        (true, true) => Ok(UserAccess::AnyUser),
        (false, true) => Err(ServerConfigError::Invalid {
            name: any_name,
            problem: format!(
                "opens the wiki to every signed-in user, which makes {policy_name} pointless; set one of them"
            ),
        }),
        (true, false) => Err(ServerConfigError::Invalid {
            name: policy_name,
            problem: format!(
                "OAuth is on, so say who may use the wiki: list users, e-mails, domains or organizations in {policy_name} (e.g. user:user_01…=rw, domain:example.com=ro), or set {any_name}=true to let every user AuthKit signs in read and write"
            ),
        }),
    }
}

/// The WorkOS lookup settings; `None` without an API key.
pub fn directory_config(
    api_key: Option<&str>,
    base_url: Option<&str>,
    names: (&'static str, &'static str),
) -> Result<Option<DirectoryConfig>, ServerConfigError> {
    let (key_name, url_name) = names;
    let Some(api_key) = api_key else {
        return Ok(None);
    };
    let api_key = ApiKey::new(api_key).map_err(|e| invalid(key_name, e))?;
    let raw = base_url.unwrap_or(DEFAULT_BASE_URL);
    let base_url = Url::parse(raw.trim())
        .map_err(|e| invalid(url_name, format!("{raw:?} is not a URL: {e}")))?;
    let host = base_url.host_str().unwrap_or_default().to_ascii_lowercase();
    if base_url.scheme() != "https" && !(base_url.scheme() == "http" && is_loopback(&host)) {
        return Err(invalid(
            url_name,
            "must be https (http only for a local test server): the API key travels with every request",
        ));
    }
    if base_url.query().is_some() || !base_url.username().is_empty() {
        return Err(invalid(url_name, "must not carry a query or user"));
    }
    Ok(Some(DirectoryConfig { base_url, api_key }))
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub store: StoreConfig,
    pub wiki: WikiName,
    /// The MCP endpoint's public URL, canonical (no trailing slash, no fragment).
    pub resource_url: Url,
    pub auth: AuthConfig,
    /// Lower-case `host` or `host:port` values accepted in the `Host` header.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) allowed in the `Origin` header.
    pub allowed_origins: Vec<String>,
    pub scopes: Vec<String>,
}

impl ServerConfig {
    /// Everything from the environment; `MCP_RESOURCE_URL` is required.
    pub fn from_env(default_root: &Path) -> Result<Self, ServerConfigError> {
        let resource = env_string("MCP_RESOURCE_URL")?.ok_or_else(|| {
            invalid(
                "MCP_RESOURCE_URL",
                "is required: the public URL of the MCP endpoint",
            )
        })?;
        let token = env_string("MCP_AUTH_TOKEN")?
            .map(|t| StaticToken::new(&t).map_err(|e| invalid("MCP_AUTH_TOKEN", e)))
            .transpose()?;
        let policy =
            AccessPolicy::parse("MCP_ALLOW", &env_string("MCP_ALLOW")?.unwrap_or_default())
                .map_err(|e| invalid("MCP_ALLOW", without_setting(&e)))?;
        let any_user = env_bool("MCP_ALLOW_ANY_USER")?.unwrap_or(false);
        let authkit = match env_string("AUTHKIT_DOMAIN")? {
            Some(domain) => {
                let mut authkit = AuthKitConfig::new(
                    authkit_issuer(&domain)?,
                    user_access(policy, any_user, ("MCP_ALLOW", "MCP_ALLOW_ANY_USER"))?,
                );
                let defaults = IdentityClaims::default();
                authkit.claims = IdentityClaims {
                    name: env_string("MCP_NAME_CLAIM")?.unwrap_or(defaults.name),
                    email: env_string("MCP_EMAIL_CLAIM")?.unwrap_or(defaults.email),
                    email_verified: env_string("MCP_EMAIL_VERIFIED_CLAIM")?
                        .unwrap_or(defaults.email_verified),
                };
                authkit.directory = directory_config(
                    env_string("WORKOS_API_KEY")?.as_deref(),
                    env_string("WORKOS_BASE_URL")?.as_deref(),
                    ("WORKOS_API_KEY", "WORKOS_BASE_URL"),
                )?;
                Some(authkit)
            }
            None if !policy.is_empty() || any_user => {
                return Err(invalid(
                    if any_user {
                        "MCP_ALLOW_ANY_USER"
                    } else {
                        "MCP_ALLOW"
                    },
                    "applies to OAuth sign-ins, but AUTHKIT_DOMAIN is not set",
                ));
            }
            None => None,
        };
        let auth = AuthConfig::Required {
            authkit,
            static_token: token,
        };
        Self::build(
            StoreConfig::from_env(default_root)?,
            env_string("WIKIBOT_WIKI")?
                .as_deref()
                .unwrap_or(DEFAULT_WIKI),
            &resource,
            auth,
            &list(env_string("MCP_ALLOWED_HOSTS")?),
            &list(env_string("MCP_ALLOWED_ORIGINS")?),
            env_string("MCP_SCOPES")?
                .as_deref()
                .unwrap_or(DEFAULT_SCOPES),
        )
    }

    /// Validates and completes a configuration.
    pub fn build(
        store: StoreConfig,
        wiki: &str,
        resource_url: &str,
        auth: AuthConfig,
        extra_hosts: &[String],
        origins: &[String],
        scopes: &str,
    ) -> Result<Self, ServerConfigError> {
        let wiki = WikiName::parse(wiki).map_err(|e| invalid("WIKIBOT_WIKI", e.to_string()))?;
        let resource_url = resource_url_from(resource_url)?;
        let host = resource_url
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match &auth {
            AuthConfig::Required {
                authkit: None,
                static_token: None,
            } => {
                return Err(invalid(
                    "AUTHKIT_DOMAIN / MCP_AUTH_TOKEN",
                    "set at least one: the server never runs open to the internet",
                ));
            }
            AuthConfig::Disabled if !is_loopback(&host) => {
                return Err(invalid(
                    "MCP_RESOURCE_URL",
                    "authentication can only be disabled for a loopback (127.0.0.1/localhost) server",
                ));
            }
            _ => {}
        }
        let mut allowed_hosts = vec![authority(&resource_url)];
        allowed_hosts.extend(extra_hosts.iter().map(|h| h.trim().to_ascii_lowercase()));
        allowed_hosts.dedup();
        let allowed_origins = if origins.is_empty() {
            vec![resource_url.origin().ascii_serialization()]
        } else {
            origins
                .iter()
                .map(|o| {
                    normalize_origin(o).ok_or_else(|| {
                        invalid(
                            "MCP_ALLOWED_ORIGINS",
                            format!("{o:?} is not an origin (scheme://host[:port])"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            store,
            wiki,
            resource_url,
            auth,
            allowed_hosts,
            allowed_origins,
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// The base URL the app is mounted under: the resource URL without its last segment
    /// (`https://h/prod/mcp` → `https://h/prod`).
    pub fn base_url(&self) -> String {
        let path = self.resource_url.path();
        let base = path.rsplit_once('/').map_or("", |(base, _)| base);
        format!("{}{base}", self.resource_url.origin().ascii_serialization())
    }

    /// Where this server's protected-resource metadata is served. For a resource at the host
    /// root's `/mcp` (the front door, `docs/decisions/0005-front-door.md`) this is RFC 9728's
    /// path-inserted location, `https://host/.well-known/oauth-protected-resource/mcp`; under a
    /// base path (`https://h/prod/mcp`) it stays under that path, where the door routes.
    pub fn resource_metadata_url(&self) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource{}",
            self.base_url(),
            self.mcp_path_suffix()
        )
    }

    /// The resource URL's last path segment with its slash (`/mcp`).
    pub fn mcp_path_suffix(&self) -> String {
        let path = self.resource_url.path();
        path.rsplit_once('/')
            .map_or_else(|| path.to_owned(), |(_, last)| format!("/{last}"))
    }

    /// The resource URL as tokens carry it in `aud`.
    pub fn resource(&self) -> String {
        self.resource_url.as_str().trim_end_matches('/').to_owned()
    }
}

/// A policy error's message without its leading setting name (the caller adds it).
fn without_setting(e: &crate::auth::PolicyError) -> String {
    let message = e.to_string();
    message
        .strip_prefix(&format!("{}: ", e.setting))
        .unwrap_or(&message)
        .to_owned()
}

fn list(raw: Option<String>) -> Vec<String> {
    raw.map(|r| {
        r.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn resource_url_from(raw: &str) -> Result<Url, ServerConfigError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| invalid("MCP_RESOURCE_URL", format!("{raw:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
        return Err(invalid(
            "MCP_RESOURCE_URL",
            "must be https (http only on 127.0.0.1/localhost)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(
            "MCP_RESOURCE_URL",
            "must not carry a query, fragment or user",
        ));
    }
    if url.path().trim_end_matches('/').is_empty() {
        return Err(invalid(
            "MCP_RESOURCE_URL",
            "must name the endpoint path, e.g. https://host/mcp",
        ));
    }
    // Canonical form (RFC 8707 / MCP): no trailing slash.
    let mut canonical = url.clone();
    canonical.set_path(url.path().trim_end_matches('/'));
    Ok(canonical)
}

/// The AuthKit issuer URL from `AUTHKIT_DOMAIN` (`acme.authkit.app` or `https://acme.authkit.app`).
pub fn authkit_issuer(raw: &str) -> Result<String, ServerConfigError> {
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| {
        invalid(
            "AUTHKIT_DOMAIN",
            format!("{raw:?} is not a domain or URL: {e}"),
        )
    })?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&host)) {
        return Err(invalid(
            "AUTHKIT_DOMAIN",
            "must be https (http only for a local test server)",
        ));
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// `scheme://host[:port]` in canonical form, default ports dropped.
pub fn normalize_origin(raw: &str) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    let path_is_root = url.path() == "/" || url.path().is_empty();
    (url.has_host() && path_is_root && url.query().is_none())
        .then(|| url.origin().ascii_serialization())
}

pub fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AuthConfig {
        AuthConfig::Required {
            authkit: None,
            static_token: Some(StaticToken::new(&"t".repeat(40)).unwrap()),
        }
    }

    fn config(resource: &str, auth: AuthConfig) -> Result<ServerConfig, ServerConfigError> {
        ServerConfig::build(
            StoreConfig::new("/tmp/x"),
            "wiki",
            resource,
            auth,
            &[],
            &[],
            DEFAULT_SCOPES,
        )
    }

    #[test]
    fn derives_metadata_urls_hosts_and_origins_from_the_resource_url() {
        let c = config(
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/mcp/",
            token(),
        )
        .unwrap();
        assert_eq!(
            c.resource(),
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/mcp"
        );
        assert_eq!(
            c.base_url(),
            "https://abc.execute-api.us-east-1.amazonaws.com/prod"
        );
        assert_eq!(
            c.resource_metadata_url(),
            "https://abc.execute-api.us-east-1.amazonaws.com/prod/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(c.allowed_hosts, ["abc.execute-api.us-east-1.amazonaws.com"]);
        assert_eq!(
            c.allowed_origins,
            ["https://abc.execute-api.us-east-1.amazonaws.com"]
        );
        let local = config("http://127.0.0.1:8080/mcp", token()).unwrap();
        assert_eq!(local.allowed_hosts, ["127.0.0.1:8080"]);
        assert_eq!(
            local.resource_metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn refuses_unsafe_configurations() {
        assert!(
            config("http://example.com/mcp", token()).is_err(),
            "plain http on the internet"
        );
        assert!(
            config("https://example.com", token()).is_err(),
            "no endpoint path"
        );
        assert!(config("https://example.com/mcp?x=1", token()).is_err());
        let none = AuthConfig::Required {
            authkit: None,
            static_token: None,
        };
        assert!(
            config("https://example.com/mcp", none).is_err(),
            "no authentication at all"
        );
        assert!(config("https://example.com/mcp", AuthConfig::Disabled).is_err());
        assert!(config("http://localhost:3000/mcp", AuthConfig::Disabled).is_ok());
        assert!(authkit_issuer("http://evil.example").is_err());
        assert_eq!(
            authkit_issuer("acme.authkit.app").unwrap(),
            "https://acme.authkit.app"
        );
        assert_eq!(
            authkit_issuer("https://acme.authkit.app/").unwrap(),
            "https://acme.authkit.app"
        );
    }

    #[test]
    fn oauth_needs_a_policy_or_an_explicit_opening() {
        let names = ("MCP_ALLOW", "MCP_ALLOW_ANY_USER");
        let err = user_access(AccessPolicy::default(), false, names)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MCP_ALLOW: ") && err.contains("MCP_ALLOW_ANY_USER=true"),
            "{err}"
        );
        assert_eq!(
            user_access(AccessPolicy::default(), true, names).unwrap(),
            UserAccess::AnyUser
        );
        let policy = AccessPolicy::parse("MCP_ALLOW", "user:user_1=rw").unwrap();
        assert!(matches!(
            user_access(policy.clone(), false, names).unwrap(),
            UserAccess::Policy(_)
        ));
        let both = user_access(policy, true, names).unwrap_err().to_string();
        assert!(both.starts_with("MCP_ALLOW_ANY_USER: "), "{both}");
    }

    #[test]
    fn workos_lookups_need_https_and_a_plausible_key() {
        let names = ("WORKOS_API_KEY", "WORKOS_BASE_URL");
        assert!(directory_config(None, None, names).unwrap().is_none());
        let config = directory_config(Some("sk_test_1"), None, names)
            .unwrap()
            .unwrap();
        assert_eq!(config.base_url.as_str(), "https://api.workos.com/");
        assert!(!format!("{config:?}").contains("sk_test_1"), "redacted");
        assert!(directory_config(Some("sk_test_1"), Some("http://127.0.0.1:4100"), names).is_ok());
        let plain = directory_config(Some("sk_test_1"), Some("http://workos.example"), names)
            .unwrap_err()
            .to_string();
        assert!(plain.starts_with("WORKOS_BASE_URL: "), "{plain}");
        let key = directory_config(Some("sk test"), None, names)
            .unwrap_err()
            .to_string();
        assert!(
            key.starts_with("WORKOS_API_KEY: ") && !key.contains("sk test"),
            "{key}"
        );
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize_origin("https://Claude.ai:443"),
            Some("https://claude.ai".into())
        );
        assert_eq!(
            normalize_origin("http://localhost:6274"),
            Some("http://localhost:6274".into())
        );
        assert_eq!(normalize_origin("https://claude.ai/path"), None);
        assert_eq!(normalize_origin("not a url"), None);
    }
}
