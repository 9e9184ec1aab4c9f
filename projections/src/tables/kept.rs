//! Reading the kept course grades and their history (written by
//! [`crate::projector::grades`]): the grade report without recomputing it,
//! a course as of a moment without folding its scores, the grades that
//! changed between two moments, and one learner's courses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use gradebook_domain::policy::Scheme;
use gradebook_domain::score::{RejectReason, ScorePost};
use serde::Serialize;
use sqlx::Row;

use crate::db::{ts, Db};
use crate::reports::grades::{CourseGrades, StudentRow};
use crate::tables::queries::{corrupt, parse_dec, parse_enum, parse_json, parse_time, QueryError};
use crate::tables::view::{CourseView, PostOutcome, ScoreRow};
use crate::with_db;

/// The grade report from the kept rows; `None` if the course is unknown.
/// The same report [`crate::reports::grades::course_grades`] computes from
/// the course's cells (a test holds them equal).
pub async fn course_grades(db: &Db, course_id: &str) -> Result<Option<CourseGrades>, QueryError> {
    let (head, rows) = with_db!(db, pool => {
        let head = sqlx::query("SELECT scheme, locked FROM rm_courses WHERE course_id = $1")
            .bind(course_id)
            .fetch_optional(pool)
            .await?;
        let Some(head) = head else {
            return Ok(None);
        };
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_id, report_row FROM rm_course_grades WHERE course_id = $1",
        )
        .bind(course_id)
        .fetch_all(pool)
        .await?;
        ((head.get::<String, _>("scheme"), head.get::<bool, _>("locked")), rows)
    });
    let scheme: Scheme = serde_json::from_str(&head.0).map_err(|e| corrupt("scheme", e))?;
    let mut rows = rows;
    // The report lists learners by id, byte order, whatever the collation.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let students = rows
        .iter()
        .map(|(_, r)| parse_json::<StudentRow>("report_row", r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(CourseGrades {
        course_id: course_id.to_string(),
        as_of: None,
        scheme: scheme.name(),
        locked: head.1,
        students,
    }))
}

/// A cell history row: line item, user, received at, outcome, reason,
/// score given, score maximum, activity, grading, tool timestamp, comment.
type CellHistoryCols = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const CELL_HISTORY_COLUMNS: &str = "line_item_id, user_id, received_at, outcome, reason, score_given, score_maximum, activity_progress, grading_progress, tool_timestamp, comment";

/// The course as the engine held it at `as_of`: its policy, line items and
/// people folded from their own events (a few dozen), and each score cell
/// from the cell history, every post received by then in log order. `None`
/// if the course had not been opened by then.
pub async fn course_view_as_of(
    db: &Db,
    course_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<CourseView>, QueryError> {
    let setup = crate::reports::audit::read_course_setup_events(db, course_id).await?;
    let Some(mut view) = CourseView::fold(course_id, &setup, Some(as_of)) else {
        return Ok(None);
    };
    let rows: Vec<CellHistoryCols> = with_db!(db, pool => {
        if db.is_postgres() {
            sqlx::query_as(&format!(
                "SELECT {CELL_HISTORY_COLUMNS} FROM rm_cell_history
                  WHERE course_id = $1 AND received_at <= $2 ORDER BY tx_id, position"
            ))
            .bind(course_id)
            .bind(ts(as_of))
            .fetch_all(pool)
            .await?
        } else {
            // One row of JSON: SQLite's driver hands rows over one at a
            // time, which costs more than reading them.
            let json: String = sqlx::query_scalar(&format!(
                "SELECT json_group_array(json_array({CELL_HISTORY_COLUMNS})) FROM
                   (SELECT * FROM rm_cell_history
                     WHERE course_id = $1 AND received_at <= $2 ORDER BY tx_id, position)"
            ))
            .bind(course_id)
            .bind(ts(as_of))
            .fetch_one(pool)
            .await?;
            parse_json("cell history", &json)?
        }
    });
    for (
        item,
        user,
        received,
        outcome,
        reason,
        given,
        maximum,
        activity,
        grading,
        tool_ts,
        comment,
    ) in rows
    {
        let received = parse_time("received_at", Some(&received))?.unwrap_or_default();
        let outcome = match outcome.as_str() {
            "kept" => PostOutcome::Kept(ScorePost {
                score_given: parse_dec("score_given", given.as_deref())?,
                score_maximum: parse_dec("score_maximum", maximum.as_deref())?,
                activity_progress: parse_enum(
                    "activity_progress",
                    activity.as_deref().unwrap_or_default(),
                )?,
                grading_progress: parse_enum(
                    "grading_progress",
                    grading.as_deref().unwrap_or_default(),
                )?,
                timestamp: DateTime::parse_from_rfc3339(tool_ts.as_deref().unwrap_or_default())
                    .map_err(|e| corrupt("tool_timestamp", e))?,
                comment,
                score_given_as_sent: None,
                score_maximum_as_sent: None,
            }),
            "stale" => PostOutcome::Stale,
            "rejected" => PostOutcome::Rejected(parse_enum::<RejectReason>(
                "reason",
                reason.as_deref().unwrap_or_default(),
            )?),
            other => return Err(corrupt("outcome", other)),
        };
        view.scores
            .entry((item, user))
            .or_insert_with(|| ScoreRow::new(received))
            .record(received, outcome);
    }
    Ok(Some(view))
}

/// A course grade as a registrar reads it; `None` in a change when the
/// learner was not in the report (not enrolled yet, or dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GradeValue {
    pub percent: Option<String>,
    pub letter: Option<String>,
    pub status: String,
}

/// One event that changed a learner's course grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeChangeEvent {
    pub received_at: String,
    pub event_type: String,
    /// The event's place in the log: `after` of the audit log's cursor form.
    pub tx_id: i64,
    pub position: i64,
    pub before: Option<GradeValue>,
    pub after: Option<GradeValue>,
}

/// A learner whose course grade at `until` differs from the one at `since`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeChange {
    pub course_id: String,
    pub user_id: String,
    pub name: Option<String>,
    pub then: Option<GradeValue>,
    pub now: Option<GradeValue>,
    pub events: Vec<GradeChangeEvent>,
}

/// Which courses a grade-changes report covers.
#[derive(Debug, Clone, Copy)]
pub enum ChangeScope<'a> {
    Course(&'a str),
    Term(&'a str),
}

type HistoryCols = (
    String,
    String,
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn value(
    percent: Option<String>,
    letter: Option<String>,
    status: Option<String>,
) -> Option<GradeValue> {
    status.map(|status| GradeValue {
        percent,
        letter,
        status,
    })
}

/// Every learner whose course grade changed between `since` (exclusive)
/// and `until` (inclusive), by the engine's received-at times: the grade
/// then and now, and each event in between that changed it. A grade that
/// changed and came back is not listed. Ordered by course, then learner.
pub async fn grade_changes(
    db: &Db,
    scope: ChangeScope<'_>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<GradeChange>, QueryError> {
    let (filter, key) = match scope {
        ChangeScope::Course(c) => ("h.course_id = $3", c),
        ChangeScope::Term(t) => (
            "h.course_id IN (SELECT course_id FROM rm_courses WHERE term = $3)",
            t,
        ),
    };
    let sql = format!(
        "SELECT h.course_id, h.user_id, h.tx_id, h.position, h.received_at, h.event_type,
                h.before_percent, h.before_letter, h.before_status,
                h.after_percent, h.after_letter, h.after_status, e.name
           FROM rm_grade_history h
           LEFT JOIN rm_enrollments e ON e.course_id = h.course_id AND e.user_id = h.user_id
          WHERE h.received_at > $1 AND h.received_at <= $2 AND {filter}"
    );
    let rows: Vec<HistoryCols> = with_db!(db, pool => {
        sqlx::query_as(&sql)
            .bind(ts(since))
            .bind(ts(until))
            .bind(key)
            .fetch_all(pool)
            .await?
    });
    let mut by_learner: BTreeMap<(String, String), (Option<String>, Vec<GradeChangeEvent>)> =
        BTreeMap::new();
    for (course, user, tx, position, received_at, event_type, bp, bl, bs, ap, al, as_, name) in rows
    {
        let entry = by_learner
            .entry((course, user))
            .or_insert_with(|| (name, Vec::new()));
        entry.1.push(GradeChangeEvent {
            received_at,
            event_type,
            tx_id: tx,
            position,
            before: value(bp, bl, bs),
            after: value(ap, al, as_),
        });
    }
    let mut out = Vec::new();
    for ((course_id, user_id), (name, mut events)) in by_learner {
        events.sort_by_key(|e| (e.tx_id, e.position));
        let then = events.first().and_then(|e| e.before.clone());
        let now = events.last().and_then(|e| e.after.clone());
        if then != now {
            out.push(GradeChange {
                course_id,
                user_id,
                name,
                then,
                now,
                events,
            });
        }
    }
    Ok(out)
}

/// One course of a learner, with the kept grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudentCourseGrade {
    pub course_id: String,
    pub title: String,
    pub term: String,
    pub locked: bool,
    pub role: String,
    pub enrollment_status: String,
    pub name: Option<String>,
    /// Null for a dropped learner or someone who is not a learner: the
    /// grade report has no row for them.
    pub grade: Option<StudentRow>,
}

/// Every course a person is enrolled in (any role or status), by term then
/// course id, each with the kept grade; empty for someone unknown.
pub async fn student_grades(db: &Db, user_id: &str) -> Result<Vec<StudentCourseGrade>, QueryError> {
    let sql =
        "SELECT c.course_id, c.title, c.term, c.locked, e.role, e.status, e.name, g.report_row
                 FROM rm_enrollments e
                 JOIN rm_courses c ON c.course_id = e.course_id
                 LEFT JOIN rm_course_grades g ON g.course_id = e.course_id AND g.user_id = e.user_id
                WHERE e.user_id = $1";
    let rows = with_db!(db, pool => {
        sqlx::query(sql).bind(user_id).fetch_all(pool).await?
            .iter()
            .map(|r| {
                Ok(StudentCourseGrade {
                    course_id: r.get("course_id"),
                    title: r.get("title"),
                    term: r.get("term"),
                    locked: r.get("locked"),
                    role: r.get("role"),
                    enrollment_status: r.get("status"),
                    name: r.get("name"),
                    grade: r
                        .get::<Option<String>, _>("report_row")
                        .map(|s| parse_json("report_row", &s))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?
    });
    let mut rows = rows;
    rows.sort_by(|a, b| (&a.term, &a.course_id).cmp(&(&b.term, &b.course_id)));
    Ok(rows)
}
