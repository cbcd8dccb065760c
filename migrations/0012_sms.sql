-- The SMS channel. An organisation's gateway number routes a message to it (for the NEWS
-- keyword, which needs no session). Replies already given are kept for a day by the HMAC of the
-- gateway's message id, so that a retried webhook changes nothing and gets the same reply; the
-- hour they expire is all the time they carry.

ALTER TABLE organisations ADD COLUMN sms_number text UNIQUE CHECK (sms_number ~ '^\+?[0-9]{3,15}$');

CREATE TABLE sms_replies (
    message_hmac bytea PRIMARY KEY CHECK (octet_length(message_hmac) = 32),
    reply        text CHECK (length(reply) <= 1600),   -- NULL: no reply was sent
    expires_hour timestamptz NOT NULL CHECK (date_trunc('hour', expires_hour) = expires_hour)
);
CREATE INDEX sms_replies_by_expiry ON sms_replies (expires_hour);

-- Where a program keeps unfinished SMS answers: the answers so far as a standard sealed
-- envelope (sealed to the organisation's key, like any submission), which the idle-session job
-- stores as a submission instead of discarding.
ALTER TABLE sms_sessions ADD COLUMN partial bytea CHECK (octet_length(partial) BETWEEN 49 AND 65584);
