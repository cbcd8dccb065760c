-- The program page of a period, drawn once: its charts (SVG) and tables, made from releases
-- only (which never change), keyed by a hash of the releases it reads and of the drawing
-- code's version. The worker draws it after a release is made; the staff app only reads it
-- (it serves the stored SVG as it is, so only the worker may write it).
CREATE TABLE release_views (
    key bytea PRIMARY KEY CHECK (length(key) = 32),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    program_id uuid NOT NULL REFERENCES programs (id) ON DELETE CASCADE,
    charts jsonb NOT NULL
);

GRANT SELECT ON release_views TO feedback_staff;
GRANT SELECT, INSERT ON release_views TO feedback_worker;
