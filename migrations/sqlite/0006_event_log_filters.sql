-- The user and line item an event belongs to, read from its aggregate id
-- (`course/user` for an enrollment, `course/item` for a line item,
-- `course/item/user` for a score), so the audit log and a student's
-- provenance filter by index instead of scanning. Both are generated, so the
-- store crates' INSERTs (which name their own seven columns) are unaffected.
ALTER TABLE events ADD COLUMN user_id text GENERATED ALWAYS AS (
    CASE aggregate_type
        WHEN 'enrollment' THEN substr(aggregate_id, instr(aggregate_id, '/') + 1)
        WHEN 'score' THEN substr(
            substr(aggregate_id, instr(aggregate_id, '/') + 1),
            instr(substr(aggregate_id, instr(aggregate_id, '/') + 1), '/') + 1)
    END) VIRTUAL;
ALTER TABLE events ADD COLUMN line_item_id text GENERATED ALWAYS AS (
    CASE aggregate_type
        WHEN 'line_item' THEN substr(aggregate_id, instr(aggregate_id, '/') + 1)
        WHEN 'score' THEN substr(
            substr(aggregate_id, instr(aggregate_id, '/') + 1), 1,
            instr(substr(aggregate_id, instr(aggregate_id, '/') + 1), '/') - 1)
    END) VIRTUAL;

-- The audit log pages in position order on SQLite.
CREATE INDEX events_user_position ON events (user_id, position);
CREATE INDEX events_line_item_position ON events (line_item_id, position);
-- A student's provenance, and reconciliation's refusals and locks, are read
-- without reading the course's whole log.
CREATE INDEX events_course_user ON events (course_id, user_id, position);
CREATE INDEX events_course_type ON events (course_id, event_type);
