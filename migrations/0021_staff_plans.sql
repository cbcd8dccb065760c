-- Admins add, preview and remove plan lines on the staff app's budget page (before, only the
-- CLI could). Adding a line locks the organisation's row, as a release does, so that two
-- budget checks never interleave: FOR UPDATE needs UPDATE on some column, and the display
-- name is one an admin may change anyway. The yearly budget itself stays CLI-only.
GRANT INSERT, DELETE ON release_plans TO feedback_staff;
GRANT UPDATE (name) ON organisations TO feedback_staff;
