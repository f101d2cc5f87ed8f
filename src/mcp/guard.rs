//! DNS-rebinding and cross-origin protection for every route: exactly one `Host` header,
//! naming this server and carrying no user information, and an `Origin` header, when a
//! browser sends one, must be an allowed origin (except on the public `/.well-known/`
//! discovery documents, which any origin may read). Both lists come from configuration (the
//! public resource URL), not from a loopback default. A browser's CORS preflight from an
//! allowed origin is answered here, before authentication (a preflight carries no
//! credentials), and responses to allowed origins carry the CORS headers a browser needs.
//! This module must not look at credentials.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::config::normalize_origin;

pub(super) struct RequestGuard {
    /// `host` (any port) or `host:port`, lower case.
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl RequestGuard {
    pub(super) fn new(hosts: &[String], origins: &[String]) -> Self {
        Self {
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            origins: origins.to_vec(),
        }
    }

    fn host_allowed(&self, raw: &str) -> bool {
        // `user@host` is not a Host header (RFC 9110 §7.2), whatever the host part says.
        if raw.contains('@') {
            return false;
        }
        let Ok(authority) = raw.parse::<Authority>() else {
            return false;
        };
        let host = authority.host().to_ascii_lowercase();
        let with_port = authority.port_u16().map(|port| format!("{host}:{port}"));
        self.hosts
            .iter()
            .any(|allowed| *allowed == host || with_port.as_deref() == Some(allowed.as_str()))
    }

    fn origin_allowed(&self, raw: &str) -> bool {
        normalize_origin(raw).is_some_and(|origin| self.origins.contains(&origin))
    }
}

pub(super) async fn check(
    State(guard): State<Arc<RequestGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let hosts: Vec<&HeaderValue> = request.headers().get_all(header::HOST).iter().collect();
    if hosts.len() > 1 {
        tracing::warn!("refused a request with more than one Host header");
        return (
            StatusCode::BAD_REQUEST,
            "Bad Request: more than one Host header",
        )
            .into_response();
    }
    let host = hosts
        .first()
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(ToString::to_string));
    match host {
        Some(host) if guard.host_allowed(&host) => {}
        Some(host) => {
            tracing::warn!(host = %host.chars().take(100).collect::<String>(), "refused a request for another host");
            return (
                StatusCode::FORBIDDEN,
                "Forbidden: Host header is not allowed",
            )
                .into_response();
        }
        None => {
            return (StatusCode::BAD_REQUEST, "Bad Request: missing Host header").into_response();
        }
    }
    // The discovery documents are public (CORS `*`): browser clients on any origin read them.
    let public = request.uri().path().starts_with("/.well-known/");
    let origin = request.headers().get(header::ORIGIN).cloned();
    let Some(origin) = origin.filter(|_| !public) else {
        if public && request.method() == Method::OPTIONS {
            return preflight(HeaderValue::from_static("*"), "GET, OPTIONS");
        }
        return next.run(request).await;
    };
    if !origin.to_str().is_ok_and(|o| guard.origin_allowed(o)) {
        tracing::warn!("refused a request from a disallowed Origin");
        return (StatusCode::FORBIDDEN, "Forbidden: Origin is not allowed").into_response();
    }
    if is_preflight(request.method(), request.headers()) {
        return preflight(origin, "GET, POST, DELETE, OPTIONS");
    }
    let mut response = next.run(request).await;
    allow_origin(response.headers_mut(), origin);
    response
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Headers an MCP client in a browser sends.
const ALLOWED_REQUEST_HEADERS: &str = "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID";
/// Response headers a browser client must be able to read (the 401 challenge above all).
const EXPOSED_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version";

fn preflight(origin: HeaderValue, methods: &'static str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_REQUEST_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    allow_origin(headers, origin);
    response
}

fn allow_origin(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_with_or_without_port() {
        let guard = RequestGuard::new(&["example.com".into(), "127.0.0.1:8080".into()], &[]);
        assert!(guard.host_allowed("example.com"));
        assert!(guard.host_allowed("EXAMPLE.com:443"));
        assert!(guard.host_allowed("127.0.0.1:8080"));
        assert!(!guard.host_allowed("127.0.0.1:9090"));
        assert!(!guard.host_allowed("evil.com"));
        assert!(!guard.host_allowed("example.com.evil.com"));
        assert!(!guard.host_allowed("bad host"));
        assert!(!guard.host_allowed("user@example.com"));
        assert!(!guard.host_allowed("evil.com@example.com"));
    }

    #[test]
    fn origins_must_be_listed() {
        let guard = RequestGuard::new(&[], &["https://claude.ai".into()]);
        assert!(guard.origin_allowed("https://claude.ai"));
        assert!(guard.origin_allowed("https://claude.ai:443"));
        assert!(!guard.origin_allowed("http://claude.ai"));
        assert!(!guard.origin_allowed("https://evil.example"));
        assert!(!guard.origin_allowed("null"));
    }
}
