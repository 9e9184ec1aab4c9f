-- The score gates: the write side's own copy of the three facts that decide
-- whether a score post is applied (the course is not locked, the line item
-- is not deleted, the person is an active learner), one row per course,
-- line item and enrollment, keyed '<aggregate type>:<aggregate id>'. A
-- command that changes a gate updates its row in the transaction that
-- appends its event; a score append checks the rows it was decided on in
-- the statement that inserts it. SQLite has one writer at a time, so the
-- two never interleave. A row that is missing (an aggregate from before
-- this table) is filled from the aggregate itself by the next post that
-- needs it. PostgreSQL's migration also adds the lock function.
CREATE TABLE score_gates
(
    gate text PRIMARY KEY,
    open boolean NOT NULL
) WITHOUT ROWID;
