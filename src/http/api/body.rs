//! Request-body helpers shared by the registrar API handlers: decimals
//! accepted as JSON strings or numbers, "null clears" fields for PATCH, an
//! optional JSON body, and the command metadata of a caller.

use std::str::FromStr;

use axum::body::Bytes;
use axum::http::HeaderMap;
use gradebook_domain::{CommandMeta, Source};
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::http::auth::Caller;
use crate::http::error::ApiError;

/// A decimal read from `"83.25"` or `83.25`. Numbers go through their
/// shortest decimal text, so `0.1` is exactly 0.1; NaN, infinities and
/// values too large for a decimal are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec(pub Decimal);

const DEC_HINT: &str = "must be a decimal number such as \"83.25\" (a string or a number)";

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parsed = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => parse_decimal_text(s.trim()),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(Decimal::from(i))
                } else if let Some(u) = n.as_u64() {
                    Some(Decimal::from(u))
                } else {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .and_then(|f| parse_decimal_text(&f.to_string()))
                }
            }
            _ => None,
        };
        parsed.map(Dec).ok_or_else(|| D::Error::custom(DEC_HINT))
    }
}

fn parse_decimal_text(s: &str) -> Option<Decimal> {
    if s.is_empty() || s.chars().any(|c| c.is_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// For PATCH fields: absent is `None`, `null` is `Some(None)`.
pub fn nullable<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A JSON body that may be left out entirely (no bytes); when present it
/// must be JSON with the JSON content type.
pub fn optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        if e.inner().is_data() {
            ApiError::unprocessable("invalid_body", e.to_string())
        } else {
            ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
        }
    })
}

/// The metadata every event of this request carries.
pub fn meta(caller: &Caller, source: Source) -> CommandMeta {
    caller.meta(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(v: serde_json::Value) -> Option<Decimal> {
        serde_json::from_value::<Dec>(v).ok().map(|d| d.0)
    }

    #[test]
    fn decimals_are_read_from_strings_and_numbers_exactly() {
        assert_eq!(dec(serde_json::json!("83.25")), Some(Decimal::new(8325, 2)));
        assert_eq!(dec(serde_json::json!(83.25)), Some(Decimal::new(8325, 2)));
        assert_eq!(dec(serde_json::json!(0.1)), Some(Decimal::new(1, 1)));
        assert_eq!(dec(serde_json::json!(60)), Some(Decimal::from(60)));
        assert_eq!(dec(serde_json::json!("1e2")), Some(Decimal::from(100)));
    }

    #[test]
    fn text_that_is_not_a_finite_decimal_is_refused() {
        for bad in ["abc", "NaN", "inf", "", "1e309", "12,5"] {
            assert_eq!(dec(serde_json::json!(bad)), None, "{bad}");
        }
        assert_eq!(dec(serde_json::json!(1e300)), None);
        assert_eq!(dec(serde_json::json!(true)), None);
        assert_eq!(dec(serde_json::Value::Null), None);
    }
}
