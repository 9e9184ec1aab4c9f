//! Everything a tool's score post needs to know from the read tables, in
//! one round trip: whether the course deploys the tool itself, and whether
//! the line item exists and the tool may see it. The score rules' own facts
//! (lock, deletion, enrollment) come from the score gates.

use sqlx::Row;

use crate::db::Db;
use crate::tables::queries::{QueryError, ScoreContext};
use crate::with_db;

/// What the read tables say about one tool posting one learner's score
/// on one line item of one course, all named by their exact ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFacts {
    /// The course deploys the tool itself; the tool's own course set
    /// (every course, or a list) decides with it whether the tool reaches it.
    pub deployed: bool,
    /// The line item exists (deleted or not) and the tool sees it: it owns
    /// the column, or one of its resource links is bound to the column or
    /// is the column's own link.
    pub visible: bool,
    /// What `queries::score_context` reads of the column.
    pub context: ScoreContext,
}

/// `None` when the course does not exist.
pub async fn score_post_facts(
    db: &Db,
    course_id: &str,
    tool_id: &str,
    line_item_id: &str,
) -> Result<Option<PostFacts>, QueryError> {
    with_db!(db, pool => {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM rm_course_tools t
                             WHERE t.course_id = c.course_id AND t.tool_id = $2) AS deployed,
                    li.deleted,
                    (li.tool_id = $2 OR EXISTS (
                        SELECT 1 FROM rm_resource_links l
                         WHERE l.course_id = c.course_id AND l.tool_id = $2
                           AND (l.line_item_id = li.line_item_id
                                OR l.resource_link_id = li.resource_link_id))) AS visible
               FROM rm_courses c
               LEFT JOIN rm_line_items li ON li.course_id = c.course_id AND li.line_item_id = $3
              WHERE c.course_id = $1",
        )
        .bind(course_id)
        .bind(tool_id)
        .bind(line_item_id)
        .fetch_optional(pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let context = ScoreContext::from_row(&r);
        Ok(Some(PostFacts {
            deployed: r.get("deployed"),
            visible: context.line_item_deleted.is_some()
                && r.get::<Option<bool>, _>("visible").unwrap_or(false),
            context,
        }))
    })
}
