-- Cycles of a replay run in the data's time (their deadline is the data's): the deadline
-- watcher times them out at expires_at, a wall-clock budget set when the cycle is booked,
-- and their decisions join the hash chain when the cycle completes, in agent order, so
-- that the same replay gives the same chain whatever order the answers came in.
ALTER TABLE cycles ADD COLUMN IF NOT EXISTS data_time boolean NOT NULL DEFAULT false;
ALTER TABLE cycles ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS idx_decisions_unlinked ON decisions (cycle_id) WHERE seq IS NULL;
