//! Loading a [`CourseView`] from the read tables (live) or from the log (as
//! of a moment).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use gradebook_domain::course::ResourceLink;
use gradebook_domain::enrollment::{EnrollmentStatus, Role};
use gradebook_domain::line_item::LineItemSpec;
use gradebook_domain::policy::GradingPolicy;
use gradebook_domain::score::{RejectReason, ScorePost};
use rust_decimal::Decimal;
use sqlx::Row;

use crate::db::Db;
use crate::events::{read_course, ReadError};
use crate::view::{CourseView, EnrollmentRow, LastOutcome, LineItemRow, ScoreRow};
use crate::with_db;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("stored row cannot be read: {0}")]
    Corrupt(String),
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> QueryError {
    QueryError::Corrupt(format!("{what}: {e}"))
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, QueryError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

fn parse_time(what: &str, s: Option<String>) -> Result<Option<DateTime<Utc>>, QueryError> {
    s.map(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| corrupt(what, e))
    })
    .transpose()
}

fn parse_dec(what: &str, s: Option<String>) -> Result<Option<Decimal>, QueryError> {
    s.map(|s| Decimal::from_str(&s).map_err(|e| corrupt(what, e)))
        .transpose()
}

fn parse_enum<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T, QueryError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| corrupt(what, e))
}

/// The live view of a course from the read tables; `None` if unknown.
pub async fn load_course_view(db: &Db, course_id: &str) -> Result<Option<CourseView>, QueryError> {
    with_db!(db, pool => {
        let Some(c) = sqlx::query("SELECT title, term, scheme, missing, scale, locked FROM rm_courses WHERE course_id = $1")
            .bind(course_id)
            .fetch_optional(pool)
            .await?
        else {
            return Ok(None);
        };
        let policy = GradingPolicy {
            scheme: parse_json("scheme", &c.get::<String, _>("scheme"))?,
            missing: parse_json("missing", &c.get::<String, _>("missing"))?,
            scale: parse_json("scale", &c.get::<String, _>("scale"))?,
        };
        let tool_ids: BTreeSet<String> = sqlx::query_scalar("SELECT tool_id FROM rm_course_tools WHERE course_id = $1")
            .bind(course_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
        let mut line_items = Vec::new();
        for r in sqlx::query("SELECT line_item_id, spec, deleted FROM rm_line_items WHERE course_id = $1 ORDER BY created_tx, created_position")
            .bind(course_id)
            .fetch_all(pool)
            .await?
        {
            line_items.push(LineItemRow {
                line_item_id: r.get("line_item_id"),
                spec: parse_json::<LineItemSpec>("spec", &r.get::<String, _>("spec"))?,
                deleted: r.get("deleted"),
            });
        }
        let mut resource_links = BTreeMap::new();
        for r in sqlx::query("SELECT resource_link_id, tool_id, title, url, custom, line_item_id FROM rm_resource_links WHERE course_id = $1")
            .bind(course_id)
            .fetch_all(pool)
            .await?
        {
            let id: String = r.get("resource_link_id");
            let link = ResourceLink {
                resource_link_id: gradebook_domain::ids::ResourceLinkId::parse(id.clone()).map_err(|e| corrupt("resource_link_id", e))?,
                tool_id: gradebook_domain::ToolId::parse(r.get::<String, _>("tool_id")).map_err(|e| corrupt("tool_id", e))?,
                title: r.get("title"),
                url: r.get("url"),
                custom: parse_json("custom", &r.get::<String, _>("custom"))?,
                line_item_id: r
                    .get::<Option<String>, _>("line_item_id")
                    .map(gradebook_domain::LineItemId::parse)
                    .transpose()
                    .map_err(|e| corrupt("line_item_id", e))?,
            };
            resource_links.insert(id, link);
        }
        let mut enrollments = BTreeMap::new();
        for r in sqlx::query("SELECT user_id, role, status, name, email, first_launch, latest_launch FROM rm_enrollments WHERE course_id = $1")
            .bind(course_id)
            .fetch_all(pool)
            .await?
        {
            let user_id: String = r.get("user_id");
            enrollments.insert(user_id.clone(), EnrollmentRow {
                user_id,
                role: Role::parse(&r.get::<String, _>("role")).map_err(|e| corrupt("role", e))?,
                status: parse_enum::<EnrollmentStatus>("status", &r.get::<String, _>("status"))?,
                name: r.get("name"),
                email: r.get("email"),
                first_launch: parse_time("first_launch", r.get("first_launch"))?,
                latest_launch: parse_time("latest_launch", r.get("latest_launch"))?,
            });
        }
        let mut scores = BTreeMap::new();
        for r in sqlx::query(
            "SELECT line_item_id, user_id, score_given, score_maximum, activity_progress, grading_progress, tool_timestamp, comment,
                    kept_at, last_outcome, last_reason, last_post_at, posts, rejected, stale
               FROM rm_scores WHERE course_id = $1",
        )
        .bind(course_id)
        .fetch_all(pool)
        .await?
        {
            let kept = match (
                r.get::<Option<String>, _>("activity_progress"),
                r.get::<Option<String>, _>("grading_progress"),
                r.get::<Option<String>, _>("tool_timestamp"),
            ) {
                (Some(a), Some(g), Some(t)) => Some(ScorePost {
                    score_given: parse_dec("score_given", r.get("score_given"))?,
                    score_maximum: parse_dec("score_maximum", r.get("score_maximum"))?,
                    activity_progress: parse_enum("activity_progress", &a)?,
                    grading_progress: parse_enum("grading_progress", &g)?,
                    timestamp: chrono::DateTime::parse_from_rfc3339(&t).map_err(|e| corrupt("tool_timestamp", e))?,
                    comment: r.get("comment"),
                }),
                _ => None,
            };
            let outcome: String = r.get("last_outcome");
            scores.insert(
                (r.get::<String, _>("line_item_id"), r.get::<String, _>("user_id")),
                ScoreRow {
                    kept,
                    kept_at: parse_time("kept_at", r.get("kept_at"))?,
                    last_outcome: LastOutcome::parse(&outcome).ok_or_else(|| corrupt("last_outcome", &outcome))?,
                    last_reason: r
                        .get::<Option<String>, _>("last_reason")
                        .map(|s| parse_enum::<RejectReason>("last_reason", &s))
                        .transpose()?,
                    last_post_at: parse_time("last_post_at", Some(r.get("last_post_at")))?.unwrap_or_default(),
                    posts: r.get("posts"),
                    rejected: r.get("rejected"),
                    stale: r.get("stale"),
                },
            );
        }
        Ok(Some(CourseView {
            course_id: course_id.to_string(),
            title: c.get("title"),
            term: c.get("term"),
            policy,
            locked: c.get("locked"),
            tool_ids,
            line_items,
            resource_links,
            enrollments,
            scores,
        }))
    })
}

/// The course as the engine held it at `as_of`, folded from the log without
/// touching the read tables; `None` if it did not exist yet.
pub async fn course_view_as_of(
    db: &Db,
    course_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<CourseView>, QueryError> {
    let events = read_course(db, course_id).await?;
    Ok(CourseView::fold(course_id, &events, Some(as_of)))
}

/// What the rest of the gradebook says about a score post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreContext {
    pub course_locked: bool,
    /// `None` when the course has no such line item.
    pub line_item_deleted: Option<bool>,
    pub line_item_maximum: Option<Decimal>,
    /// Role and status, when the user is enrolled at all.
    pub enrollment: Option<(String, String)>,
}

/// Reads the facts a score post needs in one round trip; `None` when the
/// course does not exist.
pub async fn score_context(
    db: &Db,
    course_id: &str,
    line_item_id: &str,
    user_id: &str,
) -> Result<Option<ScoreContext>, QueryError> {
    with_db!(db, pool => {
        let row = sqlx::query(
            "SELECT c.locked, li.deleted, li.score_maximum, e.role, e.status
               FROM rm_courses c
               LEFT JOIN rm_line_items li ON li.course_id = c.course_id AND li.line_item_id = $2
               LEFT JOIN rm_enrollments e ON e.course_id = c.course_id AND e.user_id = $3
              WHERE c.course_id = $1",
        )
        .bind(course_id)
        .bind(line_item_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let role: Option<String> = r.get("role");
        let status: Option<String> = r.get("status");
        Ok(Some(ScoreContext {
            course_locked: r.get("locked"),
            line_item_deleted: r.get("deleted"),
            line_item_maximum: parse_dec("score_maximum", r.get("score_maximum"))?,
            enrollment: role.zip(status),
        }))
    })
}

/// Whether a course exists in the read model.
pub async fn course_exists(db: &Db, course_id: &str) -> Result<bool, QueryError> {
    with_db!(db, pool => {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rm_courses WHERE course_id = $1")
            .bind(course_id)
            .fetch_one(pool)
            .await?;
        Ok(n > 0)
    })
}

/// Whether a person has an enrollment (any status) in a course.
pub async fn enrollment_exists(
    db: &Db,
    course_id: &str,
    user_id: &str,
) -> Result<bool, QueryError> {
    with_db!(db, pool => {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rm_enrollments WHERE course_id = $1 AND user_id = $2")
            .bind(course_id)
            .bind(user_id)
            .fetch_one(pool)
            .await?;
        Ok(n > 0)
    })
}
