-- Sealed answers. Nothing here is readable without the organisation's private key: a submission
-- row holds a random id, where it belongs, which key sealed it, the channel, the ISO week it
-- arrived (a Monday) and the sealed box. There is no timestamp column, by design.

CREATE TABLE submissions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL,
    program_id      uuid NOT NULL,
    survey_id       uuid NOT NULL,
    key_id          uuid NOT NULL,
    -- web: sealed in the browser; web_nojs: sealed in server memory on arrival; sms: by SMS.
    channel         text NOT NULL CHECK (channel IN ('web', 'web_nojs', 'sms')),
    -- Open (poster) links cannot bound contributions per person; releases say so.
    open_link       boolean NOT NULL DEFAULT false,
    received_week   date NOT NULL CHECK (extract(isodow FROM received_week) = 1),
    -- crypto_box_seal output: 32-byte ephemeral key + 16-byte MAC + the padded envelope.
    ciphertext      bytea NOT NULL CHECK (octet_length(ciphertext) BETWEEN 49 AND 65584),
    -- Hash of the optional withdrawal receipt shown once to the survivor.
    receipt_hash    bytea UNIQUE CHECK (octet_length(receipt_hash) = 32),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, survey_id) REFERENCES surveys (organisation_id, id),
    FOREIGN KEY (organisation_id, key_id) REFERENCES collection_keys (organisation_id, id)
);
CREATE INDEX submissions_by_period ON submissions (organisation_id, survey_id, received_week);

-- An SMS conversation in progress, keyed by an HMAC of the phone number under a secret that is
-- not in the database. Each accepted answer is sealed on arrival and appended to fragments.
-- idle_expires_at lets a worker purge idle sessions within minutes.
CREATE TABLE sms_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_hmac      bytea NOT NULL UNIQUE CHECK (octet_length(phone_hmac) = 32),
    organisation_id uuid NOT NULL,
    program_id      uuid NOT NULL,
    survey_id       uuid NOT NULL,
    key_id          uuid NOT NULL,
    invitation_id   uuid REFERENCES invitations (id) ON DELETE SET NULL,
    language        text CHECK (language ~ '^[a-z]{2,3}$'),
    step            integer NOT NULL DEFAULT 0 CHECK (step >= 0),
    retries         integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
    fragments       bytea[] NOT NULL DEFAULT '{}',
    idle_expires_at timestamptz NOT NULL,
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, survey_id) REFERENCES surveys (organisation_id, id),
    FOREIGN KEY (organisation_id, key_id) REFERENCES collection_keys (organisation_id, id)
);
CREATE INDEX sms_sessions_by_expiry ON sms_sessions (idle_expires_at);
