-- Known devices (OWASP's "device cookies"): a successful login leaves a signed cookie naming a
-- random id, kept here hashed. The next login of that account from that browser skips the
-- waits that failed logins put on the account, once: the row is spent by the check and made
-- again by a success. So a guesser who keeps an account waiting cannot keep its owner out.
CREATE TABLE staff_devices (
    id_hash         bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    organisation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    expires_at      timestamptz NOT NULL,
    FOREIGN KEY (organisation_id, user_id) REFERENCES users (organisation_id, id) ON DELETE CASCADE
);
CREATE INDEX staff_devices_by_user ON staff_devices (user_id);

GRANT SELECT, INSERT, DELETE ON staff_devices TO feedback_staff;
GRANT SELECT (expires_at), DELETE ON staff_devices TO feedback_worker;

-- How long the next check of an account waits after `failures` failed logins in a row: nothing
-- for the first three, then 1, 2, 4 ... seconds, never more than a minute. (The same schedule
-- as feedback.publish.accounts.wait_after, which tests compare with this.)
CREATE FUNCTION login_wait(failures integer) RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN failures < 3 THEN interval '0'
                ELSE least(interval '1 minute',
                           make_interval(secs => power(2, least(failures - 3, 10))))
           END
$$;

-- The staff role changes only the count of an hour's failed logins, never which account or
-- hour a row is for; the worker reads only the hour, to delete old rows.
REVOKE UPDATE ON login_failures FROM feedback_staff;
GRANT UPDATE (attempts) ON login_failures TO feedback_staff;
REVOKE SELECT ON login_failures FROM feedback_worker;
GRANT SELECT (hour) ON login_failures TO feedback_worker;
