-- Signed publications for funders (issue 14). A publication is a bundle built from releases
-- only, whose manifest the worker signs with the organisation's signing key (minisign format)
-- and chains to the previous manifest of its series. It is kept whole (the .tar.gz) and file
-- by file (for the funder's pages); neither is ever changed or removed: a correction is a new
-- publication of the same series that names the one it corrects.

-- The 0005 table was never written to: its single signed body gives way to the bundle.
DROP TABLE publications;

-- When a series is published: the day of the month after each period ends ("quarterly on
-- the 5th": 5 January, April, July and October), for every program or the ones listed.
CREATE TABLE publication_schedules (
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    series          text NOT NULL CHECK (series ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    granularity     text NOT NULL CHECK (granularity IN ('month', 'quarter', 'half', 'year')),
    day             smallint NOT NULL CHECK (day BETWEEN 1 AND 28),
    programs        uuid[],               -- NULL: every program of the organisation
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, series)
);

CREATE TABLE publications (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    series          text NOT NULL CHECK (series ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    sequence        integer NOT NULL CHECK (sequence >= 1),
    period          text NOT NULL,        -- "2026-Q1"
    programs        uuid[] NOT NULL,      -- what it shows: a funder sees it if it may see all
    issued          date NOT NULL,
    next_due        date,
    previous_sha256 text CHECK (previous_sha256 ~ '^[0-9a-f]{64}$'),
    corrects        integer,              -- the sequence this one corrects
    why             text CHECK (length(why) BETWEEN 1 AND 500),
    signing_key_id  uuid NOT NULL,
    manifest        bytea NOT NULL,
    manifest_sha256 text NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
    signature       text NOT NULL,
    archive         bytea NOT NULL,       -- the bundle as .tar.gz
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((corrects IS NULL) = (why IS NULL) AND (corrects IS NULL OR corrects < sequence)),
    CHECK ((sequence = 1) = (previous_sha256 IS NULL)),
    UNIQUE (organisation_id, series, sequence),
    UNIQUE (organisation_id, id),
    FOREIGN KEY (organisation_id, signing_key_id) REFERENCES signing_keys (organisation_id, id)
);
-- A schedule publishes a period once, however often or by however many workers it is run.
CREATE UNIQUE INDEX publications_once_per_period
    ON publications (organisation_id, series, period) WHERE corrects IS NULL;
CREATE TRIGGER publications_immutable BEFORE UPDATE OR DELETE ON publications
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER publications_no_truncate BEFORE TRUNCATE ON publications
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TABLE publication_files (
    publication_id uuid NOT NULL REFERENCES publications (id),
    path           text NOT NULL,
    data           bytea NOT NULL,
    PRIMARY KEY (publication_id, path)
);
CREATE TRIGGER publication_files_immutable BEFORE UPDATE OR DELETE ON publication_files
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER publication_files_no_truncate BEFORE TRUNCATE ON publication_files
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- "Publish now" from the staff app (the staff app cannot sign: the worker takes the request),
-- and why a scheduled publication was not made when it was due.
CREATE TABLE publication_requests (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    series          text NOT NULL,
    period          text NOT NULL
                    CHECK (period ~ '^2[0-2][0-9]{2}(-(0[1-9]|1[0-2])|-Q[1-4]|-H[12])?$'),
    requested_by    uuid REFERENCES users (id),  -- NULL: the schedule
    requested_at    timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz,
    publication_id  uuid REFERENCES publications (id),
    outcome         text CHECK (length(outcome) <= 1000),
    FOREIGN KEY (organisation_id, series) REFERENCES publication_schedules (organisation_id, series)
);
CREATE INDEX publication_requests_open ON publication_requests (requested_at)
    WHERE settled_at IS NULL;

-- What each funder may see: a publication whose programs are all among them.
CREATE TABLE funder_programs (
    organisation_id uuid NOT NULL,
    funder_id       uuid NOT NULL,
    program_id      uuid NOT NULL,
    PRIMARY KEY (funder_id, program_id),
    FOREIGN KEY (organisation_id, funder_id) REFERENCES funders (organisation_id, id),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id)
);

-- A revoked link stays revoked: the staff role may revoke, never restore.
CREATE FUNCTION funders_revocation_is_final() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at THEN
        RAISE EXCEPTION 'a revoked funder link stays revoked: add the funder again for a new one'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER funders_revocation_is_final BEFORE UPDATE ON funders
    FOR EACH ROW EXECUTE FUNCTION funders_revocation_is_final();

-- Staff: read publications, ask for one (what and who only: the worker alone settles it),
-- keep funders and their links.
GRANT SELECT ON publications, publication_files, publication_schedules TO feedback_staff;
GRANT SELECT ON publication_requests TO feedback_staff;
GRANT INSERT (organisation_id, series, period, requested_by) ON publication_requests
    TO feedback_staff;
GRANT INSERT (organisation_id, name, email, link_token_hash) ON funders TO feedback_staff;
GRANT UPDATE (revoked_at) ON funders TO feedback_staff;
GRANT SELECT, INSERT ON funder_programs TO feedback_staff;
-- Worker and key holder: add schedules; build, sign and store publications; settle requests.
GRANT SELECT, INSERT ON publications, publication_files, publication_schedules
    TO feedback_worker;
GRANT SELECT, INSERT ON publication_requests TO feedback_worker;
GRANT UPDATE (settled_at, outcome, publication_id) ON publication_requests TO feedback_worker;
