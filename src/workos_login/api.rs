//! The three WorkOS User Management calls a sign-in makes. The authorize URL and the code
//! exchange go through WorkOS's official SDK (the `workos` crate), its requests carried by our
//! reqwest client (ring-only TLS, `crate::tls`); the identities are read with reqwest
//! directly, because the SDK's type for them (a bare JSON array, as WorkOS's API reference
//! shows) rejects the `{"object":"list","data":[…]}` that WorkOS's own emulator answers, and
//! both shapes are accepted here.
//!
//! It must not put the API key anywhere but the `Authorization` header and the exchange's
//! `client_secret`, follow redirects with it, or retry the single-use code exchange.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use workos::UserManagementAuthenticationProvider as SdkProvider;
use workos::transport::{HttpRequest, HttpResponse, HttpTransport, TransportError};
use workos::user_management::{AuthenticateWithCodeParams, GetAuthorizationUrlParams};

use super::{ApiKey, BaseUrl, Identity, LoginError, Profile, Provider, untrusted};

const AUTHENTICATE: &str = "POST /user_management/authenticate";
const IDENTITIES: &str = "GET /user_management/users/{id}/identities";

/// What goes into the authorize URL.
pub struct AuthorizeRequest<'a> {
    pub redirect_uri: &'a str,
    pub provider: Provider,
    pub state: &'a str,
    pub code_challenge: &'a str,
    pub login_hint: Option<&'a str>,
}

/// WorkOS's API for one sign-in.
pub struct WorkOsApi {
    sdk: workos::Client,
    http: reqwest::Client,
    base_url: BaseUrl,
    api_key: ApiKey,
    timeout: Duration,
}

impl WorkOsApi {
    pub fn new(
        base_url: &BaseUrl,
        client_id: &str,
        api_key: &ApiKey,
        timeout: Duration,
    ) -> Result<Self, LoginError> {
        let http = crate::tls::client_builder()
            .timeout(timeout)
            // An API call is never redirected; following one would carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LoginError::Config(format!("cannot build the HTTPS client: {e}")))?;
        let sdk = workos::Client::builder()
            .api_key(api_key.expose())
            .client_id(client_id)
            .base_url(base_url.as_str())
            .transport(Arc::new(Transport(http.clone())))
            .try_build()
            // try_build only fails on header-unsafe values, which ApiKey::new already refused;
            // its message never contains the key.
            .map_err(|e| LoginError::Config(format!("cannot set up the WorkOS SDK: {e}")))?;
        Ok(Self {
            sdk,
            http,
            base_url: base_url.clone(),
            api_key: api_key.clone(),
            timeout,
        })
    }

    /// `GET /user_management/authorize?…` with the provider, `state` and the S256 challenge
    /// (the SDK's `get_authorization_url`; no request is made).
    pub fn authorize_url(&self, request: &AuthorizeRequest<'_>) -> Result<String, LoginError> {
        let mut params = GetAuthorizationUrlParams::new(request.redirect_uri);
        params.provider = Some(match request.provider {
            Provider::Google => SdkProvider::GoogleOAuth,
            Provider::Apple => SdkProvider::AppleOAuth,
            Provider::GitHub => SdkProvider::GitHubOAuth,
            Provider::Microsoft => SdkProvider::MicrosoftOAuth,
            Provider::AuthKit => SdkProvider::Authkit,
        });
        params.state = Some(request.state.to_owned());
        params.code_challenge = Some(request.code_challenge.to_owned());
        params.code_challenge_method = Some("S256".to_owned());
        params.login_hint = request.login_hint.map(str::to_owned);
        self.sdk
            .user_management()
            .get_authorization_url(params)
            .map_err(|e| LoginError::Config(format!("cannot build the authorize URL: {e}")))
    }

    /// Exchanges the code (with the client id, the API key as `client_secret`, and the PKCE
    /// verifier) for the user. The tokens in the answer are dropped unread.
    pub async fn authenticate(&self, code: &str, verifier: &str) -> Result<Profile, LoginError> {
        let mut params = AuthenticateWithCodeParams::new(code);
        params.code_verifier = Some(verifier.into());
        let answer = self
            .sdk
            .user_management()
            .authenticate_with_code(params)
            .await
            .map_err(|e| self.sdk_error(AUTHENTICATE, e))?;
        let user = answer.user;
        Ok(Profile {
            id: user.id,
            email: user.email,
            email_verified: user.email_verified,
            first_name: user.first_name,
            last_name: user.last_name,
            authentication_method: answer
                .authentication_method
                .map(|method| method.as_str().to_owned()),
            organization_id: answer.organization_id,
        })
    }

    /// The user's identities at external providers.
    pub async fn identities(&self, user_id: &str) -> Result<Vec<Identity>, LoginError> {
        let mut url = reqwest::Url::parse(self.base_url.as_str())
            .map_err(|e| LoginError::Config(format!("WORKOS_BASE_URL cannot take a path: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| LoginError::Config("WORKOS_BASE_URL cannot take a path".to_owned()))?
            // Percent-encoded: a user id cannot change the path.
            .extend(["user_management", "users", user_id, "identities"]);
        let mut authorization =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.api_key.expose()))
                .map_err(|_| {
                    LoginError::Config("the WorkOS API key cannot go in a header".to_owned())
                })?;
        authorization.set_sensitive(true);
        let response = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.transport_error(IDENTITIES, &e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(IDENTITIES, &e))?;
        if !status.is_success() {
            let (code, message) = error_body(&body);
            return Err(LoginError::Api {
                endpoint: IDENTITIES,
                status: status.as_u16(),
                code,
                message,
                retry_after,
            });
        }
        parse_identities(&body)
    }

    fn sdk_error(&self, endpoint: &'static str, error: workos::Error) -> LoginError {
        match error {
            workos::Error::Api(api) => LoginError::Api {
                endpoint,
                status: api.status,
                code: api.code.as_deref().map(untrusted),
                message: untrusted(&api.message),
                retry_after: api.retry_after,
            },
            workos::Error::Network(transport) => {
                match transport.source.downcast_ref::<reqwest::Error>() {
                    Some(e) => self.transport_error(endpoint, e),
                    None => LoginError::Unreachable {
                        endpoint,
                        base_url: self.base_url.as_str().to_owned(),
                        detail: untrusted(&transport.to_string()),
                    },
                }
            }
            workos::Error::Decode(e) => LoginError::UnexpectedResponse {
                endpoint,
                detail: untrusted(&e.to_string()),
            },
            other => LoginError::UnexpectedResponse {
                endpoint,
                detail: untrusted(&other.to_string()),
            },
        }
    }

    fn transport_error(&self, endpoint: &'static str, error: &reqwest::Error) -> LoginError {
        if error.is_timeout() {
            LoginError::ApiTimeout {
                endpoint,
                timeout: self.timeout,
            }
        } else {
            LoginError::Unreachable {
                endpoint,
                base_url: self.base_url.as_str().to_owned(),
                detail: untrusted(&error_chain(error)),
            }
        }
    }
}

/// The identities, as WorkOS's API reference shows them (a JSON array) or as its emulator
/// answers (a list object with `data`).
fn parse_identities(body: &[u8]) -> Result<Vec<Identity>, LoginError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Identities {
        Array(Vec<Identity>),
        List { data: Vec<Identity> },
    }
    match serde_json::from_slice::<Identities>(body) {
        Ok(Identities::Array(identities) | Identities::List { data: identities }) => Ok(identities
            .into_iter()
            .map(|identity| Identity {
                idp_id: untrusted(&identity.idp_id),
                kind: untrusted(&identity.kind),
                provider: untrusted(&identity.provider),
            })
            .collect()),
        Err(e) => Err(LoginError::UnexpectedResponse {
            endpoint: IDENTITIES,
            detail: format!("not a list of identities: {e}"),
        }),
    }
}

/// WorkOS's error body: `{"code", "message"}`, or OAuth's `{"error", "error_description"}`.
fn error_body(body: &[u8]) -> (Option<String>, String) {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return (None, untrusted(String::from_utf8_lossy(body).trim()));
    };
    let text = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| fields.get(*name).and_then(|v| v.as_str()))
            .map(untrusted)
    };
    (
        text(&["code", "error"]),
        text(&["message", "error_description"]).unwrap_or_default(),
    )
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// reqwest's message and its causes ("error sending request" alone says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The SDK's requests over our reqwest client: ring-only TLS, our timeout, no redirects.
struct Transport(reqwest::Client);

impl HttpTransport for Transport {
    fn execute<'a, 'b>(
        &'a self,
        request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let mut builder = self
                .0
                .request(request.method, &request.url)
                .headers(request.headers);
            if let Some(body) = request.body {
                builder = builder.body(body);
            }
            let response = builder.send().await.map_err(classify)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(classify)?;
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        })
    }
}

/// The SDK retries connect errors and timeouts of GETs only; the code exchange is a POST and
/// is sent once either way.
fn classify(error: reqwest::Error) -> TransportError {
    if error.is_timeout() {
        TransportError::timeout(error)
    } else if error.is_connect() {
        TransportError::connect(error)
    } else {
        TransportError::other(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_in_both_shapes() {
        let google = Identity {
            idp_id: "103792384729384729384".into(),
            kind: "OAuth".into(),
            provider: "GoogleOAuth".into(),
        };
        let array =
            br#"[{"idp_id":"103792384729384729384","type":"OAuth","provider":"GoogleOAuth"}]"#;
        assert_eq!(parse_identities(array).unwrap(), vec![google.clone()]);
        let list = br#"{"object":"list","data":[{"idp_id":"103792384729384729384","type":"OAuth","provider":"GoogleOAuth","object":"identity"}],"list_metadata":{}}"#;
        assert_eq!(parse_identities(list).unwrap(), vec![google]);
        assert!(parse_identities(b"{}").is_err());
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        assert_eq!(
            error_body(br#"{"code":"invalid_grant","message":"Invalid code"}"#),
            (Some("invalid_grant".into()), "Invalid code".into())
        );
        assert_eq!(
            error_body(br#"{"error":"invalid_client","error_description":"bad"}"#),
            (Some("invalid_client".into()), "bad".into())
        );
        assert_eq!(error_body(b"oops\n"), (None, "oops".into()));
    }

    fn api() -> WorkOsApi {
        WorkOsApi::new(
            &BaseUrl::parse("https://api.workos.com").unwrap(),
            "client_123",
            &ApiKey::new("sk_test_secret", "test").unwrap(),
            Duration::from_secs(5),
        )
        .unwrap()
    }

    #[test]
    fn the_authorize_url_carries_provider_state_and_challenge_but_no_secret() {
        let url = api()
            .authorize_url(&AuthorizeRequest {
                redirect_uri: "http://127.0.0.1:4567/callback",
                provider: Provider::Google,
                state: "the-state",
                code_challenge: "the-challenge",
                login_hint: None,
            })
            .unwrap();
        let url = reqwest::Url::parse(&url).unwrap();
        assert_eq!(url.host_str(), Some("api.workos.com"));
        assert_eq!(url.path(), "/user_management/authorize");
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        for (name, value) in [
            ("client_id", "client_123"),
            ("redirect_uri", "http://127.0.0.1:4567/callback"),
            ("response_type", "code"),
            ("provider", "GoogleOAuth"),
            ("state", "the-state"),
            ("code_challenge", "the-challenge"),
            ("code_challenge_method", "S256"),
        ] {
            assert_eq!(query.get(name).map(String::as_str), Some(value), "{name}");
        }
        assert!(!url.as_str().contains("sk_test_secret"));
    }
}
