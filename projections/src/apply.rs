//! What each event writes to the read tables, as driver-neutral statements.
//! Every statement is an insert or an upsert computed from the event alone
//! (no read-modify-write), so applying a batch needs no reads and the SQL is
//! the same on both stores. [`crate::view::CourseView::apply`] is the
//! in-memory twin of this module; a test holds the two equal.

use gradebook_domain::course::CourseEvent;
use gradebook_domain::enrollment::EnrollmentEvent;
use gradebook_domain::line_item::{LineItemEvent, LineItemSpec};
use gradebook_domain::score::{ScoreEvent, ScorePost};

use crate::db::{ts, Param, Stmt};
use crate::events::{AnyEvent, Envelope};

fn json<T: serde::Serialize>(v: &T) -> Param {
    // Serialising our own types to JSON cannot fail.
    Param::Text(Some(serde_json::to_string(v).unwrap_or_default()))
}

fn dec(d: Option<rust_decimal::Decimal>) -> Param {
    Param::Text(d.map(|d| d.to_string()))
}

fn enum_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The last segment of an aggregate id (`course/item` -> `item`).
fn last_segment(aggregate_id: &str) -> String {
    aggregate_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn line_item_columns(spec: &LineItemSpec) -> Vec<Param> {
    vec![
        json(spec),
        spec.label.clone().into(),
        spec.score_maximum.to_string().into(),
        spec.resource_link_id.clone().into(),
        spec.tag.clone().into(),
        spec.tool_id.as_ref().map(|t| t.to_string()).into(),
    ]
}

fn kept_columns(post: &ScorePost) -> Vec<Param> {
    vec![
        dec(post.score_given),
        dec(post.score_maximum),
        enum_name(&post.activity_progress).into(),
        enum_name(&post.grading_progress).into(),
        post.timestamp.to_rfc3339().into(),
        post.comment.clone().into(),
    ]
}

pub fn statements(env: &Envelope) -> Vec<Stmt> {
    let at = ts(env.meta.received_at);
    let course_id = gradebook_domain::ids::aggregate_id::course_of(&env.aggregate_id).to_string();
    match &env.event {
        AnyEvent::Course(e) => course(e, course_id, at),
        AnyEvent::LineItem(e) => line_item(e, env, course_id, at),
        AnyEvent::Enrollment(e) => enrollment(e, env, course_id),
        AnyEvent::Score(e) => score(e, at),
    }
}

fn course(e: &CourseEvent, course_id: String, at: String) -> Vec<Stmt> {
    match e {
        CourseEvent::CourseOpened { title, term, tool_ids, .. } => {
            let mut out = vec![Stmt::new(
                "INSERT INTO rm_courses (course_id, title, term, scheme, missing, scale, locked, locked_at, opened_at)
                 VALUES ($1, $2, $3, $4, $5, '[]', $6, NULL, $7)",
                vec![
                    course_id.clone().into(),
                    title.clone().into(),
                    term.clone().into(),
                    json(&gradebook_domain::policy::Scheme::Points),
                    json(&gradebook_domain::policy::MissingPolicy::Exclude),
                    false.into(),
                    at.into(),
                ],
            )];
            out.extend(tools(&course_id, tool_ids));
            out
        }
        CourseEvent::GradingSchemeSet { scheme, missing } => vec![Stmt::new(
            "UPDATE rm_courses SET scheme = $2, missing = $3 WHERE course_id = $1",
            vec![course_id.into(), json(scheme), json(missing)],
        )],
        CourseEvent::GradeScaleSet { scale } => vec![Stmt::new(
            "UPDATE rm_courses SET scale = $2 WHERE course_id = $1",
            vec![course_id.into(), json(scale)],
        )],
        CourseEvent::ToolDeploymentsAllowed { tool_ids } => tools(&course_id, tool_ids),
        CourseEvent::ResourceLinkAdded { link } => vec![Stmt::new(
            "INSERT INTO rm_resource_links (course_id, resource_link_id, tool_id, title, url, custom, line_item_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            vec![
                course_id.into(),
                link.resource_link_id.to_string().into(),
                link.tool_id.to_string().into(),
                link.title.clone().into(),
                link.url.clone().into(),
                json(&link.custom),
                link.line_item_id.as_ref().map(|l| l.to_string()).into(),
                at.into(),
            ],
        )],
        CourseEvent::CourseLocked { .. } => vec![Stmt::new(
            "UPDATE rm_courses SET locked = $2, locked_at = $3 WHERE course_id = $1",
            vec![course_id.into(), true.into(), at.into()],
        )],
        CourseEvent::CourseUnlocked { .. } => vec![Stmt::new(
            "UPDATE rm_courses SET locked = $2, locked_at = NULL WHERE course_id = $1",
            vec![course_id.into(), false.into()],
        )],
    }
}

fn tools(course_id: &str, tool_ids: &[gradebook_domain::ToolId]) -> Vec<Stmt> {
    tool_ids
        .iter()
        .map(|t| {
            Stmt::new(
                "INSERT INTO rm_course_tools (course_id, tool_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                vec![course_id.into(), t.to_string().into()],
            )
        })
        .collect()
}

fn line_item(e: &LineItemEvent, env: &Envelope, course_id: String, at: String) -> Vec<Stmt> {
    let id = last_segment(&env.aggregate_id);
    match e {
        LineItemEvent::LineItemCreated { spec, .. } => {
            let mut params = vec![course_id.into(), id.into()];
            params.extend(line_item_columns(spec));
            params.extend([
                false.into(),
                at.into(),
                env.at.tx.into(),
                env.at.position.into(),
            ]);
            vec![Stmt::new(
                "INSERT INTO rm_line_items (course_id, line_item_id, spec, label, score_maximum, resource_link_id, tag, tool_id, deleted, created_at, created_tx, created_position)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                params,
            )]
        }
        LineItemEvent::LineItemUpdated { spec } => {
            let mut params = vec![course_id.into(), id.into()];
            params.extend(line_item_columns(spec));
            vec![Stmt::new(
                "UPDATE rm_line_items SET spec = $3, label = $4, score_maximum = $5, resource_link_id = $6, tag = $7, tool_id = $8
                 WHERE course_id = $1 AND line_item_id = $2",
                params,
            )]
        }
        LineItemEvent::LineItemDeleted => vec![Stmt::new(
            "UPDATE rm_line_items SET deleted = $3 WHERE course_id = $1 AND line_item_id = $2",
            vec![course_id.into(), id.into(), true.into()],
        )],
    }
}

fn enrollment(e: &EnrollmentEvent, env: &Envelope, course_id: String) -> Vec<Stmt> {
    let user = last_segment(&env.aggregate_id);
    match e {
        EnrollmentEvent::Enrolled { person, .. } => vec![Stmt::new(
            "INSERT INTO rm_enrollments (course_id, user_id, role, status, name, email, first_launch, latest_launch, enrolled_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)",
            vec![
                course_id.into(),
                user.into(),
                person.role.name().into(),
                person.status.as_str().into(),
                person.name.clone().into(),
                person.email.clone().into(),
                ts(env.meta.received_at).into(),
            ],
        )],
        EnrollmentEvent::EnrollmentUpdated { person } => vec![Stmt::new(
            "UPDATE rm_enrollments SET role = $3, status = $4, name = $5, email = $6 WHERE course_id = $1 AND user_id = $2",
            vec![
                course_id.into(),
                user.into(),
                person.role.name().into(),
                person.status.as_str().into(),
                person.name.clone().into(),
                person.email.clone().into(),
            ],
        )],
        EnrollmentEvent::EnrollmentStatusChanged { to, .. } => vec![Stmt::new(
            "UPDATE rm_enrollments SET status = $3 WHERE course_id = $1 AND user_id = $2",
            vec![course_id.into(), user.into(), to.as_str().into()],
        )],
        EnrollmentEvent::LaunchRecorded { at, .. } => vec![Stmt::new(
            "UPDATE rm_enrollments SET first_launch = COALESCE(first_launch, $3), latest_launch = $3 WHERE course_id = $1 AND user_id = $2",
            vec![course_id.into(), user.into(), ts(*at).into()],
        )],
        EnrollmentEvent::ToolAccountLinked { tool_id, account } => vec![Stmt::new(
            "INSERT INTO rm_tool_accounts (course_id, user_id, tool_id, account) VALUES ($1, $2, $3, $4)
             ON CONFLICT (course_id, user_id, tool_id) DO UPDATE SET account = excluded.account",
            vec![course_id.into(), user.into(), tool_id.to_string().into(), account.clone().into()],
        )],
    }
}

fn score(e: &ScoreEvent, at: String) -> Vec<Stmt> {
    let (course, item, user) = e.ids();
    let mut params: Vec<Param> = vec![
        course.to_string().into(),
        item.to_string().into(),
        user.to_string().into(),
        at.into(),
    ];
    match e {
        ScoreEvent::ScoreAccepted { post, .. } | ScoreEvent::ScoreCleared { post, .. } => {
            let outcome = if post.score_given.is_some() { "accepted" } else { "cleared" };
            params.push(outcome.into());
            params.extend(kept_columns(post));
            vec![Stmt::new(
                "INSERT INTO rm_scores (course_id, line_item_id, user_id, last_post_at, kept_at, last_outcome, last_reason,
                                        score_given, score_maximum, activity_progress, grading_progress, tool_timestamp, comment,
                                        posts, rejected, stale)
                 VALUES ($1, $2, $3, $4, $4, $5, NULL, $6, $7, $8, $9, $10, $11, 1, 0, 0)
                 ON CONFLICT (course_id, line_item_id, user_id) DO UPDATE SET
                    last_post_at = excluded.last_post_at, kept_at = excluded.kept_at,
                    last_outcome = excluded.last_outcome, last_reason = NULL,
                    score_given = excluded.score_given, score_maximum = excluded.score_maximum,
                    activity_progress = excluded.activity_progress, grading_progress = excluded.grading_progress,
                    tool_timestamp = excluded.tool_timestamp, comment = excluded.comment,
                    posts = rm_scores.posts + 1",
                params,
            )]
        }
        ScoreEvent::ScoreIgnoredStale { .. } => vec![Stmt::new(
            "INSERT INTO rm_scores (course_id, line_item_id, user_id, last_post_at, last_outcome, posts, rejected, stale)
             VALUES ($1, $2, $3, $4, 'stale', 1, 0, 1)
             ON CONFLICT (course_id, line_item_id, user_id) DO UPDATE SET
                last_post_at = excluded.last_post_at, last_outcome = 'stale', last_reason = NULL,
                posts = rm_scores.posts + 1, stale = rm_scores.stale + 1",
            params,
        )],
        ScoreEvent::ScoreRejected { reason, .. } => {
            params.push(reason.code().into());
            vec![Stmt::new(
                "INSERT INTO rm_scores (course_id, line_item_id, user_id, last_post_at, last_outcome, last_reason, posts, rejected, stale)
                 VALUES ($1, $2, $3, $4, 'rejected', $5, 1, 1, 0)
                 ON CONFLICT (course_id, line_item_id, user_id) DO UPDATE SET
                    last_post_at = excluded.last_post_at, last_outcome = 'rejected', last_reason = excluded.last_reason,
                    posts = rm_scores.posts + 1, rejected = rm_scores.rejected + 1",
                params,
            )]
        }
    }
}
