//! Read-side queries for the registrar's management pages (course list and
//! details, enrollments) and for operations (how far the projector lags
//! behind the log).

use std::collections::BTreeSet;

use gradebook_domain::policy::GradingPolicy;
use serde::Serialize;
use sqlx::Row;

use crate::db::Db;
use crate::projector::events::Checkpoint;
use crate::tables::queries::QueryError;
use crate::with_db;

/// One row of the course list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseSummary {
    pub course_id: String,
    pub title: String,
    pub term: String,
    pub locked: bool,
    pub locked_at: Option<String>,
    pub opened_at: String,
    /// Active learners.
    pub students: i64,
    /// Line items not deleted.
    pub line_items: i64,
}

/// A course with its grading policy and tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseDetail {
    #[serde(flatten)]
    pub summary: CourseSummary,
    pub grading: GradingPolicy,
    pub tool_ids: BTreeSet<String>,
}

/// One person in a course, as the read tables hold them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnrollmentEntry {
    pub user_id: String,
    pub role: String,
    pub status: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub first_launch: Option<String>,
    pub latest_launch: Option<String>,
    pub enrolled_at: String,
}

const SUMMARY: &str = "SELECT c.course_id, c.title, c.term, c.locked, c.locked_at, c.opened_at,
        (SELECT COUNT(*) FROM rm_enrollments e
          WHERE e.course_id = c.course_id AND e.role = 'Learner' AND e.status = 'active') AS students,
        (SELECT COUNT(*) FROM rm_line_items l
          WHERE l.course_id = c.course_id AND NOT l.deleted) AS line_items,
        c.scheme, c.missing, c.scale
   FROM rm_courses c";

macro_rules! summary_from_row {
    ($r:expr) => {
        CourseSummary {
            course_id: $r.get("course_id"),
            title: $r.get("title"),
            term: $r.get("term"),
            locked: $r.get("locked"),
            locked_at: $r.get("locked_at"),
            opened_at: $r.get("opened_at"),
            students: $r.get("students"),
            line_items: $r.get("line_items"),
        }
    };
}

/// Every course, optionally of one term, ordered by term then id.
pub async fn list_courses(db: &Db, term: Option<&str>) -> Result<Vec<CourseSummary>, QueryError> {
    let sql = format!(
        "{SUMMARY} WHERE (CAST($1 AS TEXT) IS NULL OR c.term = $1) ORDER BY c.term, c.course_id"
    );
    with_db!(db, pool => {
        let rows = sqlx::query(&sql).bind(term).fetch_all(pool).await?;
        Ok(rows.iter().map(|r| summary_from_row!(r)).collect())
    })
}

/// One course with its policy and tools; `None` if unknown.
pub async fn course_detail(db: &Db, course_id: &str) -> Result<Option<CourseDetail>, QueryError> {
    let sql = format!("{SUMMARY} WHERE c.course_id = $1");
    with_db!(db, pool => {
        let Some(r) = sqlx::query(&sql).bind(course_id).fetch_optional(pool).await? else {
            return Ok(None);
        };
        let json = |col: &str| -> Result<serde_json::Value, QueryError> {
            serde_json::from_str(&r.get::<String, _>(col))
                .map_err(|e| QueryError::Corrupt(format!("{col}: {e}")))
        };
        let scheme = json("scheme")?;
        let mut grading = serde_json::Map::new();
        if let serde_json::Value::Object(m) = scheme {
            grading.extend(m);
        }
        grading.insert("scale".into(), json("scale")?);
        grading.insert("missing".into(), json("missing")?);
        let grading: GradingPolicy = serde_json::from_value(serde_json::Value::Object(grading))
            .map_err(|e| QueryError::Corrupt(format!("grading: {e}")))?;
        let tool_ids: BTreeSet<String> =
            sqlx::query_scalar("SELECT tool_id FROM rm_course_tools WHERE course_id = $1")
                .bind(course_id)
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect();
        Ok(Some(CourseDetail { summary: summary_from_row!(r), grading, tool_ids }))
    })
}

const ENROLLMENT: &str =
    "SELECT user_id, role, status, name, email, first_launch, latest_launch, enrolled_at
   FROM rm_enrollments WHERE course_id = $1";

macro_rules! enrollment_from_row {
    ($r:expr) => {
        EnrollmentEntry {
            user_id: $r.get("user_id"),
            role: $r.get("role"),
            status: $r.get("status"),
            name: $r.get("name"),
            email: $r.get("email"),
            first_launch: $r.get("first_launch"),
            latest_launch: $r.get("latest_launch"),
            enrolled_at: $r.get("enrolled_at"),
        }
    };
}

/// The people of a course (dropped ones included, with their status).
pub async fn enrollments(db: &Db, course_id: &str) -> Result<Vec<EnrollmentEntry>, QueryError> {
    let sql = format!("{ENROLLMENT} ORDER BY user_id");
    with_db!(db, pool => {
        let rows = sqlx::query(&sql).bind(course_id).fetch_all(pool).await?;
        Ok(rows.iter().map(|r| enrollment_from_row!(r)).collect())
    })
}

pub async fn enrollment(
    db: &Db,
    course_id: &str,
    user_id: &str,
) -> Result<Option<EnrollmentEntry>, QueryError> {
    let sql = format!("{ENROLLMENT} AND user_id = $2");
    with_db!(db, pool => {
        let row = sqlx::query(&sql).bind(course_id).bind(user_id).fetch_optional(pool).await?;
        Ok(row.map(|r| enrollment_from_row!(r)))
    })
}

/// How far the read tables trail the log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lag {
    /// Events in the log not yet applied.
    pub events: i64,
    /// Age in seconds of the oldest event not yet applied; 0 when none.
    pub oldest_seconds: f64,
}

/// The lag of the read tables behind the log, given the projector's
/// checkpoint.
pub async fn projector_lag(db: &Db, at: Checkpoint) -> Result<Lag, sqlx::Error> {
    let row = match db {
        Db::Postgres(pool) => sqlx::query(
            "SELECT COUNT(*) AS n,
                        COALESCE(EXTRACT(EPOCH FROM (now() - MIN(recorded_at)))::float8, 0) AS age
                   FROM events WHERE (tx_id, position) > ($1::text::xid8, $2)",
        )
        .bind(at.tx.to_string())
        .bind(at.position)
        .fetch_one(pool)
        .await
        .map(|r| (r.get::<i64, _>("n"), r.get::<f64, _>("age")))?,
        Db::Sqlite(pool) => sqlx::query(
            "SELECT COUNT(*) AS n,
                    COALESCE((julianday('now') - julianday(MIN(recorded_at))) * 86400.0, 0.0) AS age
               FROM events WHERE position > $1",
        )
        .bind(at.position)
        .fetch_one(pool)
        .await
        .map(|r| (r.get::<i64, _>("n"), r.get::<f64, _>("age")))?,
    };
    Ok(Lag {
        events: row.0,
        // Clocks of the database and of this process may differ a little.
        oldest_seconds: row.1.max(0.0),
    })
}

/// A transaction of this database that keeps committed events from being
/// applied: on PostgreSQL the projector reads only below the oldest
/// transaction of this database still running (`events::PG_HORIZON`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    /// The backend's process id; `None` for a prepared transaction.
    pub pid: Option<i32>,
    /// The transaction's id.
    pub xid: i64,
    /// Seconds since the transaction started (a prepared one: since it was
    /// prepared); `None` where this database role may not see it.
    pub age_seconds: Option<f64>,
    /// The backend's state as `pg_stat_activity` shows it (`idle in
    /// transaction`, `active`, ...), or `prepared`.
    pub state: Option<String>,
    pub application_name: Option<String>,
    /// A prepared transaction's name, for `COMMIT PREPARED` or `ROLLBACK
    /// PREPARED`.
    pub gid: Option<String>,
}

/// Names the transactions of this database that hold the projector back
/// behind `at`: still running, with an id below that of an event already
/// committed and not yet applied. Oldest first, at most 10. Always empty on
/// SQLite, whose writers take turns.
pub async fn projector_held_back_by(db: &Db, at: Checkpoint) -> Result<Vec<Blocker>, sqlx::Error> {
    let Db::Postgres(pool) = db else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "WITH newest AS (SELECT max(tx_id) AS tx FROM events WHERE (tx_id, position) > ($1::text::xid8, $2)),
              running AS (SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x, newest WHERE x < newest.tx)
         SELECT a.pid, r.x::text::bigint AS xid,
                EXTRACT(EPOCH FROM now() - a.xact_start)::float8 AS age_seconds,
                a.state, a.application_name, NULL::text AS gid
           FROM running r JOIN pg_stat_activity a ON a.backend_xid = xid(r.x)
          WHERE a.datname = current_database()
         UNION ALL
         SELECT NULL, r.x::text::bigint, EXTRACT(EPOCH FROM now() - p.prepared)::float8,
                'prepared', NULL, p.gid
           FROM running r JOIN pg_prepared_xacts p ON p.transaction = xid(r.x)
          WHERE p.database = current_database()
          ORDER BY xid
          LIMIT 10",
    )
    .bind(at.tx.to_string())
    .bind(at.position)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Blocker {
                pid: r.try_get("pid")?,
                xid: r.try_get("xid")?,
                age_seconds: r
                    .try_get::<Option<f64>, _>("age_seconds")?
                    .map(|a| a.max(0.0)),
                state: r.try_get("state")?,
                application_name: r.try_get("application_name")?,
                gid: r.try_get("gid")?,
            })
        })
        .collect()
}

/// A course's line items in creation order, deleted ones included.
pub async fn line_items(
    db: &Db,
    course_id: &str,
) -> Result<Vec<crate::tables::view::LineItemRow>, QueryError> {
    with_db!(db, pool => {
        let rows = sqlx::query("SELECT line_item_id, spec, deleted FROM rm_line_items WHERE course_id = $1 ORDER BY created_tx, created_position")
            .bind(course_id)
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::tables::view::LineItemRow {
                    line_item_id: r.get("line_item_id"),
                    spec: serde_json::from_str(&r.get::<String, _>("spec"))
                        .map_err(|e| QueryError::Corrupt(format!("spec: {e}")))?,
                    deleted: r.get("deleted"),
                })
            })
            .collect()
    })
}
