-- How far a consumer of the books has applied the stream, written in the transaction of
-- the batch it applied: on start the ledger resumes right after it, in stream order,
-- whatever was left unacknowledged by a process that died.
CREATE TABLE IF NOT EXISTS consumer_positions (
    durable         text        PRIMARY KEY,
    stream_sequence bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
