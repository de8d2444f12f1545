-- Each applied migration's sha256 (of the file's bytes): a file edited after it was
-- applied is found at start-up instead of being silently skipped. Rows applied before
-- this column existed are filled with the hash of the file as it is at the next start.

ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 text;
