//! The rules a command can break. Each variant has a stable snake_case code
//! that the HTTP layer sends as `error`, and a message that says what to do.

use thiserror::Error;

use crate::time::TimeError;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("{what} must be 1 to 128 characters of letters, digits and - _ . ~ : @")]
    InvalidId { what: &'static str },
    #[error("the course does not exist; create it first")]
    CourseNotFound,
    #[error("a course with this id already exists")]
    CourseAlreadyExists,
    #[error("invalid grading: {0}")]
    InvalidGrading(String),
    #[error("a resource link with this id already exists in the course")]
    DuplicateResourceLink,
    #[error("the line item does not exist")]
    LineItemNotFound,
    #[error("a line item with this id already exists in the course")]
    DuplicateLineItem,
    #[error("the line item was deleted; it takes no changes")]
    LineItemDeleted,
    #[error("{0}")]
    InvalidLineItem(String),
    #[error("scoreMaximum must be a number greater than 0 and at most 1000000000")]
    InvalidScoreMaximum,
    #[error("scoreGiven must be a number from 0 to 1000000000000")]
    InvalidScoreGiven,
    #[error("scoreMaximum is required when scoreGiven is sent")]
    MissingScoreMaximum,
    #[error("comment is longer than {0} characters")]
    CommentTooLong(usize),
    #[error("the person is already enrolled in this course; update the enrollment instead")]
    AlreadyEnrolled,
    #[error("the person is not enrolled in this course")]
    NotEnrolled,
    #[error("{0}")]
    InvalidEnrollment(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("the score's timestamp is more than an hour ahead of the platform's clock; check the tool's clock")]
    TimestampInFuture,
    #[error("the score's timestamp {0}")]
    InvalidTimestamp(TimeError),
    #[error("a newer score (timestamp {}) is kept; this older one is not applied", .0.to_rfc3339())]
    OlderThanKept(chrono::DateTime<chrono::FixedOffset>),
}

impl DomainError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::InvalidId { .. } => "invalid_id",
            DomainError::CourseNotFound => "course_not_found",
            DomainError::CourseAlreadyExists => "course_exists",
            DomainError::InvalidGrading(_) => "invalid_grading",
            DomainError::DuplicateResourceLink => "resource_link_exists",
            DomainError::LineItemNotFound => "line_item_not_found",
            DomainError::DuplicateLineItem => "line_item_exists",
            DomainError::LineItemDeleted => "line_item_deleted",
            DomainError::InvalidLineItem(_) => "invalid_line_item",
            DomainError::InvalidScoreMaximum => "invalid_score_maximum",
            DomainError::InvalidScoreGiven => "invalid_score_given",
            DomainError::MissingScoreMaximum => "missing_score_maximum",
            DomainError::CommentTooLong(_) => "comment_too_long",
            DomainError::AlreadyEnrolled => "already_enrolled",
            DomainError::NotEnrolled => "not_enrolled",
            DomainError::InvalidEnrollment(_) => "invalid_enrollment",
            DomainError::InvalidInput(_) => "invalid_input",
            DomainError::TimestampInFuture | DomainError::InvalidTimestamp(_) => {
                "invalid_timestamp"
            }
            DomainError::OlderThanKept(_) => "stale",
        }
    }

    /// Whether the thing named does not exist (HTTP 404) rather than the
    /// request being wrong (4xx) or conflicting (409).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DomainError::CourseNotFound
            | DomainError::LineItemNotFound
            | DomainError::LineItemDeleted
            | DomainError::NotEnrolled => ErrorKind::NotFound,
            DomainError::CourseAlreadyExists
            | DomainError::DuplicateResourceLink
            | DomainError::DuplicateLineItem
            | DomainError::AlreadyEnrolled => ErrorKind::Conflict,
            _ => ErrorKind::Invalid,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Invalid,
}
