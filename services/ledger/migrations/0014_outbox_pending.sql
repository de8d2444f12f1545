-- The outbox relay's take reads the rows neither published nor set aside, in id order.
-- Its old index (published_at IS NULL alone) matched that predicate only in part, so the
-- planner read it as a bitmap: every published row's dead entry sent it to the table, on
-- every pass, until a vacuum (2.4 ms a take after two days of a replay, against 0.05 ms).
-- An index on exactly the take's predicate is read in order, and an index scan marks the
-- dead entries it meets so that the next pass skips them.
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id)
    WHERE published_at IS NULL AND failed_at IS NULL;
DROP INDEX IF EXISTS outbox_unpublished;
