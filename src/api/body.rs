//! Request-body helpers shared by the registrar API handlers: decimals
//! accepted as JSON strings or numbers, "null clears" fields for PATCH, an
//! optional JSON body, and the command metadata of a caller.

use axum::body::Bytes;
use axum::http::HeaderMap;
use gradebook_domain::{CommandMeta, Source};
use rust_decimal::Decimal;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::json;

/// A decimal read from `"83.25"` or `83.25`, from the digits sent (a JSON
/// number never passes through a float), and kept only exactly: NaN,
/// infinities, values too large for a decimal and numbers with more digits
/// than a decimal holds are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dec(pub Decimal);

const DEC_HINT: &str = "must be a decimal number such as \"83.25\" (a string or a number)";

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        match json::decimal(&raw) {
            Ok(Some(n)) if n.read.is_exact() => Ok(Dec(n.value())),
            Ok(Some(_)) => Err(D::Error::custom(json::too_many_digits("the number"))),
            Ok(None) | Err(_) => Err(D::Error::custom(DEC_HINT)),
        }
    }
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

    /// Reads a `Dec` from JSON text, as a request body is read.
    fn dec(text: &str) -> Option<String> {
        serde_json::from_str::<Dec>(text)
            .ok()
            .map(|d| d.0.to_string())
    }

    #[test]
    fn decimals_are_read_from_strings_and_numbers_exactly() {
        assert_eq!(dec("\"83.25\"").as_deref(), Some("83.25"));
        assert_eq!(dec("83.25").as_deref(), Some("83.25"));
        assert_eq!(dec("0.1").as_deref(), Some("0.1"));
        assert_eq!(dec("60").as_deref(), Some("60"));
        assert_eq!(dec("\"1e2\"").as_deref(), Some("100"));
        assert_eq!(dec(" \" 7.50 \"").as_deref(), Some("7.50"));
        for digits in ["0.19999999999999998", "1.6666666666666665"] {
            assert_eq!(dec(digits).as_deref(), Some(digits));
            assert_eq!(dec(&format!("\"{digits}\"")).as_deref(), Some(digits));
        }
        assert_eq!(
            dec("1.0000000000000002e-05").as_deref(),
            Some("0.000010000000000000002")
        );
    }

    #[test]
    fn text_that_is_not_a_finite_decimal_is_refused() {
        for bad in ["abc", "NaN", "inf", "", "1e309", "12,5", "1_000"] {
            assert_eq!(dec(&format!("\"{bad}\"")), None, "{bad}");
        }
        for bad in ["1e300", "true", "null", "[1]", "{}"] {
            assert_eq!(dec(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_number_a_decimal_cannot_hold_exactly_is_refused_not_rounded() {
        for text in ["0.12345678901234567890123456789012345", "\"1e-40\""] {
            let err = serde_json::from_str::<Dec>(text).unwrap_err().to_string();
            assert!(err.contains("more digits than a decimal holds"), "{err}");
        }
    }
}
