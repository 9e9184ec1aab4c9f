//! Browser sessions for the registrar pages. Signing in takes an API token
//! (the same tokens and roles as the REST API); the browser then holds only
//! a random session id in an HttpOnly, SameSite=Strict cookie (Secure when
//! the public URL is https). The database keeps a hash of that id, the
//! token it stands for and a per-session CSRF token that every form carries.
//!
//! A session ends at sign-out, after [`SESSION_TTL`], or as soon as its API
//! token is revoked: every request joins the session to a live token.

use crate::http::auth::RegistrarCaller;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use cookie::{Cookie, SameSite};
use gradebook_projections::db::Db;
use subtle::ConstantTimeEq;

use super::UiError;
use crate::http::auth::Caller;
use crate::http::SharedState;
use crate::services::api_tokens::secret;
use crate::services::api_tokens::ApiRole;
use crate::services::ui_sessions;

/// The session cookie.
pub const COOKIE: &str = "gb_session";
/// A short-lived cookie that pairs the sign-in form with the browser that
/// asked for it (double submit: there is no session to hold a token yet).
pub const SIGN_IN_COOKIE: &str = "gb_sign_in";
/// How long a session lasts from sign-in, whatever it is used for.
pub const SESSION_TTL: Duration = Duration::hours(8);

/// The signed-in person: their token's id and role, and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub caller: Caller,
    pub token_name: Option<String>,
    pub csrf: String,
}

impl Viewer {
    pub fn role(&self) -> ApiRole {
        self.caller.role
    }

    pub fn is_registrar(&self) -> bool {
        self.caller.role == ApiRole::Registrar
    }

    /// Refuses a form whose CSRF field is not this session's token.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), UiError> {
        if same_secret(sent.unwrap_or_default(), &self.csrf) {
            Ok(())
        } else {
            Err(csrf_refused())
        }
    }

    /// A registrar's form: this session's CSRF token, then the role; the
    /// caller the change is recorded as.
    pub fn registrar_form(&self, sent: Option<&str>) -> Result<RegistrarCaller, UiError> {
        self.check_csrf(sent)?;
        Ok(RegistrarCaller::check(self.caller.clone())?)
    }

    /// A 403 page unless the viewer holds one of `roles`.
    pub fn require(&self, roles: &[ApiRole]) -> Result<(), UiError> {
        self.caller.require(roles).map_err(UiError::from)
    }
}

pub fn csrf_refused() -> UiError {
    UiError::new(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form did not carry this session's security token, so nothing was changed. Go back, reload the page and send it again.",
    )
}

fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether cookies get the Secure flag: when the server is reached over https.
pub fn secure(state: &SharedState) -> bool {
    state.settings.public_url().starts_with("https://")
}

/// The value of cookie `name` in the request, if any.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` value for the pages: HttpOnly, SameSite=Strict, path /ui,
/// Secure over https; `None` clears the cookie.
pub fn set_cookie(
    state: &SharedState,
    name: &str,
    value: Option<&str>,
    max_age: Duration,
) -> HeaderValue {
    cookie_header(name, value, secure(state), max_age)
}

fn cookie_header(name: &str, value: Option<&str>, secure: bool, max_age: Duration) -> HeaderValue {
    let mut c = Cookie::build((name.to_string(), value.unwrap_or_default().to_string()))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    let seconds = if value.is_some() {
        max_age.num_seconds()
    } else {
        0
    };
    c.set_max_age(cookie::time::Duration::seconds(seconds));
    HeaderValue::from_str(&c.to_string()).expect("cookie values are ASCII")
}

/// A fresh random secret for the sign-in form.
pub fn new_sign_in_nonce() -> String {
    secret()
}

/// Whether the sign-in form's nonce matches the browser's cookie.
pub fn sign_in_nonce_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie_value(headers, SIGN_IN_COOKIE).is_some_and(|c| same_secret(sent, &c))
}

/// Checks an API token and opens a session for it; returns the cookie value.
/// `Ok(None)` when the token is unknown or revoked.
pub async fn open(db: &Db, api_token: &str) -> Result<Option<String>, sqlx::Error> {
    ui_sessions::open(db, api_token, SESSION_TTL).await
}

/// Ends a session (sign-out).
pub async fn close(db: &Db, session_id: &str) -> Result<(), sqlx::Error> {
    ui_sessions::close(db, session_id).await
}

/// The live session a cookie names: unexpired, and its token not revoked.
pub async fn lookup(db: &Db, session_id: &str) -> Result<Option<Viewer>, sqlx::Error> {
    Ok(ui_sessions::lookup(db, session_id).await?.map(|s| Viewer {
        caller: Caller {
            token_id: s.token_id,
            role: s.role,
        },
        token_name: s.token_name,
        csrf: s.csrf,
    }))
}

/// A page that needs a session sends the browser to sign in, then back,
/// saying why when a session it had has ended.
pub struct SignInFirst {
    back: String,
    why: Option<&'static str>,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let next: String = url_encode(&self.back);
        let why = self.why.map(|w| format!("&why={w}")).unwrap_or_default();
        Redirect::to(&format!("/ui/sign-in?next={next}{why}")).into_response()
    }
}

/// What the sign-in page says for a `why` it was sent with.
pub fn why_text(why: Option<&str>) -> Option<&'static str> {
    match why {
        Some("expired") => Some("Your session has ended. Sign in again to go on where you were."),
        Some("unsent") => Some(
            "Your session ended before the form was sent, so nothing was changed. Sign in, then send it again.",
        ),
        _ => None,
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Only a path inside the pages is a place to go back to after sign-in.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/courses".to_string(),
    }
}

pub enum Rejection {
    SignIn(SignInFirst),
    Error(UiError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::SignIn(r) => r.into_response(),
            Rejection::Error(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<SharedState> for Viewer {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/ui/courses".into());
        // After a POST the way back is the page the form was on (its
        // referrer, same-origin only), not the form's target.
        let get = parts.method == axum::http::Method::GET;
        let back = if get {
            back
        } else {
            let referrer = parts
                .headers
                .get(axum::http::header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| reqwest::Url::parse(r).ok())
                .filter(|u| {
                    let authority = match u.port() {
                        Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                        None => u.host_str().unwrap_or_default().to_string(),
                    };
                    parts.headers.get(axum::http::header::HOST)
                        == axum::http::HeaderValue::from_str(&authority).ok().as_ref()
                })
                .map(|u| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                });
            safe_next(referrer.as_deref())
        };
        let Some(id) = cookie_value(&parts.headers, COOKIE) else {
            return Err(Rejection::SignIn(SignInFirst { back, why: None }));
        };
        match lookup(&state.engine.db, &id).await {
            Ok(Some(v)) => Ok(v),
            // The browser had a session that has ended: say so, and for a
            // form, that it was not sent.
            Ok(None) => Err(Rejection::SignIn(SignInFirst {
                back,
                why: Some(if get { "expired" } else { "unsent" }),
            })),
            Err(e) => Err(Rejection::Error(UiError::from(
                crate::http::error::ApiError::from(crate::engine::EngineError::from(e)),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_pages_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/ui/courses/X")), "/ui/courses/X");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/api/courses",
            "/ui\\x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/courses", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui/courses");
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_over_https() {
        let over_https = cookie_header(COOKIE, Some("abc"), true, SESSION_TTL);
        let over_https = over_https.to_str().unwrap();
        for part in [
            "gb_session=abc",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/ui",
            "Max-Age=28800",
        ] {
            assert!(over_https.contains(part), "{part} missing: {over_https}");
        }
        let plain = cookie_header(COOKIE, Some("abc"), false, SESSION_TTL);
        assert!(!plain.to_str().unwrap().contains("Secure"));
        let cleared = cookie_header(COOKIE, None, true, SESSION_TTL);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn secrets_compare_only_when_equal_and_present() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("", ""));
        assert!(!same_secret("ab", "abc"));
    }
}
