//! The loopback callback server of one sign-in: listens on 127.0.0.1 (a free port or the one
//! asked for), takes the first request to `/callback`, checks its `state` in constant time,
//! and hands back the code, the provider's error, or the refusal; the browser gets a short
//! page saying which.
//!
//! It must not accept a code whose `state` is not this sign-in's, take more than one callback,
//! listen on anything but loopback, or echo the query unescaped into the page.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;

use super::{CALLBACK_PATH, LoginError, untrusted};

/// What the first callback said, once checked.
#[derive(Debug)]
enum Outcome {
    Code(String),
    Refused(LoginError),
}

/// The callback server, running until [`CallbackServer::wait`] returns.
pub struct CallbackServer {
    redirect_uri: String,
    outcome: oneshot::Receiver<Outcome>,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: String,
    /// Taken by the first callback: later ones are told the sign-in is over.
    report: Mutex<Option<oneshot::Sender<Outcome>>>,
}

impl CallbackServer {
    /// Binds 127.0.0.1:`port` (0: any free port) and serves until the first callback.
    pub async fn start(port: u16, state: String) -> Result<Self, LoginError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| LoginError::Listen { port, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| LoginError::Listen { port, source })?;
        let redirect_uri = format!("http://{bound}{CALLBACK_PATH}");
        let (report, outcome) = oneshot::channel();
        let shared = Arc::new(Shared {
            state,
            report: Mutex::new(Some(report)),
        });
        let router = Router::new()
            .route(CALLBACK_PATH, get(callback))
            .with_state(shared);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stop.await;
            });
            if let Err(e) = serving.await {
                tracing::warn!("the sign-in callback server stopped: {e}");
            }
        });
        Ok(Self {
            redirect_uri,
            outcome,
            shutdown,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/callback`: the redirect URI WorkOS must send the browser to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The authorization code from the first callback, after its `state` was checked; then
    /// the server stops (after answering the browser).
    pub async fn wait(self, timeout: Duration) -> Result<String, LoginError> {
        let outcome = tokio::time::timeout(timeout, self.outcome).await;
        let _ = self.shutdown.send(());
        // The browser's page is on its way; do not let a stuck connection hold the CLI.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        match outcome {
            Err(_) => Err(LoginError::Timeout {
                waited: timeout,
                redirect_uri: self.redirect_uri,
            }),
            // The sender lives as long as the server; it cannot be dropped before this.
            Ok(Err(_)) => Err(LoginError::IncompleteCallback(
                "the callback server stopped".to_owned(),
            )),
            Ok(Ok(Outcome::Code(code))) => Ok(code),
            Ok(Ok(Outcome::Refused(error))) => Err(error),
        }
    }
}

async fn callback(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let Some(report) = shared
        .report
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
    else {
        return page(
            StatusCode::CONFLICT,
            "This sign-in has already finished. Run wikibot workos login again to sign in once more.",
        );
    };
    let outcome = check(query.as_deref().unwrap_or_default(), &shared.state);
    let (status, text) = match &outcome {
        Outcome::Code(_) => (
            StatusCode::OK,
            "Signed in to WorkOS. Return to the terminal: wikibot prints your profile there. You can close this tab.".to_owned(),
        ),
        Outcome::Refused(error) => (
            StatusCode::BAD_REQUEST,
            format!("The sign-in did not complete: {error}"),
        ),
    };
    // The CLI may have given up (timeout) and dropped the receiver; the page still answers.
    let _ = report.send(outcome);
    page(status, &text)
}

/// Reads the callback's query: the `state` first (nothing else is trusted without it), then
/// the provider's `error` or the `code`.
fn check(query: &str, expected_state: &str) -> Outcome {
    let mut state = Vec::new();
    let mut code = Vec::new();
    let mut error = Vec::new();
    let mut description = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "state" => state.push(value.into_owned()),
            "code" => code.push(value.into_owned()),
            "error" => error.push(value.into_owned()),
            "error_description" => description.push(value.into_owned()),
            _ => {}
        }
    }
    let state_matches = match state.as_slice() {
        [state] => bool::from(state.as_bytes().ct_eq(expected_state.as_bytes())),
        _ => false,
    };
    if !state_matches {
        return Outcome::Refused(LoginError::WrongState);
    }
    match (error.as_slice(), code.as_slice()) {
        ([error], _) => Outcome::Refused(LoginError::Provider {
            error: untrusted(error),
            description: description.first().map(|text| untrusted(text)),
        }),
        ([], [code]) if !code.is_empty() => Outcome::Code(code.clone()),
        _ => Outcome::Refused(LoginError::IncompleteCallback(format!(
            "{} code and {} error parameters",
            code.len(),
            error.len()
        ))),
    }
}

fn page(status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>wikibot workos login</title></head>\n<body><p>{}</p></body></html>\n",
        html_escape(text)
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(outcome: Outcome) -> LoginError {
        match outcome {
            Outcome::Refused(error) => error,
            Outcome::Code(code) => panic!("accepted code {code}"),
        }
    }

    #[test]
    fn a_code_with_the_right_state_is_accepted() {
        match check("code=abc&state=s1", "s1") {
            Outcome::Code(code) => assert_eq!(code, "abc"),
            Outcome::Refused(error) => panic!("{error}"),
        }
    }

    #[test]
    fn the_state_is_checked_before_anything_else() {
        for query in [
            "code=abc",
            "code=abc&state=s2",
            "code=abc&state=s1&state=s1",
            "code=abc&state=",
            "error=access_denied&state=other",
        ] {
            assert!(
                matches!(refused(check(query, "s1")), LoginError::WrongState),
                "{query}"
            );
        }
    }

    #[test]
    fn provider_errors_are_reported_escaped() {
        let error = refused(check(
            "error=access_denied&error_description=no%0Athanks%1b%5B2J&state=s1",
            "s1",
        ));
        let message = error.to_string();
        assert!(message.contains("access_denied"), "{message}");
        assert!(message.contains(r"no\nthanks"), "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
    }

    #[test]
    fn callbacks_without_one_code_are_incomplete() {
        for query in ["state=s1", "code=&state=s1", "code=a&code=b&state=s1"] {
            assert!(
                matches!(
                    refused(check(query, "s1")),
                    LoginError::IncompleteCallback(_)
                ),
                "{query}"
            );
        }
    }

    #[test]
    fn pages_escape_html() {
        assert_eq!(
            html_escape("<script>\"&'"),
            "&lt;script&gt;&quot;&amp;&#39;"
        );
    }
}
