//! Small pieces of the LTI wire format shared by the service endpoints:
//! answers with a spec media type, the OAuth error shape, decimals as JSON
//! numbers (read in by `crate::json`), and `Link: <url>; rel="next"` paging.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub const LINEITEM_CONTAINER: &str = "application/vnd.ims.lis.v2.lineitemcontainer+json";
pub const LINEITEM: &str = "application/vnd.ims.lis.v2.lineitem+json";
pub const RESULT_CONTAINER: &str = "application/vnd.ims.lis.v2.resultcontainer+json";
pub const MEMBERSHIP_CONTAINER: &str = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json";

/// Page size when a tool asks for none, and the most it may ask for.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// A JSON body with a given media type, status and optional next-page link.
pub fn typed(
    status: StatusCode,
    media_type: &'static str,
    body: &Value,
    next: Option<String>,
) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Some(url) = next {
        // One header line with the quotes: pylti1p3 and Moodle parse exactly this.
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    res
}

/// The RFC 6749 error of the OAuth endpoints (`/lti/token`, `/lti/register`).
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    #[schema(example = "invalid_client")]
    pub error: String,
    pub error_description: String,
}

/// An RFC 6749 §5.2 error: `{"error", "error_description"}`.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }

    pub fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub fn server(cause: impl std::fmt::Display) -> Self {
        let request_id = crate::http::error::current_request_id();
        tracing::error!(%cause, request_id, "internal error in an OAuth endpoint");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            format!(
                "the platform cannot answer right now; retry shortly (request id {request_id})"
            ),
        )
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "error_description": self.description});
        let mut res = (self.status, axum::Json(body)).into_response();
        // RFC 6749 §5.1/5.2: token answers must not be cached.
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// A decimal as a JSON number, as AGS wants it. The value is exact in the
/// store; on the wire a JSON number goes through `f64` unless it is whole,
/// which prints every value a gradebook holds (at most 15 significant
/// digits) exactly as stored.
pub fn number(d: Decimal) -> Value {
    let d = d.normalize();
    if d.fract().is_zero() {
        if let Ok(i) = i64::try_from(d) {
            return Value::from(i);
        }
    }
    d.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(d.to_string()))
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL with query pairs (values encoded).
pub fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return base.to_string();
    }
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{base}?{}", q.join("&"))
}

/// Reads `limit` and `cursor` (a position in digits, so it survives
/// clients that lower-case the whole `Link` header).
pub fn paging(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(usize, usize), crate::http::error::ApiError> {
    use crate::http::error::ApiError;
    let limit = match limit {
        None => DEFAULT_LIMIT,
        Some(s) => match s.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "limit must be a whole number of 1 or more",
                ))
            }
        },
    };
    let cursor = match cursor {
        None => 0,
        Some(s) => s.trim().parse::<usize>().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "cursor must be the value from a rel=\"next\" link",
            )
        })?,
    };
    Ok((limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_go_out_as_the_numbers_they_are() {
        assert_eq!(
            number(Decimal::from_str("72.50000").unwrap()).to_string(),
            "72.5"
        );
        assert_eq!(number(Decimal::from_str("100").unwrap()).to_string(), "100");
        assert_eq!(number(Decimal::ZERO).to_string(), "0");
        assert_eq!(number(Decimal::from_str("0.1").unwrap()).to_string(), "0.1");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            with_query("http://x/a", &[("tag", "a b&c".into())]),
            "http://x/a?tag=a%20b%26c"
        );
    }
}
