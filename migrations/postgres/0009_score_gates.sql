-- The score gates: the write side's own copy of the three facts that decide
-- whether a score post is applied (the course is not locked, the line item
-- is not deleted, the person is an active learner), one row per course,
-- line item and enrollment, keyed '<aggregate type>:<aggregate id>'. A
-- command that changes a gate updates its row in the transaction that
-- appends its event, holding the course's gate lock exclusively; a score
-- append checks the rows it was decided on in the statement that inserts
-- it, holding the same lock shared (score_gates_hold). So once a lock has
-- committed, no score decided on "unlocked" can still be appended. A row
-- that is missing (an aggregate from before this table) is filled from the
-- aggregate itself by the next post that needs it.
CREATE TABLE score_gates
(
    gate text PRIMARY KEY,
    open boolean NOT NULL
);

-- Takes the course's gate lock shared until the calling transaction ends,
-- then says whether every gate in `gates` is (still) `expected`. VOLATILE:
-- its query takes a fresh snapshot after the lock is granted, so it sees a
-- gate change that committed while it waited (the calling statement's own
-- snapshot may be older). Advisory locks queue fairly: a shared request
-- waits behind an exclusive one already waiting, so a stream of score posts
-- cannot starve a lock. The two-key form keeps these keys apart from the
-- projector's one-key leader lock.
CREATE FUNCTION score_gates_hold(course text, gates text[], expected boolean[])
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
AS
$$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1919181921, hashtext(course));
    RETURN (SELECT count(*)
              FROM unnest(gates, expected) AS x(gate, open)
              JOIN score_gates g ON g.gate = x.gate AND g.open = x.open) = cardinality(gates);
END
$$;
