-- Admins keep their organisation's settings and programs on the staff app's pages (before,
-- only the CLI or SQL could). The privacy budget, the release threshold and retention stay
-- with the CLI and the database owner; keys are never made or changed from the staff app.
GRANT UPDATE (sms_name, sms_help_text, sms_number, comments_enabled) ON organisations
    TO feedback_staff;
-- A new program's short name and name only: its privacy group, notes and SMS choices are set
-- by their own audited paths.
GRANT INSERT (organisation_id, slug, name) ON programs TO feedback_staff;
GRANT UPDATE (name) ON programs TO feedback_staff;
