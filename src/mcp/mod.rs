//! The MCP server as one axum app, served two ways by the same code: under the Lambda
//! Runtime API (API Gateway REST proxy events, through `lambda_http`) or as a plain HTTP
//! server (`wikibot serve`, `mcp-server` outside Lambda).
//!
//! Request flow: Host/Origin guard ([`guard`]) → for `/mcp`, bearer authentication
//! ([`crate::auth`]) → rmcp Streamable HTTP, stateless, JSON responses → a tool ([`tools`]) →
//! the page store. `/.well-known/oauth-protected-resource[/mcp]` (RFC 9728) and the proxied
//! AuthKit `/.well-known/oauth-authorization-server` are public.
//!
//! This module wires things together; it must not hold tool or auth logic itself.

pub mod config;
mod guard;
mod protocol;
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
    AuthKitVerifier, Authenticator, Challenge, Directory, OAuth, Principal, UserAccess,
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
    Ok(app.layer(middleware::from_fn_with_state(guard, guard::check)))
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
    match auth.authenticate(request.headers(), request.uri()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(rejection) => auth.challenge().respond(&rejection),
    }
}

async fn check_protocol(request: Request, next: Next) -> Response {
    protocol::check(request, next, MAX_REQUEST_BYTES).await
}

async fn admit_anonymous(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Principal::anonymous());
    next.run(request).await
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

/// Serves `app` under the Lambda Runtime API (API Gateway REST proxy events). Each event is
/// first made safe for lambda_http's conversion ([`sanitize_event`]), which panics on a `Host`
/// or path it cannot parse.
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

/// Makes a proxy event safe to convert: lambda_http 1.3 `unwrap`s the URL it builds from the
/// `Host` header and the path, so a `Host` that is not a valid authority (or carries user
/// information) is dropped — the request guard then answers `400` — and a path is made to
/// start with `/`. API Gateway validates both before a real event arrives; this keeps any
/// other caller of the function from crashing it.
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
    let valid_host = |value: &Value| {
        value.as_str().is_some_and(|host| {
            !host.contains('@')
                && host
                    .parse::<axum::http::uri::Authority>()
                    .is_ok_and(|a| a.port().is_none_or(|p| p.as_str().parse::<u16>().is_ok()))
                && url::Url::parse(&format!("https://{host}/")).is_ok()
        })
    };
    for key in ["headers", "multiValueHeaders"] {
        if let Some(Value::Object(headers)) = object.get_mut(key) {
            headers.retain(|name, value| {
                !name.eq_ignore_ascii_case("host")
                    || match value {
                        Value::Array(values) => values.iter().all(valid_host),
                        other => valid_host(other),
                    }
            });
        }
    }
    event
}

/// API Gateway REST APIs deliver `/<stage>/mcp`; the app's routes are stage-free. The stage
/// comes from the event's own request context, so no configuration can drift from it.
pub fn strip_stage(mut request: lambda_http::Request) -> lambda_http::Request {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
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
