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
use crate::projector::events::ReadError;
use crate::tables::view::{CourseView, EnrollmentRow, LastOutcome, LineItemRow, ScoreRow};
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

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> QueryError {
    QueryError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, QueryError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

pub(crate) fn parse_time(what: &str, s: Option<&str>) -> Result<Option<DateTime<Utc>>, QueryError> {
    s.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| corrupt(what, e))
    })
    .transpose()
}

pub(crate) fn parse_dec(what: &str, s: Option<&str>) -> Result<Option<Decimal>, QueryError> {
    s.map(|s| Decimal::from_str(s).map_err(|e| corrupt(what, e)))
        .transpose()
}

pub(crate) fn parse_enum<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, QueryError> {
    // Unit variants by their serde name, without building a JSON value.
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|e| corrupt(what, e))
}

/// Which people's enrollment and score cells a report view holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum People<'a> {
    All,
    /// One person (a student's provenance needs no one else's cells).
    One(&'a str),
}

/// A flag column: boolean on PostgreSQL, 0/1 on SQLite.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Int(i64),
}

impl Flag {
    fn get(self) -> bool {
        match self {
            Flag::Bool(b) => b,
            Flag::Int(i) => i != 0,
        }
    }
}

/// A line item row: id, spec, deleted, created_tx, created_position.
type ItemCols = (String, String, Flag, i64, i64);
/// An enrollment row: user, role, status, name, email, first and latest launch.
type PersonCols = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);
/// A score cell, in the order of [`CELL_COLUMNS`]. Its text is `&str`
/// where the driver's row can lend it (a course's grade report decodes 800
/// of these) and `String` from SQLite's JSON array, whose strings may hold
/// escapes and so cannot be borrowed.
type CellCols<S> = (
    String,
    String,
    Option<S>,
    Option<S>,
    Option<S>,
    Option<S>,
    Option<S>,
    Option<S>,
    Option<S>,
    S,
    Option<S>,
    S,
    i64,
    i64,
    i64,
);
const ITEM_COLUMNS: &str = "line_item_id, spec, deleted, created_tx, created_position";
const PERSON_COLUMNS: &str = "user_id, role, status, name, email, first_launch, latest_launch";
const CELL_COLUMNS: &str = "line_item_id, user_id, score_given, score_maximum, activity_progress, grading_progress, tool_timestamp, comment,
    kept_at, last_outcome, last_reason, last_post_at, posts, rejected, stale";

/// The statements of [`load_report_view`]. The course row comes with its
/// line items and enrollments folded into JSON arrays. On SQLite the score
/// cells come the same way, so a course of 800 cells is one row: the driver
/// hands rows over one at a time from its worker thread, which costs more
/// than the read itself. PostgreSQL streams rows cheaply and builds JSON
/// slowly, so there a whole course's cells are a second, plain statement.
fn report_view_sql(postgres: bool, people: People<'_>) -> (String, Option<String>) {
    let who = match people {
        People::All => "",
        People::One(_) => " AND user_id = $2",
    };
    let sub = |cols: &str, table: &str, filter: &str| {
        if postgres {
            format!("COALESCE((SELECT json_agg(json_build_array({cols})) FROM {table} WHERE course_id = $1{filter}), '[]'::json)::text")
        } else {
            format!("(SELECT json_group_array(json_array({cols})) FROM {table} WHERE course_id = $1{filter})")
        }
    };
    // One person's few cells are cheap to fold on PostgreSQL too.
    let cells_as_rows = postgres && people == People::All;
    let cells = if cells_as_rows {
        "NULL".to_string()
    } else {
        sub(CELL_COLUMNS, "rm_scores", who)
    };
    let course = format!(
        "SELECT c.title, c.term, c.scheme, c.missing, c.scale, c.locked,
                {} AS items, {} AS people, {cells} AS cells
           FROM rm_courses c WHERE c.course_id = $1",
        sub(ITEM_COLUMNS, "rm_line_items", ""),
        sub(PERSON_COLUMNS, "rm_enrollments", who),
    );
    let rows = cells_as_rows
        .then(|| format!("SELECT {CELL_COLUMNS} FROM rm_scores WHERE course_id = $1{who}"));
    (course, rows)
}

/// An optional text column as `&str`, whichever way it was read.
fn text<S: AsRef<str>>(s: &Option<S>) -> Option<&str> {
    s.as_ref().map(AsRef::as_ref)
}

/// One score cell of the view from its columns.
fn score_cell<S: AsRef<str>>(
    cols: CellCols<S>,
) -> Result<((String, String), ScoreRow), QueryError> {
    let (
        line_item_id,
        user_id,
        score_given,
        score_maximum,
        activity_progress,
        grading_progress,
        tool_timestamp,
        comment,
        kept_at,
        last_outcome,
        last_reason,
        last_post_at,
        posts,
        rejected,
        stale,
    ) = cols;
    let kept = match (&activity_progress, &grading_progress, &tool_timestamp) {
        (Some(a), Some(g), Some(t)) => Some(ScorePost {
            score_given: parse_dec("score_given", text(&score_given))?,
            score_maximum: parse_dec("score_maximum", text(&score_maximum))?,
            activity_progress: parse_enum("activity_progress", a.as_ref())?,
            grading_progress: parse_enum("grading_progress", g.as_ref())?,
            timestamp: chrono::DateTime::parse_from_rfc3339(t.as_ref())
                .map_err(|e| corrupt("tool_timestamp", e))?,
            comment: text(&comment).map(str::to_string),
            score_given_as_sent: None,
            score_maximum_as_sent: None,
        }),
        _ => None,
    };
    let last_outcome = last_outcome.as_ref();
    Ok((
        (line_item_id, user_id),
        ScoreRow {
            kept,
            kept_at: parse_time("kept_at", text(&kept_at))?,
            last_outcome: LastOutcome::parse(last_outcome)
                .ok_or_else(|| corrupt("last_outcome", last_outcome))?,
            last_reason: text(&last_reason)
                .map(|s| parse_enum::<RejectReason>("last_reason", s))
                .transpose()?,
            last_post_at: parse_time("last_post_at", Some(last_post_at.as_ref()))?
                .unwrap_or_default(),
            posts,
            rejected,
            stale,
        },
    ))
}

/// What the reports compute from: the course, its line items, and the
/// enrollments and score cells of `people`. Tool deployments and resource
/// links, which no report reads, are left empty; [`load_course_view`] adds
/// them. `None` if the course is unknown.
pub async fn load_report_view(
    db: &Db,
    course_id: &str,
    people: People<'_>,
) -> Result<Option<CourseView>, QueryError> {
    let (course_sql, cells_sql) = report_view_sql(db.is_postgres(), people);
    let user = match people {
        People::All => None,
        People::One(user_id) => Some(user_id),
    };
    let (row, cells) = with_db!(db, pool => {
        let mut q = sqlx::query(&course_sql).bind(course_id);
        if let Some(u) = user {
            q = q.bind(u);
        }
        let row = match q.fetch_optional(pool).await? {
            None => return Ok(None),
            Some(r) => (
                r.get::<String, _>("title"),
                r.get::<String, _>("term"),
                r.get::<String, _>("scheme"),
                r.get::<String, _>("missing"),
                r.get::<String, _>("scale"),
                r.get::<bool, _>("locked"),
                r.get::<String, _>("items"),
                r.get::<String, _>("people"),
                r.get::<Option<String>, _>("cells"),
            ),
        };
        let mut cells = BTreeMap::new();
        if let Some(sql) = &cells_sql {
            use futures_util::TryStreamExt;
            let mut q = sqlx::query(sql).bind(course_id);
            if let Some(u) = user {
                q = q.bind(u);
            }
            let mut rows = q.fetch(pool);
            while let Some(r) = rows.try_next().await? {
                let (key, cell) = score_cell::<&str>((
                    r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?,
                    r.try_get(5)?, r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?,
                    r.try_get(10)?, r.try_get(11)?, r.try_get(12)?, r.try_get(13)?, r.try_get(14)?,
                ))?;
                cells.insert(key, cell);
            }
        }
        (row, cells)
    });
    let (title, term, scheme, missing, scale, locked, items, persons, cells_json) = row;
    let policy = GradingPolicy {
        scheme: parse_json("scheme", &scheme)?,
        missing: parse_json("missing", &missing)?,
        scale: parse_json("scale", &scale)?,
    };

    let mut items: Vec<ItemCols> = parse_json("line items", &items)?;
    items.sort_by_key(|i| (i.3, i.4));
    let line_items = items
        .into_iter()
        .map(|(line_item_id, spec, deleted, _, _)| {
            Ok(LineItemRow {
                line_item_id,
                spec: parse_json::<LineItemSpec>("spec", &spec)?,
                deleted: deleted.get(),
            })
        })
        .collect::<Result<Vec<_>, QueryError>>()?;

    let mut enrollments = BTreeMap::new();
    for (user_id, role, status, name, email, first_launch, latest_launch) in
        parse_json::<Vec<PersonCols>>("enrollments", &persons)?
    {
        enrollments.insert(
            user_id.clone(),
            EnrollmentRow {
                user_id,
                role: Role::parse(&role).map_err(|e| corrupt("role", e))?,
                status: parse_enum::<EnrollmentStatus>("status", &status)?,
                name,
                email,
                first_launch: parse_time("first_launch", first_launch.as_deref())?,
                latest_launch: parse_time("latest_launch", latest_launch.as_deref())?,
            },
        );
    }

    let scores = match cells_json {
        Some(text) => parse_json::<Vec<CellCols<String>>>("score cells", &text)?
            .into_iter()
            .map(score_cell)
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        None => cells,
    };
    Ok(Some(CourseView {
        course_id: course_id.to_string(),
        title,
        term,
        policy,
        locked,
        tool_ids: BTreeSet::new(),
        line_items,
        resource_links: BTreeMap::new(),
        enrollments,
        scores,
    }))
}

/// The live view of a course from the read tables; `None` if unknown.
pub async fn load_course_view(db: &Db, course_id: &str) -> Result<Option<CourseView>, QueryError> {
    let Some(mut view) = load_report_view(db, course_id, People::All).await? else {
        return Ok(None);
    };
    with_db!(db, pool => {
        view.tool_ids = sqlx::query_scalar("SELECT tool_id FROM rm_course_tools WHERE course_id = $1")
            .bind(course_id)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
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
            view.resource_links.insert(id, link);
        }
    });
    Ok(Some(view))
}

/// The course as the engine held it at `as_of`: see
/// [`crate::tables::kept::course_view_as_of`]. `None` if it did not exist yet.
pub async fn course_view_as_of(
    db: &Db,
    course_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<CourseView>, QueryError> {
    crate::tables::kept::course_view_as_of(db, course_id, as_of).await
}

/// The course as the engine held it at `as_of`, folded from its whole log:
/// what the history tables are checked against.
pub async fn course_view_folded(
    db: &Db,
    course_id: &str,
    as_of: DateTime<Utc>,
) -> Result<Option<CourseView>, QueryError> {
    let events = crate::reports::audit::read_course_events(db, course_id).await?;
    Ok(CourseView::fold(course_id, &events, Some(as_of)))
}

/// What the read side says of the column a score post names. Whether the
/// course, the column and the learner let the score through is decided on
/// the score gates, not here (the read side may lag a lock or a drop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreContext {
    /// `None` when the course has no such line item.
    pub line_item_deleted: Option<bool>,
}

impl ScoreContext {
    /// From a row with the column `deleted` (the score post's queries on
    /// either store).
    pub(crate) fn from_row<R: Row>(r: &R) -> Self
    where
        for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
    {
        ScoreContext {
            line_item_deleted: r.get("deleted"),
        }
    }
}

/// Reads what a score post needs of the read side in one round trip;
/// `None` when the course does not exist.
pub async fn score_context(
    db: &Db,
    course_id: &str,
    line_item_id: &str,
) -> Result<Option<ScoreContext>, QueryError> {
    with_db!(db, pool => {
        let row = sqlx::query(
            "SELECT li.deleted
               FROM rm_courses c
               LEFT JOIN rm_line_items li ON li.course_id = c.course_id AND li.line_item_id = $2
              WHERE c.course_id = $1",
        )
        .bind(course_id)
        .bind(line_item_id)
        .fetch_optional(pool)
        .await?;
        Ok(row.as_ref().map(ScoreContext::from_row))
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
