-- Nothing dates an answer (../shared/PRIVACY.md, Metadata; docs/threat-model.md).
--
-- Transaction ids are a clock. An answer not yet mixed keeps the xmin of the transaction that
-- stored it, and any row that pairs a readable time with its own xmin dates every xmin near
-- it: two such rows a minute apart date the answers stored between them to that minute. So no
-- row keeps a readable time finer than the day (collection keys: the week). Times that must
-- stay exact to work are sealed under a server secret that is not in the database
-- (feedback.timeseals): when an account may try a login again, when an SMS conversation goes
-- idle. A staff session's expiry travels in its signed cookie; the row keeps the day, to be
-- deleted by. Where rows of one day need an order (notes, requests, imports), an identity
-- column gives it, as the audit log's id does: an order of staff actions, not a time.

CREATE FUNCTION utc_today() RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (now() AT TIME ZONE 'UTC')::date
$$;

-- Scheduled jobs: one row per job, rewritten with the day it last ran (not once per run and
-- period, each stamped to the second: those dated every answer stored between two runs).
DROP TABLE job_runs;
CREATE TABLE job_runs (
    job     text PRIMARY KEY CHECK (job ~ '^[a-z][a-z0-9-]*$'),
    ran_on  date NOT NULL DEFAULT utc_today(),
    outcome text CHECK (length(outcome) <= 1000)
);
GRANT SELECT, INSERT, UPDATE ON job_runs TO feedback_worker;
-- The worker opens SMS conversations' sealed idle moments with the survivor app's phone
-- HMAC key: like every process that shares a secret, it checks the key's fingerprint.
GRANT SELECT, INSERT ON secret_fingerprints TO feedback_worker;

ALTER TABLE schema_migrations RENAME COLUMN applied_at TO applied_on;
ALTER TABLE schema_migrations
    ALTER COLUMN applied_on TYPE date USING (applied_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN applied_on SET DEFAULT utc_today();

-- Organisations, programs, surveys, users ---------------------------------------------------
ALTER TABLE organisations RENAME COLUMN created_at TO created_on;
ALTER TABLE organisations
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE programs RENAME COLUMN created_at TO created_on;
ALTER TABLE programs
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE surveys RENAME COLUMN created_at TO created_on;
ALTER TABLE surveys
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE users RENAME COLUMN created_at TO created_on;
ALTER TABLE users RENAME COLUMN disabled_at TO disabled_on;
ALTER TABLE users
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today(),
    ALTER COLUMN disabled_on TYPE date USING (disabled_on AT TIME ZONE 'UTC')::date;
-- When the account may be checked again: sealed (a guesser could otherwise write a clock).
ALTER TABLE users DROP COLUMN next_try_at;
ALTER TABLE users ADD COLUMN next_try bytea CHECK (octet_length(next_try) = 48);
DROP FUNCTION login_wait(integer);

-- The audit log: the day (its id keeps the order of the day's entries).
ALTER TABLE audit_log RENAME COLUMN created_at TO created_on;
ALTER TABLE audit_log
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();

-- Staff sessions, devices, links, tokens, failed logins -------------------------------------
ALTER TABLE staff_sessions DROP COLUMN created_at;
ALTER TABLE staff_sessions RENAME COLUMN expires_at TO expires_on;
ALTER TABLE staff_sessions
    ALTER COLUMN expires_on TYPE date USING (expires_on AT TIME ZONE 'UTC')::date;
ALTER TABLE staff_devices RENAME COLUMN expires_at TO expires_on;
ALTER TABLE staff_devices
    ALTER COLUMN expires_on TYPE date USING (expires_on AT TIME ZONE 'UTC')::date;
ALTER TABLE password_links RENAME COLUMN expires_at TO expires_on;
ALTER TABLE password_links RENAME COLUMN used_at TO used_on;
ALTER TABLE password_links
    ALTER COLUMN expires_on TYPE date USING (expires_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN used_on TYPE date USING (used_on AT TIME ZONE 'UTC')::date;
ALTER TABLE api_tokens RENAME COLUMN created_at TO created_on;
ALTER TABLE api_tokens RENAME COLUMN revoked_at TO revoked_on;
ALTER TABLE api_tokens
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today(),
    ALTER COLUMN revoked_on TYPE date USING (revoked_on AT TIME ZONE 'UTC')::date;
-- Failed logins per account and day (they were per hour, on a row rewritten at each failure).
ALTER TABLE login_failures RENAME COLUMN hour TO day;
ALTER TABLE login_failures DROP CONSTRAINT login_failures_hour_check;
ALTER TABLE login_failures DROP CONSTRAINT login_failures_user_id_hour_key;
CREATE TEMPORARY TABLE daily_failures ON COMMIT DROP AS
    SELECT organisation_id, user_id, (day AT TIME ZONE 'UTC')::date AS day,
           sum(attempts)::integer AS attempts
      FROM login_failures GROUP BY 1, 2, 3;
DELETE FROM login_failures;
ALTER TABLE login_failures ALTER COLUMN day TYPE date USING (day AT TIME ZONE 'UTC')::date;
INSERT INTO login_failures (organisation_id, user_id, day, attempts)
SELECT organisation_id, user_id, day, attempts FROM daily_failures;
ALTER TABLE login_failures ADD UNIQUE NULLS NOT DISTINCT (user_id, day);

-- Keys: the week. A collection key's times were microseconds, and the week's answers said
-- which key sealed them: before and after the rotation. Now the week of a rotation is all
-- that is kept, and an answer no longer names its key (the worker tries the keys of its week).
ALTER TABLE collection_keys RENAME COLUMN created_at TO created_week;
ALTER TABLE collection_keys RENAME COLUMN retired_at TO retired_week;
ALTER TABLE collection_keys DROP CONSTRAINT collection_keys_check;
ALTER TABLE collection_keys
    ALTER COLUMN created_week TYPE date
        USING date_trunc('week', created_week AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_week SET DEFAULT current_iso_week(),
    ALTER COLUMN retired_week TYPE date
        USING date_trunc('week', retired_week AT TIME ZONE 'UTC')::date,
    ADD CHECK (extract(isodow FROM created_week) = 1),
    ADD CHECK (extract(isodow FROM retired_week) = 1),
    ADD CHECK (retired_week >= created_week);
ALTER TABLE signing_keys RENAME COLUMN created_at TO created_week;
ALTER TABLE signing_keys RENAME COLUMN retired_at TO retired_week;
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_check;
ALTER TABLE signing_keys
    ALTER COLUMN created_week TYPE date
        USING date_trunc('week', created_week AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_week SET DEFAULT current_iso_week(),
    ALTER COLUMN retired_week TYPE date
        USING date_trunc('week', retired_week AT TIME ZONE 'UTC')::date,
    ADD CHECK (extract(isodow FROM created_week) = 1),
    ADD CHECK (extract(isodow FROM retired_week) = 1),
    ADD CHECK (retired_week >= created_week);

CREATE OR REPLACE FUNCTION refuse_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id
       OR NEW.organisation_id IS DISTINCT FROM OLD.organisation_id
       OR NEW.public_key IS DISTINCT FROM OLD.public_key
       OR (OLD.retired_week IS NOT NULL AND NEW.retired_week IS DISTINCT FROM OLD.retired_week)
    THEN
        RAISE EXCEPTION '% rows may only be retired (or re-wrapped), not changed', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;

ALTER TABLE submissions DROP COLUMN key_id;
ALTER TABLE sms_sessions DROP COLUMN key_id;

-- An SMS conversation goes idle at a moment sealed under a key derived from the phone HMAC
-- key (it was a time rounded to five minutes, on a row a survivor's text rewrote).
ALTER TABLE sms_sessions DROP COLUMN idle_expires_at;
ALTER TABLE sms_sessions ADD COLUMN idle_after bytea NOT NULL CHECK (octet_length(idle_after) = 48);

-- Mixing: a week is mixed once more after it ends, whatever arrived meanwhile, so that its
-- rows' last mix says nothing of when in the week they came.
ALTER TABLE submissions ADD COLUMN week_closed boolean NOT NULL DEFAULT false;
CREATE INDEX submissions_week_open ON submissions (received_week) WHERE NOT week_closed;

-- Invitation batches --------------------------------------------------------------------------
ALTER TABLE invitation_batches RENAME COLUMN created_at TO created_on;
ALTER TABLE invitation_batches RENAME COLUMN expires_at TO expires_on;
ALTER TABLE invitation_batches RENAME COLUMN revoked_at TO revoked_on;
ALTER TABLE invitation_batches
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today(),
    -- A batch works until the end of this day (UTC).
    ALTER COLUMN expires_on TYPE date USING (expires_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN revoked_on TYPE date USING (revoked_on AT TIME ZONE 'UTC')::date,
    ADD COLUMN tokens_issued boolean NOT NULL DEFAULT false;
UPDATE invitation_batches SET tokens_issued = true;
DROP INDEX invitation_batches_by_program;
CREATE INDEX invitation_batches_by_program ON invitation_batches (program_id, created_on);

-- Tokens are issued once, with the batch made for them: the batch says whether they were
-- (the staff role cannot change that column), not the time it was made.
CREATE OR REPLACE FUNCTION issue_invitations(batch uuid, hashes bytea[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE invitation_batches b SET tokens_issued = true
     WHERE b.id = batch AND NOT b.tokens_issued AND b.issued = cardinality(hashes);
    IF NOT FOUND OR EXISTS (SELECT 1 FROM invitations WHERE batch_id = batch) THEN
        RAISE EXCEPTION 'invitations are issued once, with the batch made for them'
            USING ERRCODE = 'restrict_violation';
    END IF;
    INSERT INTO invitations (batch_id, token_hash)
    SELECT batch, hash FROM unnest(hashes) WITH ORDINALITY AS t(hash, ord) ORDER BY ord;
END;
$$;
REVOKE ALL ON FUNCTION issue_invitations(uuid, bytea[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION issue_invitations(uuid, bytea[]) TO feedback_staff;
REVOKE INSERT ON invitation_batches FROM feedback_staff;
GRANT INSERT (organisation_id, program_id, survey_id, kind, medium, issued, expires_on)
    ON invitation_batches TO feedback_staff;

-- Releases, the ledger, notes, funders, publications, plans -----------------------------------
ALTER TABLE releases RENAME COLUMN created_at TO created_on;
ALTER TABLE releases
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE privacy_ledger RENAME COLUMN created_at TO created_on;
ALTER TABLE privacy_ledger
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE release_plans RENAME COLUMN created_at TO created_on;
ALTER TABLE release_plans
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();

ALTER TABLE notes RENAME COLUMN created_at TO created_on;
ALTER TABLE notes RENAME COLUMN withdrawn_at TO withdrawn_on;
ALTER TABLE notes
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today(),
    ALTER COLUMN withdrawn_on TYPE date USING (withdrawn_on AT TIME ZONE 'UTC')::date,
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;

CREATE OR REPLACE FUNCTION refresh_latest_notes(program uuid) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE programs
       SET latest_notes = coalesce((
               SELECT jsonb_agg(texts ORDER BY seq DESC)
                 FROM (
                     SELECT n.seq,
                            (SELECT jsonb_object_agg(t.language, t.body)
                               FROM note_texts t WHERE t.note_id = n.id) AS texts
                       FROM notes n
                      WHERE n.program_id = program AND n.withdrawn_on IS NULL
                      ORDER BY n.seq DESC
                      LIMIT 3
                 ) latest
                WHERE texts IS NOT NULL
           ), '[]')
     WHERE id = program;
$$;

ALTER TABLE funders RENAME COLUMN created_at TO created_on;
ALTER TABLE funders RENAME COLUMN revoked_at TO revoked_on;
ALTER TABLE funders
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today(),
    ALTER COLUMN revoked_on TYPE date USING (revoked_on AT TIME ZONE 'UTC')::date;
CREATE OR REPLACE FUNCTION funders_revocation_is_final() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_on IS NOT NULL AND NEW.revoked_on IS DISTINCT FROM OLD.revoked_on THEN
        RAISE EXCEPTION 'a revoked funder link stays revoked: add the funder again for a new one'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

ALTER TABLE publications RENAME COLUMN created_at TO created_on;
ALTER TABLE publications
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE publication_schedules RENAME COLUMN created_at TO created_on;
ALTER TABLE publication_schedules
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE publication_requests RENAME COLUMN requested_at TO requested_on;
ALTER TABLE publication_requests RENAME COLUMN settled_at TO settled_on;
DROP INDEX publication_requests_open;
ALTER TABLE publication_requests
    ALTER COLUMN requested_on TYPE date USING (requested_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN requested_on SET DEFAULT utc_today(),
    ALTER COLUMN settled_on TYPE date USING (settled_on AT TIME ZONE 'UTC')::date,
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX publication_requests_open ON publication_requests (seq) WHERE settled_on IS NULL;
GRANT UPDATE (settled_on, outcome, publication_id) ON publication_requests TO feedback_worker;

-- Networks ------------------------------------------------------------------------------------
ALTER TABLE networks RENAME COLUMN created_at TO created_on;
ALTER TABLE networks
    ALTER COLUMN created_on TYPE date USING (created_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN created_on SET DEFAULT utc_today();
ALTER TABLE network_members RENAME COLUMN joined_at TO joined_on;
ALTER TABLE network_members RENAME COLUMN left_at TO left_on;
ALTER TABLE network_members
    ALTER COLUMN joined_on TYPE date USING (joined_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN joined_on SET DEFAULT utc_today(),
    ALTER COLUMN left_on TYPE date USING (left_on AT TIME ZONE 'UTC')::date;
ALTER TABLE network_imports RENAME COLUMN imported_at TO imported_on;
ALTER TABLE network_imports
    ALTER COLUMN imported_on TYPE date USING (imported_on AT TIME ZONE 'UTC')::date,
    ALTER COLUMN imported_on SET DEFAULT utc_today(),
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
