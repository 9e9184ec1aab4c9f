//! Read-side queries behind the LTI services a tool calls (AGS and NRPS):
//! whether a course exists and deploys a tool, the line items and links it may
//! see, the kept results of a line item and a course's roster.

use std::str::FromStr;

use gradebook_domain::enrollment::{EnrollmentStatus, Role};
use gradebook_domain::line_item::LineItemSpec;
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::Row;

use crate::db::Db;
use crate::tables::queries::QueryError;
use crate::with_db;

fn corrupt(what: &str, e: impl std::fmt::Display) -> QueryError {
    QueryError::Corrupt(format!("{what}: {e}"))
}

/// `None` when the course does not exist; else whether the course deploys
/// the tool itself (the tool's own course set may reach it regardless).
pub async fn course_deployment(
    db: &Db,
    course_id: &str,
    tool_id: &str,
) -> Result<Option<bool>, QueryError> {
    with_db!(db, pool => {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM rm_course_tools t
                             WHERE t.course_id = c.course_id AND t.tool_id = $2) AS deployed
               FROM rm_courses c WHERE c.course_id = $1",
        )
        .bind(course_id)
        .bind(tool_id)
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|r| r.get("deployed")))
    })
}

/// The courses that deploy each tool themselves, by tool id, each list
/// sorted (a tool's course set may reach more).
pub async fn deployments(
    db: &Db,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query(
            "SELECT tool_id, course_id FROM rm_course_tools ORDER BY tool_id, course_id",
        )
        .fetch_all(pool)
        .await?;
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        for r in rows {
            out.entry(r.get("tool_id")).or_default().push(r.get("course_id"));
        }
        Ok(out)
    })
}

/// Which of `ids` name existing courses, in no particular order.
pub async fn existing_courses(db: &Db, ids: &[String]) -> Result<Vec<String>, QueryError> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    // One statement however long the list (SQLite caps bound parameters).
    let list = serde_json::to_string(ids).map_err(|e| corrupt("course ids", e))?;
    Ok(match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar(
                "SELECT course_id FROM rm_courses
                  WHERE course_id IN (SELECT jsonb_array_elements_text($1::jsonb))",
            )
            .bind(list)
            .fetch_all(pool)
            .await?
        }
        Db::Sqlite(pool) => sqlx::query_scalar(
            "SELECT course_id FROM rm_courses WHERE course_id IN (SELECT value FROM json_each($1))",
        )
        .bind(list)
        .fetch_all(pool)
        .await?,
    })
}

/// One line item of a course, deleted ones included.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItemEntry {
    pub line_item_id: String,
    pub spec: LineItemSpec,
    pub deleted: bool,
}

/// Every line item of a course, in creation order (the order never
/// changes, so a position in it is a stable paging cursor).
pub async fn course_line_items(db: &Db, course_id: &str) -> Result<Vec<LineItemEntry>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query("SELECT line_item_id, spec, deleted FROM rm_line_items WHERE course_id = $1 ORDER BY created_tx, created_position, line_item_id")
            .bind(course_id)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LineItemEntry {
                    line_item_id: r.get("line_item_id"),
                    spec: serde_json::from_str(&r.get::<String, _>("spec")).map_err(|e| corrupt("spec", e))?,
                    deleted: r.get("deleted"),
                })
            })
            .collect()
    })
}

/// A resource link as a tool sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEntry {
    pub resource_link_id: String,
    pub tool_id: String,
    pub title: String,
    pub custom: Map<String, Value>,
    pub line_item_id: Option<String>,
}

/// The resource links of a course, by id.
pub async fn course_links(db: &Db, course_id: &str) -> Result<Vec<LinkEntry>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query("SELECT resource_link_id, tool_id, title, custom, line_item_id FROM rm_resource_links WHERE course_id = $1 ORDER BY resource_link_id")
            .bind(course_id)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LinkEntry {
                    resource_link_id: r.get("resource_link_id"),
                    tool_id: r.get("tool_id"),
                    title: r.get("title"),
                    custom: serde_json::from_str(&r.get::<String, _>("custom")).map_err(|e| corrupt("custom", e))?,
                    line_item_id: r.get("line_item_id"),
                })
            })
            .collect()
    })
}

/// A kept score that carries a value.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultEntry {
    pub user_id: String,
    pub score_given: Decimal,
    pub score_maximum: Decimal,
    pub comment: Option<String>,
}

/// The kept scores of a line item, by user id; cells without a score
/// (never scored, cleared, only rejected posts) are left out.
pub async fn line_item_results(
    db: &Db,
    course_id: &str,
    line_item_id: &str,
) -> Result<Vec<ResultEntry>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query(
            "SELECT user_id, score_given, score_maximum, comment FROM rm_scores
              WHERE course_id = $1 AND line_item_id = $2 AND score_given IS NOT NULL AND score_maximum IS NOT NULL
              ORDER BY user_id",
        )
        .bind(course_id)
        .bind(line_item_id)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|r| {
                let dec = |c: &str| Decimal::from_str(&r.get::<String, _>(c)).map_err(|e| corrupt(c, e));
                Ok(ResultEntry {
                    user_id: r.get("user_id"),
                    score_given: dec("score_given")?,
                    score_maximum: dec("score_maximum")?,
                    comment: r.get("comment"),
                })
            })
            .collect()
    })
}

/// A course's title and term, `None` if it does not exist.
pub async fn course_title(
    db: &Db,
    course_id: &str,
) -> Result<Option<(String, String)>, QueryError> {
    with_db!(db, pool => {
        Ok(sqlx::query("SELECT title, term FROM rm_courses WHERE course_id = $1")
            .bind(course_id)
            .fetch_optional(pool)
            .await?
            .map(|r| (r.get("title"), r.get("term"))))
    })
}

/// One person on a roster.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user_id: String,
    pub role: Role,
    pub status: EnrollmentStatus,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Everyone enrolled and not dropped, by user id.
pub async fn roster(db: &Db, course_id: &str) -> Result<Vec<Member>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query("SELECT user_id, role, status, name, email FROM rm_enrollments WHERE course_id = $1 AND status <> 'dropped' ORDER BY user_id")
            .bind(course_id)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.get("status");
                Ok(Member {
                    user_id: r.get("user_id"),
                    role: Role::parse(&r.get::<String, _>("role")).map_err(|e| corrupt("role", e))?,
                    status: serde_json::from_value(Value::String(status)).map_err(|e| corrupt("status", e))?,
                    name: r.get("name"),
                    email: r.get("email"),
                })
            })
            .collect()
    })
}

/// The courses whose id equals `course_id` ignoring ASCII case (some tool
/// libraries lower-case the whole `Link` header, path included, before
/// following it), each with whether it deploys the tool itself.
pub async fn courses_ignoring_case(
    db: &Db,
    course_id: &str,
    tool_id: &str,
) -> Result<Vec<(String, bool)>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query(
            "SELECT c.course_id,
                    EXISTS (SELECT 1 FROM rm_course_tools t
                             WHERE t.course_id = c.course_id AND t.tool_id = $1) AS deployed
               FROM rm_courses c WHERE lower(c.course_id) = lower($2)",
        )
        .bind(tool_id)
        .bind(course_id)
        .fetch_all(pool)
        .await?;
        Ok(rows.iter().map(|r| (r.get("course_id"), r.get("deployed"))).collect())
    })
}
