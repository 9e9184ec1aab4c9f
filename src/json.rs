//! JSON read with each number's text as sent. serde_json turns a number
//! into a binary float before anyone sees it (`0.19999999999999998` comes
//! out as 0.2), so decimals are read from the member's own text instead,
//! captured with serde_json's `RawValue`; see
//! docs/decisions/0009-numbers-read-from-their-text.md.

use std::borrow::Cow;
use std::collections::HashMap;

use gradebook_domain::number::{read_decimal, NumberError, ReadDecimal};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What a sender is told of a number with more digits than a decimal
/// holds, where the gradebook keeps a number only exactly.
pub const TOO_MANY_DIGITS: &str =
    "has more digits than a decimal holds (28 after the point, 28 or 29 in all); send it rounded";

pub fn too_many_digits(name: &str) -> String {
    format!("{name} {TOO_MANY_DIGITS}")
}

/// The text a decimal is read from: a JSON number's own digits, or the
/// content of a JSON string (`"72.50000"`). `None` for anything else.
pub fn number_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get().trim();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(text).ok().map(Cow::Owned),
        b'-' | b'0'..=b'9' => Some(Cow::Borrowed(text)),
        _ => None,
    }
}

/// A decimal read from a JSON number or numeric string, with the text it
/// was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentNumber {
    pub read: ReadDecimal,
    /// The number's text as sent (a string's content, trimmed).
    pub text: String,
}

impl SentNumber {
    pub fn value(&self) -> rust_decimal::Decimal {
        self.read.value
    }

    /// The text to keep beside the value: only when the decimal rounded it.
    pub fn as_sent(&self) -> Option<String> {
        (!self.read.is_exact()).then(|| self.text.clone())
    }
}

/// Reads a decimal from a member's raw JSON: `Ok(None)` for `null`.
pub fn decimal(raw: &RawValue) -> Result<Option<SentNumber>, NumberError> {
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    let text = number_text(raw).ok_or(NumberError::NotANumber)?;
    let text = text.trim();
    let read = read_decimal(text)?;
    Ok(Some(SentNumber {
        read,
        text: text.to_string(),
    }))
}

#[derive(Debug)]
pub enum ObjectError {
    /// Not JSON as serde_json reads it (which includes numbers beyond a
    /// float, such as `1e309`).
    Json(serde_json::Error),
    /// JSON, but not an object.
    NotAnObject,
}

/// A JSON object: its members as serde_json reads them, and each member's
/// text as sent, for the numbers.
#[derive(Debug, Clone)]
pub struct SentObject {
    values: Map<String, Value>,
    texts: HashMap<String, Box<RawValue>>,
}

impl SentObject {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ObjectError> {
        let values = match serde_json::from_slice::<Value>(bytes).map_err(ObjectError::Json)? {
            Value::Object(o) => o,
            _ => return Err(ObjectError::NotAnObject),
        };
        // The same text read again, each member kept as written; a repeated
        // key keeps its last value in both, as serde_json does.
        let texts = serde_json::from_slice::<HashMap<String, Box<RawValue>>>(bytes)
            .map_err(ObjectError::Json)?;
        Ok(Self { values, texts })
    }

    /// An object that arrived as values only: its numbers are the text
    /// serde_json prints for them, which may not be the digits first sent.
    pub fn from_map(values: Map<String, Value>) -> Self {
        let texts = values
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), serde_json::value::to_raw_value(v).ok()?)))
            .collect();
        Self { values, texts }
    }

    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// The member's text as sent.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts.get(name).map(|r| r.get())
    }

    /// A number member (a JSON number or a numeric string) as a decimal:
    /// `Ok(None)` when absent or `null`.
    pub fn decimal(&self, name: &str) -> Result<Option<SentNumber>, NumberError> {
        match self.texts.get(name) {
            None => Ok(None),
            Some(raw) => decimal(raw),
        }
    }

    /// An object member, read with its own texts; `None` when absent or
    /// not an object.
    pub fn object(&self, name: &str) -> Option<SentObject> {
        Self::from_slice(self.text(name)?.as_bytes()).ok()
    }

    /// The elements of an array member, each object read with its texts
    /// (`None` for an element that is not an object); `None` when the
    /// member is absent or not an array.
    pub fn objects(&self, name: &str) -> Option<Vec<Option<SentObject>>> {
        objects(self.text(name)?)
    }
}

/// The elements of a JSON array, each object read with its texts (`None`
/// for an element that is not an object); `None` when not an array.
pub fn objects(array: &str) -> Option<Vec<Option<SentObject>>> {
    let raw = serde_json::from_str::<Vec<Box<RawValue>>>(array).ok()?;
    Some(
        raw.iter()
            .map(|e| SentObject::from_slice(e.get().as_bytes()).ok())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> SentObject {
        SentObject::from_slice(text.as_bytes()).unwrap()
    }

    fn value_of(o: &SentObject, name: &str) -> Option<String> {
        o.decimal(name).unwrap().map(|n| n.value().to_string())
    }

    #[test]
    fn numbers_are_read_from_their_digits_as_sent() {
        let o = object(
            r#"{"a": 0.19999999999999998, "b": 1.0000000000000002e-05, "c": 1.6666666666666665,
                "d": "0.19999999999999998", "e": 72.50000, "f": -0, "g": 1E+2}"#,
        );
        assert_eq!(value_of(&o, "a").as_deref(), Some("0.19999999999999998"));
        assert_eq!(
            value_of(&o, "b").as_deref(),
            Some("0.000010000000000000002")
        );
        assert_eq!(value_of(&o, "c").as_deref(), Some("1.6666666666666665"));
        assert_eq!(
            value_of(&o, "a"),
            value_of(&o, "d"),
            "a number reads as its string"
        );
        assert_eq!(value_of(&o, "e").as_deref(), Some("72.50000"));
        assert_eq!(value_of(&o, "f").as_deref(), Some("0"));
        assert_eq!(value_of(&o, "g").as_deref(), Some("100"));
    }

    #[test]
    fn a_rounded_number_keeps_its_text_and_an_exact_one_none() {
        let o = object(r#"{"long": 0.12345678901234567890123456789012345, "short": 0.5}"#);
        let long = o.decimal("long").unwrap().unwrap();
        assert_eq!(long.value().to_string(), "0.1234567890123456789012345679");
        assert_eq!(
            long.as_sent().as_deref(),
            Some("0.12345678901234567890123456789012345")
        );
        assert_eq!(o.decimal("short").unwrap().unwrap().as_sent(), None);
    }

    #[test]
    fn absent_null_and_non_numbers() {
        let o = object(r#"{"n": null, "t": true, "s": "abc", "a": [1], "big": 1e40}"#);
        assert_eq!(o.decimal("missing"), Ok(None));
        assert_eq!(o.decimal("n"), Ok(None));
        assert_eq!(o.decimal("t"), Err(NumberError::NotANumber));
        assert_eq!(o.decimal("s"), Err(NumberError::NotANumber));
        assert_eq!(o.decimal("a"), Err(NumberError::NotANumber));
        assert_eq!(o.decimal("big"), Err(NumberError::TooLarge));
    }

    #[test]
    fn what_serde_json_refuses_is_still_refused() {
        for text in ["{\"a\": 1e309}", "{\"a\": NaN}", "{\"a\":", "\u{feff}{}"] {
            assert!(
                matches!(
                    SentObject::from_slice(text.as_bytes()),
                    Err(ObjectError::Json(_))
                ),
                "{text}"
            );
        }
        assert!(matches!(
            SentObject::from_slice(b"[1]"),
            Err(ObjectError::NotAnObject)
        ));
    }

    #[test]
    fn nested_objects_and_arrays_keep_their_texts() {
        let o = object(
            r#"{"items": [{"lineItem": {"scoreMaximum": 0.19999999999999998}}, 7, {"x": 1}], "last": 1, "last": 1.6666666666666665}"#,
        );
        let items = o.objects("items").unwrap();
        assert_eq!(items.len(), 3);
        assert!(items[1].is_none());
        let li = items[0].as_ref().unwrap().object("lineItem").unwrap();
        assert_eq!(
            value_of(&li, "scoreMaximum").as_deref(),
            Some("0.19999999999999998")
        );
        // A repeated key: the last one, in values and texts alike.
        assert_eq!(value_of(&o, "last").as_deref(), Some("1.6666666666666665"));
        assert!(o.get("last").unwrap().is_f64());
        assert!(o.objects("last").is_none());
    }
}
