//! The MCP server as one axum app, served two ways by the same code: under the Lambda
//! Runtime API (API Gateway HTTP API and function URL 2.0 events, or REST proxy events,
//! through `lambda_http`) or as a plain HTTP server (`wikibot serve`, `mcp-server` outside
//! Lambda).
//!
//! Request flow: Host/Origin guard ([`guard`]) → for `/mcp`, bearer authentication
//! ([`crate::auth`]) → rmcp Streamable HTTP, stateless, JSON responses → a tool ([`tools`]) →
//! the page store. `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728) and the proxied
//! AuthKit `/.well-known/oauth-authorization-server` are public. Each request is logged once
//! (method, path, status, who called).
//!
//! This module wires things together; it must not hold tool or auth logic itself.

pub mod config;
mod guard;
mod protocol;
mod render;
pub mod tools;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

use crate::auth::{
    AuthKitVerifier, Authenticator, Challenge, Directory, OAuth, Principal, Rejection, UserAccess,
};
use crate::store::Store;
pub use config::{AuthConfig, AuthKitConfig, ServerConfig, ServerConfigError};
use guard::RequestGuard;
use tools::{WikiAccess, WikiTools};

/// Largest MCP request body: a page of the store's maximum size, JSON-escaped, with room.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Builds the whole app for `config`.
pub fn app(config: &ServerConfig) -> Result<Router, ServerConfigError> {
    let oauth = match &config.auth {
        AuthConfig::Required {
            authkit: Some(authkit),
            ..
        } => Some(oauth(config, authkit)?),
        _ => None,
    };
    let directory = oauth.as_ref().and_then(|o| o.directory.clone());
    let access = Arc::new(
        WikiAccess::new(Store::new(config.store.clone()), config.wiki.clone())
            .with_directory(directory),
    );
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_REQUEST_BYTES)
        .with_allowed_hosts(config.allowed_hosts.clone())
        .with_allowed_origins(config.allowed_origins.clone());
    let mcp = StreamableHttpService::new(
        move || Ok(WikiTools::new(Arc::clone(&access))),
        Arc::new(NeverSessionManager::default()),
        rmcp_config,
    );
    let mcp_path = config.mcp_path_suffix();

    let (authenticated, metadata) = match &config.auth {
        AuthConfig::Disabled => (
            Router::new()
                .nest_service(&mcp_path, mcp)
                .layer(middleware::from_fn(check_protocol))
                .layer(middleware::from_fn(admit_anonymous)),
            None,
        ),
        AuthConfig::Required {
            authkit,
            static_token,
        } => {
            let challenge = Challenge {
                resource_metadata: authkit.as_ref().map(|_| config.resource_metadata_url()),
                scopes: config.scopes.clone(),
            };
            let authenticator =
                Arc::new(Authenticator::new(oauth, static_token.clone(), challenge));
            let router = Router::new()
                .nest_service(&mcp_path, mcp)
                .layer(middleware::from_fn(check_protocol))
                .layer(middleware::from_fn_with_state(
                    authenticator,
                    require_bearer,
                ));
            let metadata = authkit
                .as_ref()
                .map(|authkit| Metadata::new(config, &authkit.issuer))
                .transpose()?;
            (router, metadata)
        }
    };

    let mut app = authenticated;
    if let Some(metadata) = metadata {
        let metadata = Arc::new(metadata);
        let well_known = Router::new()
            .route(
                &format!("/.well-known/oauth-protected-resource{mcp_path}"),
                get(protected_resource_metadata),
            )
            .route(
                "/.well-known/oauth-protected-resource",
                get(protected_resource_metadata),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(authorization_server_metadata),
            )
            .with_state(metadata);
        app = app.merge(well_known);
    }
    let guard = Arc::new(RequestGuard::new(
        &config.allowed_hosts,
        &config.allowed_origins,
    ));
    Ok(app
        .layer(middleware::from_fn_with_state(guard, guard::check))
        .layer(middleware::from_fn(log_request)))
}

/// The verifier, access decision and WorkOS directory for AuthKit sign-ins.
fn oauth(config: &ServerConfig, authkit: &AuthKitConfig) -> Result<OAuth, ServerConfigError> {
    let verifier = AuthKitVerifier::new(&authkit.issuer, &config.resource())
        .map_err(ServerConfigError::Setup)?
        .with_identity_claims(authkit.claims.clone());
    let directory = authkit
        .directory
        .as_ref()
        .map(|d| Directory::new(d).map(Arc::new))
        .transpose()
        .map_err(ServerConfigError::Setup)?;
    if let UserAccess::Policy(policy) = &authkit.users
        && policy.has_email_rules()
        && directory.is_none()
    {
        tracing::warn!(
            "the access policy has e-mail or domain rules but no WORKOS_API_KEY is set: they admit only tokens whose claims carry a verified e-mail"
        );
    }
    Ok(OAuth {
        verifier,
        users: authkit.users.clone(),
        directory,
    })
}

async fn require_bearer(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let (mut response, caller) = match auth.authenticate(request.headers(), request.uri()).await {
        Ok(principal) => {
            let caller = LoggedCaller(principal.subject.clone());
            request.extensions_mut().insert(principal);
            (next.run(request).await, caller)
        }
        Err(rejection) => {
            let caller = LoggedCaller(match rejection {
                Rejection::Missing => "none".to_owned(),
                _ => "refused".to_owned(),
            });
            (auth.challenge().respond(&rejection), caller)
        }
    };
    response.extensions_mut().insert(caller);
    response
}

/// Who made a request, for the request log: the user id (`user_…`) or `static-token` once a
/// bearer token is accepted, `none` without one, `refused` for a token that was not.
#[derive(Clone)]
struct LoggedCaller(String);

/// One line per request: method, path, status and caller (never a token). It is how the
/// runbook (`docs/claude-ai.md`) tells a sign-in that failed here (a `401`/`403` after the
/// token arrived) from one that never reached us (no request with a caller at all).
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path: String = request.uri().path().chars().take(200).collect();
    let response = next.run(request).await;
    let caller = response
        .extensions()
        .get::<LoggedCaller>()
        .map_or("-", |caller| caller.0.as_str());
    tracing::info!(%method, %path, status = response.status().as_u16(), caller, "request");
    response
}

async fn check_protocol(request: Request, next: Next) -> Response {
    protocol::check(request, next, MAX_REQUEST_BYTES).await
}

async fn admit_anonymous(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Principal::anonymous());
    let mut response = next.run(request).await;
    response
        .extensions_mut()
        .insert(LoggedCaller("anonymous".to_owned()));
    response
}

/// Public OAuth discovery documents.
struct Metadata {
    protected_resource: Value,
    authorization_server_url: String,
    /// The proxied document and when it was fetched; one fetch at a time (the lock is held
    /// across it), and a failure is remembered too, so an AuthKit outage costs one outbound
    /// request per [`AS_METADATA_RETRY`], not one per visitor.
    authorization_server: tokio::sync::Mutex<Proxied>,
    http: reqwest::Client,
}

#[derive(Default)]
struct Proxied {
    document: Option<(Instant, Value)>,
    last_failure: Option<Instant>,
}

const AS_METADATA_TTL: Duration = Duration::from_secs(3600);
const AS_METADATA_RETRY: Duration = Duration::from_secs(30);

impl Metadata {
    fn new(config: &ServerConfig, issuer: &str) -> Result<Self, ServerConfigError> {
        Ok(Self {
            protected_resource: json!({
                "resource": config.resource(),
                "authorization_servers": [issuer],
                "scopes_supported": config.scopes,
                "bearer_methods_supported": ["header"],
                "resource_name": "wikibot",
            }),
            authorization_server_url: format!("{issuer}/.well-known/oauth-authorization-server"),
            authorization_server: tokio::sync::Mutex::new(Proxied::default()),
            http: crate::tls::client_builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| {
                    ServerConfigError::Setup(format!("cannot set up HTTPS for AuthKit: {e}"))
                })?,
        })
    }
}

async fn protected_resource_metadata(State(metadata): State<Arc<Metadata>>) -> Response {
    public_json(StatusCode::OK, metadata.protected_resource.clone())
}

/// AuthKit's authorization-server metadata, for clients that skip RFC 9728 discovery.
async fn authorization_server_metadata(State(metadata): State<Arc<Metadata>>) -> Response {
    let unavailable = || {
        public_json(
            StatusCode::BAD_GATEWAY,
            json!({ "error": "the authorization server's metadata is unavailable; try again shortly" }),
        )
    };
    let mut proxied = metadata.authorization_server.lock().await;
    if let Some((at, document)) = &proxied.document
        && at.elapsed() < AS_METADATA_TTL
    {
        return public_json(StatusCode::OK, document.clone());
    }
    if proxied
        .last_failure
        .is_some_and(|at| at.elapsed() < AS_METADATA_RETRY)
    {
        return unavailable();
    }
    let fetched = async {
        metadata
            .http
            .get(&metadata.authorization_server_url)
            .send()
            .await?
            .error_for_status()?
            .json::<Value>()
            .await
    }
    .await;
    match fetched {
        Ok(document) => {
            proxied.document = Some((Instant::now(), document.clone()));
            proxied.last_failure = None;
            public_json(StatusCode::OK, document)
        }
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "could not fetch the authorization server metadata");
            proxied.last_failure = Some(Instant::now());
            unavailable()
        }
    }
}

/// Discovery documents are public and read by browser-based clients from other origins.
fn public_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// What the plain-HTTP server allows a client.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// How long a client may take to send a request's headers (slow-loris defence).
    pub header_read_timeout: Duration,
    /// How long one request may take from its headers to its response (else `503`).
    pub request_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

/// Serves `app` over plain HTTP/1.1 with the default [`HttpLimits`] until the process ends.
pub async fn serve_http(app: Router, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_http_with(app, listener, HttpLimits::default()).await
}

/// Serves `app` over plain HTTP/1.1 within `limits` until the process ends.
pub async fn serve_http_with(
    app: Router,
    listener: tokio::net::TcpListener,
    limits: HttpLimits,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let timeout = limits.request_timeout;
    let app = app.layer(middleware::from_fn(move |request, next| {
        within(timeout, request, next)
    }));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
    }
}

async fn within(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "Service Unavailable: the request took too long",
        )
            .into_response(),
    }
}

/// Serves `app` under the Lambda Runtime API: API Gateway REST (v1) proxy events, and the
/// 2.0 payload that HTTP APIs and Lambda function URLs send (the front door,
/// `docs/decisions/0005-front-door.md`). Each event is first made safe for lambda_http's
/// conversion ([`sanitize_event`]), which panics on a `Host`, scheme or query it cannot parse.
pub async fn serve_lambda(app: Router) -> Result<(), lambda_http::Error> {
    use lambda_http::tower::{Service, ServiceExt};
    use lambda_http::{LambdaEvent, RequestExt};
    use tracing::Instrument;
    let invocations = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let handle = move |request: lambda_http::Request| {
        let app = app.clone();
        let cold_start = invocations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
        let trace = request
            .lambda_context_ref()
            .and_then(|context| context.xray_trace_id.clone());
        let span = crate::lambda::xray::invocation_span(trace.as_deref(), cold_start);
        async move {
            let response = app
                .oneshot(strip_stage(request))
                .instrument(span.clone())
                .await;
            crate::lambda::xray::finish(&span);
            response
        }
    };
    lambda_http::lambda_runtime::run(lambda_http::service_fn(move |event: LambdaEvent<Value>| {
        let LambdaEvent { payload, context } = event;
        let parsed =
            serde_json::from_value::<lambda_http::request::LambdaRequest>(sanitize_event(payload));
        let mut adapter = lambda_http::Adapter::from(lambda_http::service_fn(handle.clone()));
        async move {
            let request = parsed.map_err(|e| format!("not a proxy event: {e}"))?;
            adapter
                .call(LambdaEvent::new(request, context))
                .await
                .map_err(|e| lambda_http::Error::from(format!("{e:?}")))
        }
    }))
    .await
}

/// Makes a proxy event (REST v1, or the 2.0 payload of HTTP APIs and function URLs) safe to
/// convert. lambda_http 1.3 `unwrap`s the URL it builds from the scheme
/// (`X-Forwarded-Proto`), the host (the `Host` header, else `requestContext.domainName`) and
/// the path, and `expect`s the request it builds with a 2.0 event's raw query string. So a
/// `Host` that is not a valid authority (or carries user information) is dropped — the
/// request guard then answers `400` — and so is a `domainName` of that kind; a scheme other
/// than `http`/`https` is dropped (lambda_http then assumes `https`); a raw query string that
/// is not a valid URI query is dropped (MCP uses none); a path is made to start with `/`. API
/// Gateway and function URLs deliver none of these; this keeps any other caller of the
/// function from crashing it.
pub fn sanitize_event(mut event: Value) -> Value {
    let Some(object) = event.as_object_mut() else {
        return event;
    };
    for key in ["path", "rawPath"] {
        if let Some(Value::String(path)) = object.get_mut(key)
            && !path.starts_with('/')
        {
            path.insert(0, '/');
        }
    }
    if let Some(Value::String(query)) = object.get("rawQueryString")
        && format!("/?{query}")
            .parse::<axum::http::uri::PathAndQuery>()
            .is_err()
    {
        object.insert("rawQueryString".to_owned(), Value::String(String::new()));
    }
    let valid_host = |value: &Value| value.as_str().is_some_and(is_valid_host);
    let valid_scheme = |value: &Value| {
        value
            .as_str()
            .is_some_and(|scheme| scheme == "https" || scheme == "http")
    };
    for key in ["headers", "multiValueHeaders"] {
        if let Some(Value::Object(headers)) = object.get_mut(key) {
            headers.retain(|name, value| {
                let valid: &dyn Fn(&Value) -> bool = if name.eq_ignore_ascii_case("host") {
                    &valid_host
                } else if name.eq_ignore_ascii_case("x-forwarded-proto") {
                    &valid_scheme
                } else {
                    return true;
                };
                match value {
                    Value::Array(values) => values.iter().all(valid),
                    other => valid(other),
                }
            });
        }
    }
    if let Some(Value::Object(context)) = object.get_mut("requestContext")
        && context
            .get("domainName")
            .is_some_and(|name| !name.is_null() && !valid_host(name))
    {
        context.remove("domainName");
    }
    event
}

/// Whether lambda_http can build `https://{host}/` from `host` without panicking, and the
/// request guard can judge it: an authority with a numeric port, no user information.
fn is_valid_host(host: &str) -> bool {
    !host.contains('@')
        && host
            .parse::<axum::http::uri::Authority>()
            .is_ok_and(|a| a.port().is_none_or(|p| p.as_str().parse::<u16>().is_ok()))
        && url::Url::parse(&format!("https://{host}/")).is_ok()
}

/// API Gateway REST APIs deliver `/<stage>/mcp`, and so does an HTTP API's named stage (its
/// `rawPath` carries the stage; lambda_http adds it where it is missing); the app's routes are
/// stage-free. The `$default` stage of an HTTP API and function URLs have no prefix. The stage
/// comes from the event's own request context, so no configuration can drift from it.
pub fn strip_stage(mut request: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return request;
    };
    let prefix = format!("/{stage}");
    let path = request.uri().path();
    let stripped = match path.strip_prefix(&prefix) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => return request,
    };
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{stripped}?{query}"),
        None => stripped,
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(new) = path_and_query.parse() {
        parts.path_and_query = Some(new);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}
