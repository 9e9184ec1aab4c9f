-- The event log, shaped as postgres-es expects (it names these seven columns
-- in its INSERT and reads them by name), plus columns of our own with
-- defaults: a global position, the writing transaction's id (so the
-- projector never passes an event that commits late with a lower position),
-- the commit time and the course the aggregate belongs to.
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    position       bigint GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz                  NOT NULL DEFAULT now(),
    course_id      text GENERATED ALWAYS AS (split_part(aggregate_id, '/', 1)) STORED,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
CREATE INDEX events_tx_position ON events (tx_id, position);
CREATE INDEX events_course_position ON events (course_id, position);
CREATE INDEX events_recorded_at ON events (recorded_at);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
-- sqlite-es and postgres-es select snapshots by type and id.
CREATE INDEX snapshots_by_aggregate ON snapshots (aggregate_type, aggregate_id);

-- Where the projector has got to: every event at or below (tx_id, position)
-- in that order has been applied to the read tables.
CREATE TABLE projector_checkpoints
(
    name          text   PRIMARY KEY,
    last_tx_id    bigint NOT NULL,
    last_position bigint NOT NULL,
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
    locked     boolean NOT NULL,
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
    deleted         boolean NOT NULL,
    created_at      text    NOT NULL,
    created_tx      bigint  NOT NULL,
    created_position bigint NOT NULL,
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
    posts             bigint NOT NULL,
    rejected          bigint NOT NULL,
    stale             bigint NOT NULL,
    PRIMARY KEY (course_id, line_item_id, user_id)
);
CREATE INDEX rm_scores_user ON rm_scores (course_id, user_id);
