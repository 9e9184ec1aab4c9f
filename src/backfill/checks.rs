//! The checks a row passes before it is decided: that its fields read as
//! what they name, and that the course, as the batch found it, has the line
//! item and the person as an active learner. The bounds of the numbers,
//! the timestamp and the comment are the domain's checks of every post
//! (`ScorePost::check`), answered with the domain's codes.

use gradebook_domain::enrollment::takes_scores;
use gradebook_domain::number::{read_decimal, ReadDecimal};
use gradebook_domain::score::{ActivityProgress, GradingProgress, RejectReason, ScorePost};
use gradebook_domain::{DomainError, LineItemId, UserId};
use gradebook_projections::tables::view::CourseView;

use super::{reject, RawRow, Rejection};

/// A row that passed every check of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRow {
    pub line_item_id: LineItemId,
    pub user_id: UserId,
    pub post: ScorePost,
}

/// A cell's number read from its digits; with the text, when a decimal
/// had to round it, to keep beside the value. `None` for an empty cell.
fn number(
    line: u64,
    what: &str,
    code: &'static str,
    s: &str,
) -> Result<Option<(ReadDecimal, Option<String>)>, Rejection> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let shown: String = s.chars().take(40).collect();
    match read_decimal(s) {
        Ok(read) => Ok(Some((read, (!read.is_exact()).then(|| s.to_string())))),
        Err(e) => Err(reject(line, code, format!("{what} {shown:?} {e}"))),
    }
}

/// Checks a row against itself and the course (as the view holds it).
pub fn check_row(view: &CourseView, line: u64, raw: RawRow) -> Result<CheckedRow, Rejection> {
    let unknown_item = DomainError::LineItemNotFound.code();
    let item_text = raw.line_item_id.trim();
    let line_item_id = LineItemId::parse(item_text).map_err(|_| {
        reject(
            line,
            unknown_item,
            format!("{item_text:?} is not a line item id"),
        )
    })?;
    match view
        .line_items
        .iter()
        .find(|i| i.line_item_id == line_item_id.as_str())
    {
        None => {
            return Err(reject(
                line,
                unknown_item,
                format!("the course has no line item {line_item_id}"),
            ))
        }
        Some(i) if i.deleted => {
            return Err(reject(
                line,
                RejectReason::LineItemDeleted.code(),
                format!("line item {line_item_id} was deleted; it takes no scores"),
            ))
        }
        Some(_) => {}
    }
    let not_enrolled = RejectReason::UserNotEnrolled.code();
    let user_text = raw.user_id.trim();
    let user_id = UserId::parse(user_text).map_err(|_| {
        reject(
            line,
            not_enrolled,
            format!("{user_text:?} is not a user id"),
        )
    })?;
    match view.enrollments.get(user_id.as_str()) {
        Some(e) if takes_scores(&e.role, e.status) => {}
        Some(e) => {
            return Err(reject(
                line,
                not_enrolled,
                format!(
                    "{user_id} is enrolled as {} ({}), not as an active learner",
                    e.role.name(),
                    e.status.as_str()
                ),
            ))
        }
        None => {
            return Err(reject(
                line,
                not_enrolled,
                format!("{user_id} is not enrolled in the course"),
            ))
        }
    }
    let given_code = DomainError::InvalidScoreGiven.code();
    // A backfill row sets a score; it never clears one.
    let (given, given_as_sent) = number(line, "score_given", given_code, &raw.score_given)?
        .ok_or_else(|| {
            reject(
                line,
                given_code,
                "score_given is empty; every row needs a number",
            )
        })?;
    let maximum = number(
        line,
        "score_maximum",
        DomainError::InvalidScoreMaximum.code(),
        &raw.score_maximum,
    )?;
    let ts = raw.timestamp.trim();
    let timestamp = gradebook_domain::time::parse(ts).map_err(|e| {
        let message = format!("timestamp {ts:?} {e}");
        reject(line, DomainError::InvalidTimestamp(e).code(), message)
    })?;
    let (maximum, maximum_as_sent) = maximum.unzip();
    let post = ScorePost {
        score_given: Some(given.value),
        score_maximum: maximum.map(|m| m.value),
        activity_progress: ActivityProgress::Completed,
        grading_progress: GradingProgress::FullyGraded,
        timestamp,
        comment: raw.comment.filter(|c| !c.trim().is_empty()),
        score_given_as_sent: given_as_sent,
        score_maximum_as_sent: maximum_as_sent.flatten(),
    };
    post.check()
        .map_err(|e| reject(line, e.code(), e.to_string()))?;
    Ok(CheckedRow {
        line_item_id,
        user_id,
        post,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_number_a_decimal_rounds_keeps_its_text_and_one_it_holds_none() {
        let code = "invalid_score_given";
        let (read, text) = number(
            2,
            "score_given",
            code,
            " 0.12345678901234567890123456789012345 ",
        )
        .unwrap()
        .unwrap();
        assert_eq!(read.value.to_string(), "0.1234567890123456789012345679");
        assert_eq!(
            text.as_deref(),
            Some("0.12345678901234567890123456789012345")
        );
        let (read, text) = number(2, "score_given", code, "1.6666666666666665")
            .unwrap()
            .unwrap();
        assert_eq!(read.value.to_string(), "1.6666666666666665");
        assert_eq!(text, None);
        for (bad, says) in [("1_000", "is not a number"), ("1e40", "is too large")] {
            let r = number(2, "score_given", code, bad).unwrap_err();
            assert_eq!(r.reason, "invalid_score_given");
            assert!(r.message.contains(says), "{}", r.message);
        }
    }
}
