//! `wikibot workos login` (P0-6): sign a person in through WorkOS User Management and show
//! who WorkOS says they are. The authorization-code flow with PKCE (S256) and `state`, a
//! callback server on 127.0.0.1, the code exchange at `/user_management/authenticate`, and
//! the provider's own user id from `/user_management/users/{id}/identities`.
//!
//! It must not print or log the API key, the PKCE verifier or the tokens WorkOS returns
//! (they are dropped unread), and it must not exchange a code whose `state` is not this
//! sign-in's. CLI only: compiled with the `workos-cli` feature, which the Lambda builds leave
//! out (the WorkOS SDK depends on aws-lc-rs; the bootstraps link ring alone).
//!
//! Which calls go through the official `workos` crate and which through reqwest, and why:
//! `docs/workos.md`.

mod api;
mod callback;
mod pkce;
mod report;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use api::WorkOsApi;
pub use callback::CallbackServer;
pub use pkce::{Pkce, random_token};
pub use report::Report;

/// The production API; `WORKOS_BASE_URL` overrides it (the tests use WorkOS's emulator).
pub const DEFAULT_BASE_URL: &str = "https://api.workos.com";

/// Where the callback server answers; the redirect URI is `http://127.0.0.1:PORT/callback`.
pub const CALLBACK_PATH: &str = "/callback";

/// Everything that can stop a sign-in, each with the message the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Config(String),
    #[error("the system's random number generator failed")]
    Random,
    #[error("cannot listen for the sign-in callback on 127.0.0.1:{port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error(
        "no sign-in came back within {}: nothing reached {redirect_uri}. Was the URL opened and the sign-in finished? Is {redirect_uri} registered as a redirect URI in the WorkOS dashboard (then run with the same --port)?",
        humantime::format_duration(*waited)
    )]
    Timeout {
        waited: Duration,
        redirect_uri: String,
    },
    #[error("{}", provider_error_message(error, description.as_deref()))]
    Provider {
        error: String,
        description: Option<String>,
    },
    #[error(
        "the callback's state does not match this sign-in's (a stale browser tab, another login, or a forged request); its code was not exchanged. Run the login again."
    )]
    WrongState,
    #[error("the callback carried neither a code nor an error: {0}")]
    IncompleteCallback(String),
    #[error("WorkOS refused {endpoint}: {}", api_error_detail(*status, code.as_deref(), message, *retry_after))]
    Api {
        endpoint: &'static str,
        status: u16,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("WorkOS did not answer {endpoint} within {} (--api-timeout)", humantime::format_duration(*timeout))]
    ApiTimeout {
        endpoint: &'static str,
        timeout: Duration,
    },
    #[error("cannot reach WorkOS at {base_url} for {endpoint}: {detail}")]
    Unreachable {
        endpoint: &'static str,
        base_url: String,
        detail: String,
    },
    #[error("WorkOS answered {endpoint} with something unexpected: {detail}")]
    UnexpectedResponse {
        endpoint: &'static str,
        detail: String,
    },
}

fn provider_error_message(error: &str, description: Option<&str>) -> String {
    let hint = match error {
        "access_denied" => {
            " (the sign-in was cancelled or refused at the provider, or this user may not use the application)"
        }
        "user_not_found" => " (no such user in this WorkOS environment)",
        _ => "",
    };
    match description {
        Some(description) => {
            format!("WorkOS sent the sign-in back with error {error}{hint}: {description}")
        }
        None => format!("WorkOS sent the sign-in back with error {error}{hint}"),
    }
}

fn api_error_detail(
    status: u16,
    code: Option<&str>,
    message: &str,
    retry_after: Option<Duration>,
) -> String {
    let mut text = format!("HTTP {status}");
    if let Some(code) = code {
        text.push_str(&format!(" {code}"));
    }
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    match (status, retry_after) {
        (401, _) => text.push_str(" (check the API key: WORKOS_API_KEY or --from-pulumi)"),
        (429, Some(after)) => text.push_str(&format!(
            " (rate limited; try again in {})",
            humantime::format_duration(after)
        )),
        (429, None) => text.push_str(" (rate limited; try again later)"),
        (500..=599, _) => text.push_str(" (a WorkOS-side failure; try again)"),
        _ => {}
    }
    text
}

/// Text from outside (the callback's query, WorkOS's error bodies) made safe to print: control
/// characters escaped, so it cannot move a terminal's cursor or forge a line, and cut short.
pub(crate) fn untrusted(text: &str) -> String {
    const LIMIT: usize = 300;
    let escaped = crate::lambda::escape_controls(text);
    match escaped.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &escaped[..cut]),
        None => escaped,
    }
}

/// The social provider (or AuthKit's own page) to sign in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    #[value(name = "GoogleOAuth")]
    Google,
    #[value(name = "AppleOAuth")]
    Apple,
    #[value(name = "GitHubOAuth")]
    GitHub,
    #[value(name = "MicrosoftOAuth")]
    Microsoft,
    /// AuthKit's hosted page, which offers every method the environment has turned on.
    #[value(name = "authkit")]
    AuthKit,
}

impl Provider {
    /// The `provider` value WorkOS's authorize endpoint takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "GoogleOAuth",
            Self::Apple => "AppleOAuth",
            Self::GitHub => "GitHubOAuth",
            Self::Microsoft => "MicrosoftOAuth",
            Self::AuthKit => "authkit",
        }
    }

    /// Whether an identity's `provider` is this one. WorkOS spells GitHub both `GitHubOAuth`
    /// and `GithubOAuth`, so case does not count.
    pub fn matches(self, provider: &str) -> bool {
        self != Self::AuthKit && provider.eq_ignore_ascii_case(self.as_str())
    }
}

/// The WorkOS secret API key (`sk_…`). Its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// `source` names where it came from, for the error message.
    pub fn new(key: &str, source: &str) -> Result<Self, LoginError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(LoginError::Config(format!(
                "the WorkOS API key from {source} is empty"
            )));
        }
        // It travels in an HTTP header and a JSON body: visible ASCII only.
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(LoginError::Config(format!(
                "the WorkOS API key from {source} has characters an API key cannot have (spaces, control or non-ASCII characters)"
            )));
        }
        Ok(Self(key.to_owned()))
    }

    /// Runs `pulumi config get workos_api_key [--stack STACK]` in `project_dir`, where the
    /// deployment stores it (`pulumi config set --secret workos_api_key …`).
    pub fn from_pulumi(project_dir: &Path, stack: Option<&str>) -> Result<Self, LoginError> {
        if !project_dir.join("Pulumi.yaml").is_file() {
            return Err(LoginError::Config(format!(
                "--from-pulumi: no Pulumi project in {} (run from the repository root, or pass --pulumi-dir)",
                project_dir.display()
            )));
        }
        let mut command = std::process::Command::new("pulumi");
        command
            .args(["config", "get", "workos_api_key"])
            .current_dir(project_dir)
            // Never wait for a passphrase prompt: fail instead.
            .stdin(std::process::Stdio::null());
        if let Some(stack) = stack {
            command.args(["--stack", stack]);
        }
        let output = command.output().map_err(|e| {
            LoginError::Config(if e.kind() == std::io::ErrorKind::NotFound {
                "--from-pulumi needs the Pulumi CLI (`pulumi`) on PATH".to_owned()
            } else {
                format!("--from-pulumi: cannot run pulumi: {e}")
            })
        })?;
        if !output.status.success() {
            // pulumi's stderr explains (no stack selected, not logged in, key not set) and
            // holds no secret: the value is only ever on stdout.
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(LoginError::Config(format!(
                "`pulumi config get workos_api_key` in {} failed ({}): {}",
                project_dir.display(),
                output.status,
                crate::lambda::escape_controls(stderr.trim())
            )));
        }
        let key = String::from_utf8(output.stdout).map_err(|_| {
            LoginError::Config("`pulumi config get workos_api_key` printed non-UTF-8".to_owned())
        })?;
        Self::new(&key, "`pulumi config get workos_api_key`")
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// `WORKOS_BASE_URL`, checked: `https`, or `http` to a loopback address (the emulator), and
/// nothing but an origin, since the API key goes to it.
#[derive(Clone, Debug)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(text: &str) -> Result<Self, LoginError> {
        let invalid = |why: &str| LoginError::Config(format!("WORKOS_BASE_URL {text:?} {why}"));
        let url = url::Url::parse(text).map_err(|e| invalid(&format!("is not a URL: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(invalid(
                    "must be https (plain http only to localhost): the API key is sent to it",
                ));
            }
            _ => return Err(invalid("must be an https URL")),
        }
        if url.host().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(invalid(
                "must be just scheme, host and port, like https://api.workos.com",
            ));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// Without a trailing slash: paths are appended to it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one sign-in needs.
#[derive(Debug)]
pub struct LoginConfig {
    pub client_id: String,
    pub base_url: BaseUrl,
    pub api_key: ApiKey,
    pub provider: Provider,
    /// 0: any free port.
    pub port: u16,
    /// Passed to WorkOS as `login_hint` (the email to preselect).
    pub login_hint: Option<String>,
    /// Bound on each WorkOS API call.
    pub api_timeout: Duration,
}

impl LoginConfig {
    /// Checks the client id (`WORKOS_CLIENT_ID`).
    pub fn client_id(text: Option<&str>) -> Result<String, LoginError> {
        let id = text.map(str::trim).unwrap_or_default();
        if id.is_empty() {
            return Err(LoginError::Config(
                "WORKOS_CLIENT_ID is not set: the WorkOS client id (client_…) from the dashboard's API Keys page; or pass --client-id".to_owned(),
            ));
        }
        if !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(LoginError::Config(format!(
                "WORKOS_CLIENT_ID {id:?} has characters a client id cannot have"
            )));
        }
        Ok(id.to_owned())
    }
}

/// The person WorkOS signed in, from the code exchange.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// As WorkOS reports it (`GoogleOAuth`, `AppleOAuth`, …).
    pub authentication_method: Option<String>,
    pub organization_id: Option<String>,
}

/// One of the user's identities at an external provider.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// "The unique ID of the user in the external identity provider" (WorkOS's words).
    pub idp_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub provider: String,
}

/// One sign-in from start to finish: the PKCE pair, the `state`, the callback server, and
/// the authorize URL to open.
pub struct LoginSession {
    api: WorkOsApi,
    pkce: Pkce,
    server: CallbackServer,
    authorize_url: String,
}

impl LoginSession {
    /// Listens for the callback and builds the authorize URL; nothing is sent to WorkOS yet.
    pub async fn start(config: &LoginConfig) -> Result<Self, LoginError> {
        let pkce = Pkce::generate()?;
        let state = random_token()?;
        let server = CallbackServer::start(config.port, state.clone()).await?;
        let api = WorkOsApi::new(
            &config.base_url,
            &config.client_id,
            &config.api_key,
            config.api_timeout,
        )?;
        let authorize_url = api.authorize_url(&api::AuthorizeRequest {
            redirect_uri: server.redirect_uri(),
            provider: config.provider,
            state: &state,
            code_challenge: pkce.challenge(),
            login_hint: config.login_hint.as_deref(),
        })?;
        Ok(Self {
            api,
            pkce,
            server,
            authorize_url,
        })
    }

    /// The URL the person opens to sign in.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> &str {
        self.server.redirect_uri()
    }

    /// Waits for the browser to come back, then exchanges the code for the profile. Errors
    /// from the provider, a wrong `state` and the timeout end the sign-in.
    pub async fn finish(self, timeout: Duration) -> Result<SignedIn, LoginError> {
        let code = self.server.wait(timeout).await?;
        let profile = self.api.authenticate(&code, self.pkce.verifier()).await?;
        Ok(SignedIn {
            api: self.api,
            profile,
        })
    }
}

/// A finished sign-in: the profile, and the API to ask for the user's identities.
pub struct SignedIn {
    api: WorkOsApi,
    pub profile: Profile,
}

impl SignedIn {
    /// The user's identities at external providers (the provider's own user ids).
    pub async fn identities(&self) -> Result<Vec<Identity>, LoginError> {
        self.api.identities(&self.profile.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_https_or_loopback_origins() {
        assert_eq!(
            BaseUrl::parse("https://api.workos.com").unwrap().as_str(),
            "https://api.workos.com"
        );
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1:4100/").unwrap().as_str(),
            "http://127.0.0.1:4100"
        );
        assert!(BaseUrl::parse("http://localhost:4100").is_ok());
        assert!(BaseUrl::parse("http://[::1]:4100").is_ok());
        for bad in [
            "http://api.workos.com",
            "ftp://api.workos.com",
            "https://api.workos.com/v1",
            "https://user:pw@api.workos.com",
            "https://api.workos.com/?x=1",
            "api.workos.com",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_keys_are_never_shown() {
        let key = ApiKey::new(" sk_test_abc123\n", "test").unwrap();
        assert_eq!(key.expose(), "sk_test_abc123");
        assert!(!format!("{key:?}").contains("abc123"));
        assert!(ApiKey::new("  ", "test").is_err());
        assert!(ApiKey::new("sk test", "test").is_err());
        let error = ApiKey::new("sk_\u{1b}[31m", "test")
            .unwrap_err()
            .to_string();
        assert!(!error.contains('\u{1b}'), "{error}");
    }

    #[test]
    fn client_ids_are_required() {
        assert!(
            LoginConfig::client_id(None)
                .unwrap_err()
                .to_string()
                .contains("WORKOS_CLIENT_ID is not set")
        );
        assert!(LoginConfig::client_id(Some(" ")).is_err());
        assert_eq!(
            LoginConfig::client_id(Some("client_123")).unwrap(),
            "client_123"
        );
    }

    #[test]
    fn identities_match_providers_whatever_the_case() {
        assert!(Provider::GitHub.matches("GithubOAuth"));
        assert!(Provider::Google.matches("GoogleOAuth"));
        assert!(!Provider::Google.matches("AppleOAuth"));
        assert!(!Provider::AuthKit.matches("authkit"));
    }

    #[test]
    fn messages_explain_what_to_do() {
        let denied = LoginError::Provider {
            error: "access_denied".into(),
            description: Some("The user denied the request".into()),
        };
        assert!(denied.to_string().contains("cancelled or refused"));
        let limited = LoginError::Api {
            endpoint: "POST /user_management/authenticate",
            status: 429,
            code: None,
            message: "Too Many Requests".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert!(limited.to_string().contains("try again in 7s"), "{limited}");
    }
}
