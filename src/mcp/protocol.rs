//! The checks a Streamable HTTP POST must pass before it reaches rmcp, answered the way the
//! MCP specification asks: an unsupported `MCP-Protocol-Version` header, a body that is not
//! UTF-8 JSON, a batch (none since 2025-06-18) or anything but one JSON-RPC object gets
//! `400 Bad Request` with a JSON-RPC error body that a client can read, instead of rmcp's
//! plain-text `415`.
//!
//! This module must not authenticate (the middleware before it did) or interpret the message
//! beyond its shape.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};

/// JSON-RPC 2.0: the body is not JSON.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: JSON, but not a request object.
const INVALID_REQUEST: i64 = -32600;

/// The middleware: passes a well-formed POST (or any other method) on, answers the rest.
pub(super) async fn check(request: Request, next: Next, max_body_bytes: usize) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    if let Some(version) = request.headers().get("mcp-protocol-version") {
        let known = version.to_str().is_ok_and(|version| {
            ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .any(|v| v.as_str() == version)
        });
        if !known {
            let shown: String = String::from_utf8_lossy(version.as_bytes())
                .chars()
                .take(40)
                .collect();
            let supported: Vec<&str> = ProtocolVersion::KNOWN_VERSIONS
                .iter()
                .map(ProtocolVersion::as_str)
                .collect();
            return error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                &format!(
                    "unsupported MCP-Protocol-Version {shown:?}; this server supports {}",
                    supported.join(", ")
                ),
            );
        }
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, max_body_bytes).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            &format!("the request body is larger than {max_body_bytes} bytes"),
        );
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return error(
            StatusCode::BAD_REQUEST,
            PARSE_ERROR,
            "Parse error: the request body is not UTF-8",
        );
    };
    match serde_json::from_str::<Value>(text) {
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            PARSE_ERROR,
            &format!("Parse error: the request body is not JSON ({e})"),
        ),
        Ok(Value::Array(_)) => error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches are not supported; send one message per request",
        ),
        Ok(Value::Object(_)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(_) => error(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "Invalid Request: the body must be one JSON-RPC message (an object)",
        ),
    }
}

/// A JSON-RPC error response with no id (the request's could not be read).
fn error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
