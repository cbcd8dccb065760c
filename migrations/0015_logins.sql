-- Logins that hold under parallel guessing, and failures that admins see without the audit log
-- growing with every guess.
--
-- A failed passphrase puts off the account's next check (next_try_at): nothing after three
-- failures in a row, then 1, 2, 4 ... seconds, never more than a minute. Each check first claims
-- the account (next_try_at moved a few seconds on, in one statement), so guessers in parallel
-- get one check at a time; one who keeps failing keeps the account's owner waiting a minute at
-- most, never out.
ALTER TABLE users RENAME COLUMN locked_until TO next_try_at;

-- Failed logins per account (NULL: an address that names no account) and hour.
CREATE TABLE login_failures (
    organisation_id uuid REFERENCES organisations (id),
    user_id         uuid REFERENCES users (id) ON DELETE CASCADE,
    hour            timestamptz NOT NULL CHECK (date_trunc('hour', hour) = hour),
    attempts        integer NOT NULL CHECK (attempts >= 1),
    CHECK ((organisation_id IS NULL) = (user_id IS NULL)),
    UNIQUE NULLS NOT DISTINCT (user_id, hour)
);
CREATE INDEX login_failures_by_organisation ON login_failures (organisation_id, hour);

GRANT SELECT, INSERT, UPDATE ON login_failures TO feedback_staff;
GRANT SELECT, DELETE ON login_failures TO feedback_worker;

-- The audit log's failed logins so far: one row per attempt, no organisation. Folded into the
-- hourly counts; the append-only audit log keeps them.
INSERT INTO login_failures (hour, attempts)
SELECT date_trunc('hour', created_at), count(*)
  FROM audit_log WHERE action = 'login.failed'
 GROUP BY 1;
