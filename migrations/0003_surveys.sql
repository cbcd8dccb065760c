-- Survey definitions (versioned, immutable once stored) and invitations to answer them.

CREATE TABLE surveys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    slug            text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    version         integer NOT NULL CHECK (version >= 1),
    definition      jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, slug, version),
    UNIQUE (organisation_id, id)
);
-- A new version is a new row: submissions sealed under a version must keep meaning what they meant.
CREATE TRIGGER surveys_immutable BEFORE UPDATE ON surveys
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- Single-use links and SMS codes, and open (poster) links. Only a hash of each token is stored.
-- used_week, not a timestamp: survivors' rows carry at most the ISO week (DESIGN section 3.5).
CREATE TABLE invitations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL,
    program_id      uuid NOT NULL,
    survey_id       uuid NOT NULL,
    batch_id        uuid,
    kind            text NOT NULL CHECK (kind IN ('single', 'open')),
    medium          text NOT NULL CHECK (medium IN ('link', 'sms')),
    token_hash      bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    expires_at      timestamptz,
    used_week       date CHECK (extract(isodow FROM used_week) = 1),
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'single' OR used_week IS NULL),
    CHECK (kind = 'open' OR expires_at IS NOT NULL),
    UNIQUE (organisation_id, id),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, survey_id) REFERENCES surveys (organisation_id, id)
);
CREATE INDEX invitations_by_batch ON invitations (program_id, batch_id);
CREATE INDEX invitations_by_expiry ON invitations (expires_at) WHERE expires_at IS NOT NULL;
