-- rm_scores is rebuilt WITHOUT ROWID, so the table itself is the primary
-- key's B-tree: a course's cells (every report reads all of them, or one
-- learner's) lie together in a few pages, instead of being spread over the
-- whole table in the order their first posts arrived. The rows are copied
-- across unchanged.
CREATE TABLE rm_scores_clustered
(
    course_id         text   NOT NULL,
    line_item_id      text   NOT NULL,
    user_id           text   NOT NULL,
    score_given       text,
    score_maximum     text,
    activity_progress text,
    grading_progress  text,
    tool_timestamp    text,
    comment           text,
    kept_at           text,
    last_outcome      text   NOT NULL,
    last_reason       text,
    last_post_at      text   NOT NULL,
    posts             integer NOT NULL,
    rejected          integer NOT NULL,
    stale             integer NOT NULL,
    PRIMARY KEY (course_id, line_item_id, user_id)
) WITHOUT ROWID;

INSERT INTO rm_scores_clustered
    (course_id, line_item_id, user_id, score_given, score_maximum, activity_progress,
     grading_progress, tool_timestamp, comment, kept_at, last_outcome, last_reason,
     last_post_at, posts, rejected, stale)
SELECT course_id, line_item_id, user_id, score_given, score_maximum, activity_progress,
       grading_progress, tool_timestamp, comment, kept_at, last_outcome, last_reason,
       last_post_at, posts, rejected, stale
  FROM rm_scores
 ORDER BY course_id, line_item_id, user_id;

DROP TABLE rm_scores;
ALTER TABLE rm_scores_clustered RENAME TO rm_scores;
CREATE INDEX rm_scores_user ON rm_scores (course_id, user_id);
