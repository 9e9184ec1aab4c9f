-- Kept course grades and their history (read tables, rebuilt by a replay).
--
-- rm_course_grades: each learner's course grade as the grade report shows
-- it, written by the projector in the transaction that applies the events
-- that changed it. `report_row` is the report's JSON row for the learner.
CREATE TABLE rm_course_grades
(
    course_id       text   NOT NULL,
    user_id         text   NOT NULL,
    tx_id           integer NOT NULL,
    position        integer NOT NULL,
    percent         text,
    letter          text,
    status          text   NOT NULL,
    report_row      text   NOT NULL,
    PRIMARY KEY (course_id, user_id)
);
-- An ordinary rowid table: its rows (about 3 kB for 20 items) are too large
-- for a WITHOUT ROWID table's B-tree, which suits small rows.
CREATE INDEX rm_course_grades_user ON rm_course_grades (user_id);

-- One row each time an event changes a learner's course grade as shown
-- (percent, letter or status), or puts the learner in or out of the report
-- (the before or after status is then null).
CREATE TABLE rm_grade_history
(
    course_id       text   NOT NULL,
    user_id         text   NOT NULL,
    tx_id           integer NOT NULL,
    position        integer NOT NULL,
    received_at     text   NOT NULL,
    event_type      text   NOT NULL,
    before_percent  text,
    before_letter   text,
    before_status   text,
    after_percent   text,
    after_letter    text,
    after_status    text,
    PRIMARY KEY (course_id, user_id, tx_id, position)
) WITHOUT ROWID;
CREATE INDEX rm_grade_history_received ON rm_grade_history (received_at);

-- Every score post's outcome for its cell, in log order: the counted score
-- over time, what `as_of` reads instead of folding the log.
CREATE TABLE rm_cell_history
(
    course_id         text   NOT NULL,
    tx_id             integer NOT NULL,
    position          integer NOT NULL,
    line_item_id      text   NOT NULL,
    user_id           text   NOT NULL,
    received_at       text   NOT NULL,
    outcome           text   NOT NULL,
    reason            text,
    score_given       text,
    score_maximum     text,
    activity_progress text,
    grading_progress  text,
    tool_timestamp    text,
    comment           text,
    PRIMARY KEY (course_id, tx_id, position)
) WITHOUT ROWID;

-- `as_of` folds a course's events other than score posts (its policy, line
-- items and people: a few dozen among thousands): this index finds them
-- without visiting the score events.
CREATE INDEX events_course_setup ON events (course_id, position) WHERE aggregate_type <> 'score';

-- The new tables are filled from the log: the read model (all of it derived
-- from the log) is emptied here, and the next `gradebook serve` rebuilds it
-- in one replay before it answers (`gradebook replay` does the same).
DELETE FROM rm_courses;
DELETE FROM rm_course_tools;
DELETE FROM rm_resource_links;
DELETE FROM rm_line_items;
DELETE FROM rm_enrollments;
DELETE FROM rm_tool_accounts;
DELETE FROM rm_scores;
DELETE FROM projector_checkpoints;
