-- Differentially private releases (immutable), the privacy budget ledger (append-only), the
-- notes managers write back to survivors, funders and the signed summaries they receive.

CREATE TABLE releases (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    program_id      uuid,                 -- NULL: the whole organisation
    survey_id       uuid NOT NULL,
    granularity     text NOT NULL CHECK (granularity IN ('month', 'quarter', 'year')),
    period_start    date NOT NULL,
    period_end      date NOT NULL,        -- exclusive
    breakdown       text,                 -- demographic question id, or NULL for the overall table
    mechanism       text NOT NULL,
    epsilon         numeric NOT NULL CHECK (epsilon > 0),
    noise_scale     numeric NOT NULL CHECK (noise_scale > 0),
    threshold       integer NOT NULL CHECK (threshold >= 1),
    cells           jsonb NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start),
    UNIQUE NULLS NOT DISTINCT
        (organisation_id, program_id, survey_id, granularity, period_start, breakdown),
    UNIQUE (organisation_id, id),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, survey_id) REFERENCES surveys (organisation_id, id)
);
-- Asking again returns the stored values; a release is never changed or removed.
CREATE TRIGGER releases_immutable BEFORE UPDATE OR DELETE ON releases
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER releases_no_truncate BEFORE TRUNCATE ON releases
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE TABLE privacy_ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id uuid NOT NULL,
    budget_year     integer NOT NULL CHECK (budget_year BETWEEN 2000 AND 2200),
    release_id      uuid NOT NULL UNIQUE,
    epsilon         numeric NOT NULL CHECK (epsilon > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organisation_id, release_id) REFERENCES releases (organisation_id, id)
);
CREATE INDEX privacy_ledger_by_year ON privacy_ledger (organisation_id, budget_year);
CREATE TRIGGER privacy_ledger_append_only BEFORE UPDATE OR DELETE ON privacy_ledger
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER privacy_ledger_no_truncate BEFORE TRUNCATE ON privacy_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- "You said, we did": what a program changed because of a release, in one or more languages.
CREATE TABLE notes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL,
    program_id      uuid NOT NULL,
    release_id      uuid,
    author_id       uuid REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    withdrawn_at    timestamptz,
    UNIQUE (organisation_id, id),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, release_id) REFERENCES releases (organisation_id, id)
);
CREATE INDEX notes_by_program ON notes (program_id, created_at);

CREATE TABLE note_texts (
    note_id  uuid NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    language text NOT NULL CHECK (language ~ '^[a-z]{2,3}$'),
    body     text NOT NULL CHECK (length(body) BETWEEN 1 AND 1000),
    PRIMARY KEY (note_id, language)
);

CREATE TABLE funders (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email           text CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    -- The private link's token is shown once; only its hash is kept.
    link_token_hash bytea NOT NULL UNIQUE CHECK (octet_length(link_token_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    UNIQUE (organisation_id, id)
);

-- Signed funder summaries: the exact bytes that were signed, and the Ed25519 signature.
CREATE TABLE publications (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    granularity     text NOT NULL CHECK (granularity IN ('month', 'quarter', 'year')),
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    signing_key_id  uuid NOT NULL,
    body            bytea NOT NULL,
    signature       bytea NOT NULL CHECK (octet_length(signature) = 64),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (period_end > period_start),
    UNIQUE (organisation_id, granularity, period_start),
    FOREIGN KEY (organisation_id, signing_key_id) REFERENCES signing_keys (organisation_id, id)
);
CREATE TRIGGER publications_immutable BEFORE UPDATE OR DELETE ON publications
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
