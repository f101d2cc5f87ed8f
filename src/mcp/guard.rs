//! DNS-rebinding and cross-origin protection for every route: the `Host` header must name
//! this server, and an `Origin` header, when a browser sends one, must be an allowed origin
//! (except on the public `/.well-known/` discovery documents).
//! Both come from configuration (the public resource URL), not from a loopback default.
//! This module must not look at credentials.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{StatusCode, header};
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
    let host = request
        .headers()
        .get(header::HOST)
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
    if let Some(origin) = request.headers().get(header::ORIGIN).filter(|_| !public) {
        let allowed = origin.to_str().is_ok_and(|o| guard.origin_allowed(o));
        if !allowed {
            tracing::warn!("refused a request from a disallowed Origin");
            return (StatusCode::FORBIDDEN, "Forbidden: Origin is not allowed").into_response();
        }
    }
    next.run(request).await
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
