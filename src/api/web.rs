//! What the API does for browsers and against the network: the security headers on every
//! response, the hall UI's cookie sessions with their CSRF tokens, and the per-address limit on
//! sign-in attempts.
//!
//! **Cookie sessions.** A sign-in with `"cookie": true` (the hall UI's) gets its session token
//! in an `HttpOnly; SameSite=Strict` cookie scoped to `/api/v1` (`Secure` when the server
//! speaks HTTPS: browsers refuse `Secure` cookies over plain HTTP on anything but localhost,
//! and a hall without TLS must keep working), and in the body, instead of the token, a CSRF
//! token: a keyed hash (HMAC-SHA-256, key drawn at start) of the session token. Each session
//! has its own cookie, `hallctl_session_<id>` (`<id>`: the token's public fingerprint), so that
//! several pages of one browser (the hall view, a station terminal, the auditor view) keep
//! their own sign-ins. A request authenticated by cookie sends `X-CSRF-Token`, which picks its
//! session's cookie and, being unreadable to other sites, proves the request comes from the
//! page that signed in. It is required on every request that changes something (`POST`, `PUT`,
//! `PATCH`, `DELETE`), where an `Origin` header, when sent, must also name this host. A `GET`
//! without it is answered when the browser holds exactly one session cookie. A request with an
//! `Authorization` header is authenticated by that header alone (station terminals, scripts,
//! the demo): a browser never adds one by itself, so it needs no CSRF token.
//!
//! **Sign-in limit.** Each client address has a token bucket (`server.signin_burst` attempts,
//! one more every `server.signin_refill_secs`). An attempt takes a token before anything is
//! checked; the right PIN gives it back, so the limit falls on wrong PINs (and on floods). Without a token the answer is `429` with `Retry-After`, and the PIN is not looked
//! at: the attempt does not count toward the account's lockout. The table of addresses holds at
//! most [`SIGNIN_TABLE_MAX`] entries: a full one first forgets the buckets that have refilled
//! (the same as never seen), then the least recently used.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::Mac as _;
use sha2::Digest as _;

use super::error::ApiError;

/// The prefix of the session cookies' names (`hallctl_session_<id>`).
pub const SESSION_COOKIE_PREFIX: &str = "hallctl_session_";

/// The header a cookie-authenticated request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where the session cookies are sent: the API only, never the pages or assets.
pub const COOKIE_PATH: &str = "/api/v1";

/// `Strict-Transport-Security` when the server speaks HTTPS: one year.
pub const HSTS: &str = "max-age=31536000";

/// The `Content-Security-Policy` of responses that are not pages (the API's JSON, errors,
/// assets): nothing may load from them, nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Most client addresses the sign-in limit remembers.
pub const SIGNIN_TABLE_MAX: usize = 10_000;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The web side's settings and state, shared by every request.
pub struct WebSecurity {
    /// The server speaks HTTPS: `Secure` cookies and HSTS.
    pub tls: bool,
    csrf_key: [u8; 32],
    signin: SignInLimiter,
}

impl std::fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSecurity")
            .field("tls", &self.tls)
            .field("signin", &self.signin.rule)
            .finish_non_exhaustive()
    }
}

impl WebSecurity {
    /// Settings for a server (`tls`: it speaks HTTPS), with a fresh CSRF key.
    ///
    /// # Errors
    /// The operating system's random source failed.
    pub fn new(tls: bool, signin: SignInRule) -> anyhow::Result<Self> {
        let mut csrf_key = [0u8; 32];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut csrf_key)
            .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
        Ok(WebSecurity {
            tls,
            csrf_key,
            signin: SignInLimiter::new(signin, SIGNIN_TABLE_MAX),
        })
    }

    /// The sign-in limit.
    pub fn signin(&self) -> &SignInLimiter {
        &self.signin
    }

    fn mac(&self, token: &str) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.csrf_key).expect("HMAC takes any key length");
        m.update(b"hallctl csrf v1\0");
        m.update(token.as_bytes());
        m
    }

    /// The CSRF token of a session token (64 hex digits).
    pub fn csrf_token(&self, token: &str) -> String {
        hex::encode(self.mac(token).finalize().into_bytes())
    }

    /// Whether `csrf` is the CSRF token of `token` (constant time).
    pub fn csrf_matches(&self, token: &str, csrf: &str) -> bool {
        match hex::decode(csrf.trim()) {
            Ok(bytes) => self.mac(token).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The name of `token`'s session cookie.
    pub fn cookie_name(token: &str) -> String {
        let h = sha2::Sha256::digest(token.as_bytes());
        format!("{SESSION_COOKIE_PREFIX}{}", hex::encode(&h[..8]))
    }

    /// `Set-Cookie` for a session opened now, living `max_age`.
    pub fn session_cookie(&self, token: &str, max_age: Duration) -> HeaderValue {
        let secure = if self.tls { "; Secure" } else { "" };
        let v = format!(
            "{}={token}; Path={COOKIE_PATH}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
            Self::cookie_name(token),
            max_age.as_secs()
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` that removes the cookie `name`.
    pub fn clear_cookie(&self, name: &str) -> Option<HeaderValue> {
        let secure = if self.tls { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
        ))
        .ok()
    }
}

/// How a request proved who it is.
#[derive(Clone)]
pub struct Credential {
    /// The session or service token.
    pub token: String,
    /// The session cookie's name, when it came in a cookie.
    pub cookie: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("token", &"<redacted>")
            .field("cookie", &self.cookie)
            .finish()
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

fn csrf_refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf", message)
}

/// Whether a method changes state (and so needs the CSRF token with a cookie).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The request's credential: `Authorization: Bearer <token>`, else a session cookie (see the
/// module docs for the CSRF and `Origin` rules).
///
/// # Errors
/// 401 without a credential (or with several cookies and no CSRF token to choose); 403 for a
/// cookie-authenticated request that changes state without the right CSRF token, or from
/// another origin.
pub fn credential(
    method: &Method,
    headers: &HeaderMap,
    web: &WebSecurity,
) -> Result<Credential, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let token = v
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <token>`"))?
            .trim();
        return Ok(Credential {
            token: token.to_string(),
            cookie: None,
        });
    }
    let cookies = session_cookies(headers);
    if cookies.is_empty() {
        return Err(unauthenticated(
            "sign in first: send `Authorization: Bearer <token>` (or, in the hall UI, the \
             session cookie with its X-CSRF-Token)",
        ));
    }
    let csrf = headers
        .get(CSRF_HEADER)
        .map(|v| v.to_str().unwrap_or_default());
    let unsafe_method = changes_state(method);
    if unsafe_method {
        same_origin(headers)?;
    }
    let chosen = match csrf {
        Some(csrf) => cookies
            .iter()
            .find(|(_, token)| web.csrf_matches(token, csrf))
            .ok_or_else(|| {
                csrf_refused(
                    "the X-CSRF-Token does not belong to any session of this browser: sign in \
                     again; nothing was changed",
                )
            })?,
        None if unsafe_method => {
            return Err(csrf_refused(
                "a request signed in by cookie must send the session's X-CSRF-Token to change \
                 anything; nothing was changed",
            ));
        }
        None if cookies.len() == 1 => &cookies[0],
        None => {
            return Err(unauthenticated(
                "this browser holds several hall UI sessions: send X-CSRF-Token to say which",
            ));
        }
    };
    Ok(Credential {
        token: chosen.1.to_string(),
        cookie: Some(chosen.0.to_string()),
    })
}

/// The `hallctl_session_*` cookies of the request: (name, token).
fn session_cookies(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(name, value)| name.starts_with(SESSION_COOKIE_PREFIX) && !value.is_empty())
        .take(64)
        .collect()
}

/// An `Origin` header, when present, must name the host the request was sent to.
///
/// # Errors
/// 403 naming both.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or_default();
    if host.is_empty() || !authority.eq_ignore_ascii_case(host) {
        return Err(csrf_refused(format!(
            "cross-origin request refused: Origin {origin:?} is not this host ({host:?}); \
             nothing was changed"
        )));
    }
    Ok(())
}

/// The security headers of every response (pages, assets, the API, errors included):
/// `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`,
/// a `Content-Security-Policy` where the response has none (pages bring their own),
/// `Cache-Control: no-store` on the API and `/metrics` (the UI's assets keep their own
/// caching), and `Strict-Transport-Security` over HTTPS.
pub async fn security_headers(State(tls): State<bool>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path == "/metrics";
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, name: HeaderName, v: &'static str| {
        h.insert(name, HeaderValue::from_static(v));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(h, header::CONTENT_SECURITY_POLICY, API_CSP);
    }
    if api || !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    r
}

/// The sign-in limit's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInRule {
    /// Attempts in a burst (the bucket's size).
    pub burst: u32,
    /// Time for one attempt to come back.
    pub refill: Duration,
}

impl Default for SignInRule {
    fn default() -> Self {
        SignInRule {
            burst: 10,
            refill: Duration::from_secs(6),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens at `at`.
    tokens: f64,
    at: Instant,
}

/// Token buckets per client address (see the module docs).
#[derive(Debug)]
pub struct SignInLimiter {
    rule: SignInRule,
    cap: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl SignInLimiter {
    /// A limiter remembering at most `cap` addresses.
    pub fn new(rule: SignInRule, cap: usize) -> Self {
        SignInLimiter {
            rule,
            cap: cap.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let per_sec = 1.0 / self.rule.refill.as_secs_f64().max(1e-3);
        (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec)
            .min(f64::from(self.rule.burst))
    }

    /// Takes one attempt for `addr` at `now`.
    ///
    /// # Errors
    /// How long until the next attempt is allowed.
    pub fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let burst = f64::from(self.rule.burst);
        if !map.contains_key(&addr) && map.len() >= self.cap {
            map.retain(|_, b| {
                let per_sec = 1.0 / self.rule.refill.as_secs_f64().max(1e-3);
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
            if map.len() >= self.cap
                && let Some(oldest) = map.iter().min_by_key(|(_, b)| b.at).map(|(a, _)| *a)
            {
                map.remove(&oldest);
            }
        }
        let b = map.entry(addr).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let level = self.level(b, now);
        if level >= 1.0 {
            *b = Bucket {
                tokens: level - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *b = Bucket {
                tokens: level,
                at: now,
            };
            Err(self.rule.refill.mul_f64(1.0 - level))
        }
    }

    /// Gives back the attempt `take` took (the sign-in succeeded).
    pub fn give_back(&self, addr: IpAddr, now: Instant) {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get_mut(&addr) {
            let level = self.level(b, now);
            *b = Bucket {
                tokens: (level + 1.0).min(f64::from(self.rule.burst)),
                at: now,
            };
        }
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The client's address, when the server knows it (a request served over a socket; calls of
/// the router in process have none, and are not limited).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// `429 Too Many Requests` with `Retry-After` (whole seconds, rounded up).
pub fn too_many(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many sign-in attempts from this address: try again in {secs} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_one_per_refill() {
        let l = SignInLimiter::new(
            SignInRule {
                burst: 3,
                refill: Duration::from_secs(6),
            },
            100,
        );
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.take(a, t).is_ok());
        }
        let wait = l.take(a, t).expect_err("refused");
        assert_eq!(wait, Duration::from_secs(6));
        // Another address has its own bucket.
        assert!(l.take("192.0.2.2".parse().expect("address"), t).is_ok());
        // Half a refill later: still refused, three seconds to go.
        let wait = l.take(a, t + Duration::from_secs(3)).expect_err("refused");
        assert_eq!(wait.as_secs(), 3);
        assert!(l.take(a, t + Duration::from_secs(6)).is_ok());
        // A success gives its attempt back.
        assert!(l.take(a, t + Duration::from_secs(6)).is_err());
        l.give_back(a, t + Duration::from_secs(6));
        assert!(l.take(a, t + Duration::from_secs(6)).is_ok());
    }

    #[test]
    fn the_table_of_addresses_is_bounded() {
        let l = SignInLimiter::new(
            SignInRule {
                burst: 2,
                refill: Duration::from_secs(60),
            },
            4,
        );
        let t = Instant::now();
        for i in 0..100u8 {
            let a = IpAddr::from([198, 51, 100, i]);
            let _ = l.take(a, t + Duration::from_millis(u64::from(i)));
            assert!(l.len() <= 4, "{} addresses", l.len());
        }
        // The most recent addresses are the ones kept: 198.51.100.99 is still charged.
        let last = IpAddr::from([198, 51, 100, 99]);
        assert!(l.take(last, t + Duration::from_millis(100)).is_ok());
        assert!(l.take(last, t + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn csrf_tokens_belong_to_their_session_only() {
        let w = WebSecurity::new(false, SignInRule::default()).expect("key");
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let csrf = w.csrf_token(&a);
        assert_eq!(csrf.len(), 64);
        assert!(w.csrf_matches(&a, &csrf));
        assert!(!w.csrf_matches(&b, &csrf));
        assert!(!w.csrf_matches(&a, "zz"));
        assert!(!w.csrf_matches(&a, ""));
        // Another server (another key) does not accept it.
        let w2 = WebSecurity::new(false, SignInRule::default()).expect("key");
        assert!(!w2.csrf_matches(&a, &csrf));
        assert!(WebSecurity::cookie_name(&a).starts_with(SESSION_COOKIE_PREFIX));
        let c = w.session_cookie(&a, Duration::from_secs(60));
        let c = c.to_str().expect("ascii");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(!c.contains("Secure"), "{c}");
        let tls = WebSecurity::new(true, SignInRule::default()).expect("key");
        assert!(
            tls.session_cookie(&a, Duration::from_secs(60))
                .to_str()
                .expect("ascii")
                .ends_with("; Secure")
        );
    }
}
