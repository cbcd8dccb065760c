-- A conversation remembers the keys of every message it handled, not only the last one's, so
-- that a replayed (or late retried) earlier message changes nothing and sends nothing, however
-- long the conversation. The keys are keyed hashes of the gateway's message ids, on the
-- conversation's own row, which goes when the conversation ends.
ALTER TABLE sms_sessions ADD COLUMN handled bytea[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(handled) <= 100);
UPDATE sms_sessions SET handled = ARRAY[last_message] WHERE last_message IS NOT NULL;
ALTER TABLE sms_sessions DROP COLUMN last_message;
