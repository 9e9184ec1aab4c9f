-- The event log, shaped as sqlite-es expects (it names these seven columns
-- in its INSERT and reads them by name), plus columns of our own: a global
-- position (SQLite has one writer at a time, so a trigger assigning max + 1
-- is commit-ordered), the commit time and the course the aggregate belongs to.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       integer CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        text                         NOT NULL,
    metadata       text                         NOT NULL,
    position       integer,
    recorded_at    text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    course_id      text GENERATED ALWAYS AS (substr(aggregate_id, 1, instr(aggregate_id || '/', '/') - 1)) VIRTUAL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
CREATE TRIGGER events_assign_position AFTER INSERT ON events
BEGIN
    UPDATE events SET position = (SELECT IFNULL(MAX(position), 0) + 1 FROM events)
     WHERE rowid = NEW.rowid;
END;
CREATE INDEX events_course_position ON events (course_id, position);
CREATE INDEX events_recorded_at ON events (recorded_at);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
    payload          text                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
-- sqlite-es and postgres-es select snapshots by type and id.
CREATE INDEX snapshots_by_aggregate ON snapshots (aggregate_type, aggregate_id);

-- Where the projector has got to: every event at or below last_position has
-- been applied to the read tables (last_tx_id is always 0 here).
CREATE TABLE projector_checkpoints
(
    name          text   PRIMARY KEY,
    last_tx_id    integer NOT NULL,
    last_position integer NOT NULL,
    updated_at    text   NOT NULL
);

-- Read tables: written only by the projector, in the transaction that
-- advances its checkpoint. Decimals are kept as text (exact, and the same on
-- both stores); times as RFC 3339 text with fixed precision so they sort.
CREATE TABLE rm_courses
(
    course_id  text    PRIMARY KEY,
    title      text    NOT NULL,
    term       text    NOT NULL,
    scheme     text    NOT NULL,
    missing    text    NOT NULL,
    scale      text    NOT NULL,
    locked     integer NOT NULL,
    locked_at  text,
    opened_at  text    NOT NULL
);

CREATE TABLE rm_course_tools
(
    course_id text NOT NULL,
    tool_id   text NOT NULL,
    PRIMARY KEY (course_id, tool_id)
);

CREATE TABLE rm_resource_links
(
    course_id        text NOT NULL,
    resource_link_id text NOT NULL,
    tool_id          text NOT NULL,
    title            text NOT NULL,
    url              text,
    custom           text NOT NULL,
    line_item_id     text,
    created_at       text NOT NULL,
    PRIMARY KEY (course_id, resource_link_id)
);

CREATE TABLE rm_line_items
(
    course_id       text    NOT NULL,
    line_item_id    text    NOT NULL,
    spec            text    NOT NULL,
    label           text    NOT NULL,
    score_maximum   text    NOT NULL,
    resource_link_id text,
    tag             text,
    tool_id         text,
    deleted         integer NOT NULL,
    created_at      text    NOT NULL,
    created_tx      integer  NOT NULL,
    created_position integer NOT NULL,
    PRIMARY KEY (course_id, line_item_id)
);

CREATE TABLE rm_enrollments
(
    course_id     text NOT NULL,
    user_id       text NOT NULL,
    role          text NOT NULL,
    status        text NOT NULL,
    name          text,
    email         text,
    first_launch  text,
    latest_launch text,
    enrolled_at   text NOT NULL,
    PRIMARY KEY (course_id, user_id)
);

CREATE TABLE rm_tool_accounts
(
    course_id text NOT NULL,
    user_id   text NOT NULL,
    tool_id   text NOT NULL,
    account   text NOT NULL,
    PRIMARY KEY (course_id, user_id, tool_id)
);

-- One row per (line item, user) that ever received a post: the kept score and
-- what happened to the latest post.
CREATE TABLE rm_scores
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
);
CREATE INDEX rm_scores_user ON rm_scores (course_id, user_id);
