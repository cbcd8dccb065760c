-- Staff accounts at work: sessions, login throttling, one-time set-password links and personal
-- access tokens for the API. Staff data only: survivors have no accounts, sessions or cookies.

-- Failed logins per account: after a few, the account is locked for a while. The login answer
-- is the same whether or not the account exists or is locked.
ALTER TABLE users
    ADD COLUMN failed_logins integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    ADD COLUMN locked_until  timestamptz;

-- A session is a random id in a signed cookie; only its SHA-256 is kept, so a copy of this table
-- opens no session. Logging out, or disabling the user, ends it.
CREATE TABLE staff_sessions (
    id_hash         bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
    organisation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    FOREIGN KEY (organisation_id, user_id) REFERENCES users (organisation_id, id) ON DELETE CASCADE
);
CREATE INDEX staff_sessions_by_user ON staff_sessions (user_id);
CREATE INDEX staff_sessions_by_expiry ON staff_sessions (expires_at);

-- "Set your password" links sent to invited users: single use, short-lived, hashed.
CREATE TABLE password_links (
    token_hash      bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    organisation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    FOREIGN KEY (organisation_id, user_id) REFERENCES users (organisation_id, id) ON DELETE CASCADE
);

-- Personal access tokens for the JSON API: shown once, kept hashed, revocable.
CREATE TABLE api_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    token_hash      bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    FOREIGN KEY (organisation_id, user_id) REFERENCES users (organisation_id, id) ON DELETE CASCADE
);
