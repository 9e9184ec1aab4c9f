//! People across courses, from the enrollments read table: finding a person
//! by id or name, and one person's courses (until a per-student grades API
//! exists, the registrar's student search reads these).

use serde::Serialize;
use sqlx::Row;

use crate::db::Db;
use crate::tables::queries::QueryError;
use crate::with_db;

/// The most people a search returns.
pub const SEARCH_LIMIT: i64 = 50;

/// A person found by a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonMatch {
    pub user_id: String,
    /// A name the person is enrolled under (the smallest, when courses differ).
    pub name: Option<String>,
    /// Courses the person is enrolled in, dropped ones included.
    pub courses: i64,
}

/// One of a person's enrollments, with its course.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonCourse {
    pub course_id: String,
    pub title: String,
    pub term: String,
    pub role: String,
    pub status: String,
    pub name: Option<String>,
    pub locked: bool,
}

/// `text` as a LIKE pattern matching it anywhere, lower-cased, with `\`,
/// `%` and `_` escaped (the queries say `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// People whose user id or name contains `text` (ignoring case), across
/// all courses, ordered by user id, at most [`SEARCH_LIMIT`]. An empty
/// text finds no one.
pub async fn search_people(db: &Db, text: &str) -> Result<Vec<PersonMatch>, QueryError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let sql = "SELECT user_id, MIN(name) AS name, COUNT(*) AS courses
                 FROM rm_enrollments
                WHERE LOWER(user_id) LIKE $1 ESCAPE '\\'
                   OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\'
                GROUP BY user_id
                ORDER BY user_id
                LIMIT $2";
    let pattern = contains_pattern(text);
    with_db!(db, pool => {
        let rows = sqlx::query(sql).bind(&pattern).bind(SEARCH_LIMIT).fetch_all(pool).await?;
        Ok(rows
            .iter()
            .map(|r| PersonMatch {
                user_id: r.get("user_id"),
                name: r.get("name"),
                courses: r.get("courses"),
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_escapes_like_wildcards() {
        assert_eq!(contains_pattern("Ada"), "%ada%");
        assert_eq!(contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
