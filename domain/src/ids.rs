//! Identifier newtypes, validated once at the edge and trusted inside.
//!
//! Ids are the SIS's own strings. They also appear in URLs and in aggregate
//! ids (joined with `/`), so the accepted alphabet is URL-safe and excludes
//! `/`: that keeps aggregate ids unambiguous and rules out path tricks.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::DomainError;

/// The longest id we accept; long enough for UUIDs and LMS-generated ids.
pub const MAX_ID_LEN: usize = 128;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@')
        })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an id, refusing empty, over-long or non URL-safe strings.
            pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
                let s = s.into();
                if valid_id(&s) {
                    Ok(Self(s))
                } else {
                    Err(DomainError::InvalidId { what: $what })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An SIS course section, e.g. `HIST-101-2026FA`.
    CourseId,
    "course_id"
);
id_type!(
    /// A gradebook column; the last path segment of its AGS URL.
    LineItemId,
    "line_item_id"
);
id_type!(
    /// A person; also the LTI `sub` the platform sends to tools.
    UserId,
    "user_id"
);
id_type!(
    /// A registered LTI tool.
    ToolId,
    "tool_id"
);
id_type!(
    /// An LTI resource link inside a course.
    ResourceLinkId,
    "resource_link_id"
);

/// Aggregate ids: one course, one line item or enrollment inside a course,
/// one learner's scores on one line item.
pub mod aggregate_id {
    use super::*;

    pub fn course(course: &CourseId) -> String {
        course.to_string()
    }
    pub fn line_item(course: &CourseId, item: &LineItemId) -> String {
        format!("{course}/{item}")
    }
    pub fn enrollment(course: &CourseId, user: &UserId) -> String {
        format!("{course}/{user}")
    }
    pub fn score(course: &CourseId, item: &LineItemId, user: &UserId) -> String {
        format!("{course}/{item}/{user}")
    }
    /// The course an aggregate id belongs to (its first segment).
    pub fn course_of(aggregate_id: &str) -> &str {
        aggregate_id.split('/').next().unwrap_or(aggregate_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_sis_strings_and_refuse_path_tricks() {
        assert!(CourseId::parse("HIST-101-2026FA").is_ok());
        assert!(UserId::parse("s_1234@college.edu").is_ok());
        for bad in [
            "",
            "a/b",
            "../etc",
            "a b",
            "x'; drop table",
            "é",
            &"x".repeat(129),
        ] {
            assert!(CourseId::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: Result<UserId, _> = serde_json::from_str("\"u1\"");
        assert!(ok.is_ok());
        let bad: Result<UserId, _> = serde_json::from_str("\"u/1\"");
        assert!(bad.is_err());
    }
}
