//! Helpers shared by the read side's property tests.

use gradebook_domain::score::{RejectReason, ScoreEvent, ScorePost};
use gradebook_domain::{CourseId, LineItemId, UserId};

/// What a generated post did.
pub enum Outcome {
    Accepted,
    Cleared,
    Stale,
    Rejected(RejectReason),
}

/// The score event of one generated post on a cell; a stale post keeps its
/// own timestamp as the kept one.
pub fn score_event(
    outcome: Outcome,
    course_id: CourseId,
    line_item_id: LineItemId,
    user_id: UserId,
    post: ScorePost,
) -> ScoreEvent {
    match outcome {
        Outcome::Accepted => ScoreEvent::ScoreAccepted {
            course_id,
            line_item_id,
            user_id,
            post,
        },
        Outcome::Cleared => ScoreEvent::ScoreCleared {
            course_id,
            line_item_id,
            user_id,
            post,
        },
        Outcome::Stale => ScoreEvent::ScoreIgnoredStale {
            kept_timestamp: post.timestamp,
            course_id,
            line_item_id,
            user_id,
            post,
        },
        Outcome::Rejected(reason) => ScoreEvent::ScoreRejected {
            course_id,
            line_item_id,
            user_id,
            post,
            reason,
        },
    }
}
