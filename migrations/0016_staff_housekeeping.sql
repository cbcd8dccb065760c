-- The worker deletes what the staff side leaves behind (see feedback/publish/jobs.py): expired
-- sessions, set-password links that are spent or expired, and old failed-login counts (it could
-- already delete those). It reads only the columns that say when a row is dead.
GRANT SELECT (expires_at), DELETE ON staff_sessions TO feedback_worker;
GRANT SELECT (expires_at, used_at), DELETE ON password_links TO feedback_worker;
