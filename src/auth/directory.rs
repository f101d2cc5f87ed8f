//! WorkOS User Management lookups: a signed-in user's name, e-mail address and whether WorkOS
//! has verified it, from `GET /user_management/users/{id}` with the stack's WorkOS API key.
//!
//! AuthKit access tokens carry the user id (`sub`) but neither name nor e-mail (unless a JWT
//! template adds them, which [`super::authkit`] reads first). Commits need both, and the
//! access policy's e-mail and domain rules need a verified address, so the server asks WorkOS
//! — only then: reads by a caller the policy admits by id or organization never cause a
//! lookup, and writes look up lazily, just before they commit.
//!
//! Answers are cached across warm invocations: at most [`CACHE_CAPACITY`] users, each fresh
//! for [`CACHE_TTL`]; an older answer is used only when a refresh fails, up to
//! [`STALE_LIMIT`]. Failures are not cached, so the first write after WorkOS recovers
//! carries the real name; only a `429` holds lookups back, for its `Retry-After` (at most
//! [`MAX_BACKOFF`]), as WorkOS asks. Every request is bounded by [`REQUEST_TIMEOUT`]: a write
//! must not hang on WorkOS. No single-flight: Lambda serves one request per instance at a
//! time.
//!
//! This module must not log, return or format the API key (its `Debug` is redacted and the
//! header is marked sensitive), and must not send the caller's own token anywhere.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::{AuthMethod, Principal};

pub const DEFAULT_BASE_URL: &str = "https://api.workos.com";
/// Users remembered at once; the least recently fetched is dropped first.
pub const CACHE_CAPACITY: usize = 1000;
/// How long an answer is used without asking again.
pub const CACHE_TTL: Duration = Duration::from_secs(600);
/// How old an answer may be and still stand in when WorkOS cannot be reached.
pub const STALE_LIMIT: Duration = Duration::from_secs(3600);
/// The whole request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// What clients are told to wait after a failed lookup that named no time.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The longest a `429`'s `Retry-After` holds lookups back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The WorkOS API key (`sk_…`). Never printed.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// The error says what is wrong without repeating the key.
    pub fn new(raw: &str) -> Result<Self, String> {
        let key = raw.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(
                "must be a WorkOS API key (sk_…): visible ASCII characters, no spaces".into(),
            );
        }
        Ok(Self(key.to_owned()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where WorkOS is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// `https://api.workos.com` unless `WORKOS_BASE_URL` says otherwise (tests: a mock).
    pub base_url: Url,
    pub api_key: ApiKey,
}

/// What WorkOS says about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0:?} is not a WorkOS user id")]
    BadId(String),
    #[error("WorkOS has no user {0}")]
    NotFound(String),
    #[error("WorkOS could not be reached: {reason}")]
    Unavailable {
        reason: String,
        /// When asking again makes sense.
        retry_after: Duration,
    },
}

/// The user object of `GET /user_management/users/{id}` (the fields we use).
#[derive(Deserialize)]
struct UserObject {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl From<UserObject> for DirectoryUser {
    fn from(user: UserObject) -> Self {
        let nonblank = |v: Option<String>| {
            v.map(|s| s.trim().to_owned())
                .filter(|s: &String| !s.is_empty())
        };
        let joined = [nonblank(user.first_name), nonblank(user.last_name)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            name: nonblank(user.name).or_else(|| nonblank(Some(joined))),
            email: nonblank(user.email),
            email_verified: user.email_verified,
        }
    }
}

/// Bounded map from user id to (fetched at, answer).
struct UserCache {
    entries: HashMap<String, (Instant, DirectoryUser)>,
    capacity: usize,
}

impl UserCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, id: &str, max_age: Duration) -> Option<DirectoryUser> {
        self.entries
            .get(id)
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, user)| user.clone())
    }

    fn insert(&mut self, id: &str, user: DirectoryUser, at: Instant) {
        if !self.entries.contains_key(id) && self.entries.len() >= self.capacity {
            // O(capacity), and only when a new user arrives at a full cache.
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(id.to_owned(), (at, user));
    }
}

/// Looks WorkOS users up by id, with a cache.
pub struct Directory {
    http: reqwest::Client,
    users_url: Url,
    authorization: HeaderValue,
    cache: Mutex<UserCache>,
    /// No request before this instant (a `429`'s `Retry-After`).
    backoff_until: Mutex<Option<Instant>>,
    ttl: Duration,
}

impl fmt::Debug for Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Directory")
            .field("users_url", &self.users_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Directory {
    pub fn new(config: &DirectoryConfig) -> Result<Self, String> {
        let mut users_url = config.base_url.clone();
        users_url
            .path_segments_mut()
            .map_err(|()| format!("{} cannot be a WorkOS base URL", config.base_url))?
            .pop_if_empty()
            .extend(["user_management", "users", ""]);
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", config.api_key.0))
            .map_err(|_| "the WorkOS API key cannot be sent in a header".to_owned())?;
        authorization.set_sensitive(true);
        let http = crate::tls::client_builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot set up HTTPS for WorkOS: {e}"))?;
        Ok(Self {
            http,
            users_url,
            authorization,
            cache: Mutex::new(UserCache::new(CACHE_CAPACITY)),
            backoff_until: Mutex::new(None),
            ttl: CACHE_TTL,
        })
    }

    /// Another freshness time than [`CACHE_TTL`] (tests).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The user `id` (`user_…`), from the cache or WorkOS.
    pub async fn user(&self, id: &str) -> Result<DirectoryUser, DirectoryError> {
        if !is_user_id(id) {
            return Err(DirectoryError::BadId(id.chars().take(40).collect()));
        }
        if let Some(user) = self.cache().get(id, self.ttl) {
            return Ok(user);
        }
        let fetched = match self.backoff_remaining() {
            Some(wait) => Err(DirectoryError::Unavailable {
                reason: "WorkOS asked us to slow down (429)".into(),
                retry_after: wait,
            }),
            None => self.fetch(id).await,
        };
        match fetched {
            Ok(user) => {
                self.cache().insert(id, user.clone(), Instant::now());
                Ok(user)
            }
            Err(e @ DirectoryError::Unavailable { .. }) => {
                match self.cache().get(id, STALE_LIMIT) {
                    Some(stale) => {
                        tracing::warn!(user = %id, error = %e, "WorkOS lookup failed; using the answer from earlier");
                        Ok(stale)
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `principal` with the name and e-mail WorkOS has for it, for a commit. Only AuthKit
    /// callers whose token did not carry both are looked up; when WorkOS cannot answer, the
    /// principal keeps its fallback identity (`user_…@users.wikibot.invalid`) and a warning is
    /// logged (the user id, never a token).
    pub async fn author(&self, principal: &Principal) -> Principal {
        if principal.method != AuthMethod::AuthKit || principal.identified {
            return principal.clone();
        }
        match self.user(&principal.subject).await {
            Ok(user) => principal.clone().with_directory_user(&user),
            Err(e) => {
                tracing::warn!(
                    user = %principal.subject,
                    error = %e,
                    "could not resolve the author's name and e-mail from WorkOS; this commit is authored by the user id"
                );
                principal.clone()
            }
        }
    }

    #[tracing::instrument(name = "workos.get_user", skip_all)]
    async fn fetch(&self, id: &str) -> Result<DirectoryUser, DirectoryError> {
        let unavailable = |reason: String| DirectoryError::Unavailable {
            reason,
            retry_after: DEFAULT_RETRY_AFTER,
        };
        let mut url = self.users_url.clone();
        url.path_segments_mut()
            .map_err(|()| unavailable("the WorkOS URL has no path".into()))?
            .pop()
            .push(id);
        let response = self
            .http
            .get(url)
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        match response.status() {
            StatusCode::OK => response
                .json::<UserObject>()
                .await
                .map(DirectoryUser::from)
                .map_err(|e| unavailable(format!("an unreadable answer: {}", e.without_url()))),
            StatusCode::NOT_FOUND => Err(DirectoryError::NotFound(id.to_owned())),
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after(response.headers())
                    .unwrap_or(DEFAULT_RETRY_AFTER)
                    .min(MAX_BACKOFF);
                *self.backoff() = Some(Instant::now() + wait);
                Err(DirectoryError::Unavailable {
                    reason: "WorkOS asked us to slow down (429)".into(),
                    retry_after: wait,
                })
            }
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                tracing::error!(%status, "WorkOS refused the API key: check WORKOS_API_KEY");
                Err(unavailable(format!(
                    "WorkOS refused the API key ({status})"
                )))
            }
            status => Err(unavailable(format!("WorkOS answered {status}"))),
        }
    }

    fn backoff_remaining(&self) -> Option<Duration> {
        let mut until = self.backoff();
        match *until {
            Some(t) if t > Instant::now() => Some(t - Instant::now()),
            Some(_) => {
                *until = None;
                None
            }
            None => None,
        }
    }

    fn cache(&self) -> MutexGuard<'_, UserCache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn backoff(&self) -> MutexGuard<'_, Option<Instant>> {
        self.backoff_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not worth parsing here).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.max(1)))
}

/// `user_` and letters and digits: what goes into the URL path is never anything else.
pub fn is_user_id(id: &str) -> bool {
    id.strip_prefix("user_")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
        && id.len() <= 100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> DirectoryUser {
        DirectoryUser {
            name: Some(name.into()),
            email: None,
            email_verified: false,
        }
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_oldest() {
        let mut cache = UserCache::new(2);
        let start = Instant::now();
        cache.insert("user_a", user("a"), start);
        cache.insert("user_b", user("b"), start + Duration::from_millis(1));
        cache.insert("user_a", user("a2"), start + Duration::from_millis(2));
        cache.insert("user_c", user("c"), start + Duration::from_millis(3));
        assert_eq!(cache.entries.len(), 2);
        assert!(
            cache.get("user_b", Duration::MAX).is_none(),
            "the oldest went"
        );
        assert_eq!(
            cache.get("user_a", Duration::MAX).unwrap().name.as_deref(),
            Some("a2")
        );
        assert!(cache.get("user_c", Duration::MAX).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            cache.get("user_c", Duration::from_millis(1)).is_none(),
            "too old for this use"
        );
    }

    #[test]
    fn names_come_from_name_or_first_and_last() {
        let parse =
            |json: &str| DirectoryUser::from(serde_json::from_str::<UserObject>(json).unwrap());
        let ada = parse(
            r#"{"id":"user_1","email":"ada@example.com","email_verified":true,"first_name":"Ada","last_name":"Lovelace"}"#,
        );
        assert_eq!(ada.name.as_deref(), Some("Ada Lovelace"));
        assert!(ada.email_verified);
        assert_eq!(
            parse(r#"{"first_name":" ","last_name":"Hopper","name":null}"#)
                .name
                .as_deref(),
            Some("Hopper")
        );
        assert_eq!(
            parse(r#"{"name":"Grace H.","first_name":"Grace"}"#)
                .name
                .as_deref(),
            Some("Grace H.")
        );
        let bare = parse(r#"{"email":"x@example.com"}"#);
        assert_eq!((bare.name, bare.email_verified), (None, false));
    }

    #[test]
    fn api_keys_never_print_and_ids_are_checked() {
        let key = ApiKey::new("sk_test_secret").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert!(ApiKey::new("sk bad").is_err());
        assert!(is_user_id("user_01ABC"));
        for bad in ["user_", "user_01/../x", "org_01", "user_01?x=1", ""] {
            assert!(!is_user_id(bad), "{bad}");
        }
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
