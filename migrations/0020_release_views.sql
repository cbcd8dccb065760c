-- The program page of a period, drawn once: its charts (SVG) and tables, made from releases
-- only (which never change), keyed by a hash of the releases it reads and of the drawing
-- code's version. The worker draws it after a release is made; the staff app serves it
-- without drawing, and draws (in the background) only what is missing.
CREATE TABLE release_views (
    key bytea PRIMARY KEY CHECK (length(key) = 32),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    program_id uuid NOT NULL REFERENCES programs (id) ON DELETE CASCADE,
    charts jsonb NOT NULL
);

GRANT SELECT, INSERT ON release_views TO feedback_staff, feedback_worker;
