-- Organisations, their programs, staff accounts and the audit log.
-- Tables that child rows must stay inside one organisation with carry UNIQUE (organisation_id, id),
-- so that composite foreign keys let the database itself refuse cross-tenant links.

CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'Records of this kind are written once; add a new row instead.';
END;
$$;

CREATE TABLE organisations (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                 text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- SMS never names the organisation unless it sets a name here.
    sms_name             text CHECK (length(sms_name) BETWEEN 1 AND 40),
    sms_help_text        text CHECK (length(sms_help_text) BETWEEN 1 AND 140),
    comments_enabled     boolean NOT NULL DEFAULT false,
    epsilon_per_year     numeric NOT NULL DEFAULT 4.0
                         CHECK (epsilon_per_year > 0 AND epsilon_per_year <= 10),
    epsilon_per_release  numeric NOT NULL DEFAULT 1.0
                         CHECK (epsilon_per_release > 0 AND epsilon_per_release <= epsilon_per_year),
    release_threshold    integer NOT NULL DEFAULT 11 CHECK (release_threshold >= 1),
    retention_grace_days integer NOT NULL DEFAULT 90 CHECK (retention_grace_days >= 0),
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE programs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id  uuid NOT NULL REFERENCES organisations (id),
    slug             text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    languages        text[] NOT NULL DEFAULT '{en,es}' CHECK (cardinality(languages) >= 1),
    keep_partial_sms boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, slug),
    UNIQUE (organisation_id, id)
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id),
    email           text NOT NULL UNIQUE
                    CHECK (email = lower(email) AND email ~ '^[^@\s]+@[^@\s]+$'),
    display_name    text CHECK (length(display_name) <= 200),
    role            text NOT NULL CHECK (role IN ('admin', 'manager', 'viewer')),
    -- argon2id string from libsodium; NULL until an invited user sets a password.
    password_hash   text CHECK (password_hash LIKE '$argon2id$%'),
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organisation_id, id)
);

-- Which programs a manager or viewer may see. Admins see every program of their organisation.
CREATE TABLE user_programs (
    organisation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    program_id      uuid NOT NULL,
    PRIMARY KEY (user_id, program_id),
    FOREIGN KEY (organisation_id, user_id) REFERENCES users (organisation_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id)
        ON DELETE CASCADE
);

-- Staff actions only: who did what, when. Never survivors.
CREATE TABLE audit_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id uuid REFERENCES organisations (id),
    user_id         uuid REFERENCES users (id),
    action          text NOT NULL CHECK (action ~ '^[a-z][a-z_.]*$'),
    subject         text,
    details         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_by_organisation ON audit_log (organisation_id, created_at);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
