-- Nothing joinable to a submission (PRIVACY.md, Metadata).
--
-- Invitations are issued in batches, and a batch row is all that staff see of them: what was
-- issued, when it expires, whether it was revoked. The invitations table keeps only unspent
-- tokens: spending a single-use token deletes its row in the statement that stores the
-- submission, so a spent token keeps no week, no program and no position in its batch.
-- Used, expired, revoked and unknown tokens are then alike to anyone who asks.

CREATE TABLE invitation_batches (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL,
    program_id      uuid NOT NULL,
    survey_id       uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('single', 'open')),
    medium          text NOT NULL CHECK (medium IN ('link', 'sms')),
    issued          integer NOT NULL CHECK (issued BETWEEN 1 AND 1000),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'open' OR expires_at IS NOT NULL),
    CHECK (kind = 'single' OR (issued = 1 AND expires_at IS NULL)),
    UNIQUE (organisation_id, id),
    FOREIGN KEY (organisation_id, program_id) REFERENCES programs (organisation_id, id),
    FOREIGN KEY (organisation_id, survey_id) REFERENCES surveys (organisation_id, id)
);
CREATE INDEX invitation_batches_by_program ON invitation_batches (program_id, created_at);

INSERT INTO invitation_batches (id, organisation_id, program_id, survey_id, kind, medium, issued,
                                expires_at, revoked_at, created_at)
SELECT batch_id, organisation_id, program_id, survey_id, 'single', medium, count(*),
       max(expires_at), max(revoked_at), min(created_at)
  FROM invitations
 WHERE kind = 'single' AND batch_id IS NOT NULL
 GROUP BY batch_id, organisation_id, program_id, survey_id, medium;

-- Single-use invitations made one by one (no batch) and open links: a batch of their own.
INSERT INTO invitation_batches (id, organisation_id, program_id, survey_id, kind, medium, issued,
                                expires_at, revoked_at, created_at)
SELECT id, organisation_id, program_id, survey_id, kind, medium, 1,
       CASE WHEN kind = 'single' THEN expires_at END, revoked_at, created_at
  FROM invitations
 WHERE kind = 'open' OR batch_id IS NULL;

ALTER TABLE sms_sessions DROP CONSTRAINT sms_sessions_invitation_id_fkey;
CREATE TEMPORARY TABLE issued_invitations ON COMMIT DROP AS SELECT * FROM invitations;
DROP TABLE invitations;

-- Rows are written in a new table, in random order, so that nothing of the old one's physical
-- order (the order of the QR sheets) or its used_week survives.
CREATE TABLE invitations (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    batch_id   uuid NOT NULL REFERENCES invitation_batches (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32)
);
CREATE INDEX invitations_by_batch ON invitations (batch_id);
INSERT INTO invitations (id, batch_id, token_hash)
SELECT id, coalesce(batch_id, id), token_hash
  FROM issued_invitations
 WHERE used_week IS NULL OR kind = 'open'
 ORDER BY random();

UPDATE sms_sessions SET invitation_id = NULL
 WHERE invitation_id NOT IN (SELECT id FROM invitations);
ALTER TABLE sms_sessions ADD FOREIGN KEY (invitation_id) REFERENCES invitations (id)
    ON DELETE SET NULL;

-- SMS codes were hashed bare until now; from now on they are keyed with a secret that is not
-- in the database, so the old ones cannot be looked up any more. Revoke them, so that no
-- poster code seems alive, and a copy of the database no longer holds them.
UPDATE invitation_batches SET revoked_at = now() WHERE medium = 'sms' AND revoked_at IS NULL;
DELETE FROM invitations i USING invitation_batches b WHERE b.id = i.batch_id AND b.medium = 'sms';

-- Tokens are issued only with the batch that holds them, in the transaction that makes it,
-- and only once: nobody (the staff app's role included) can put a spent token back, or ask
-- the table whether a token is still there.
CREATE FUNCTION issue_invitations(batch uuid, hashes bytea[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM invitation_batches b
                    WHERE b.id = batch AND b.created_at = now()  -- made in this transaction
                      AND b.issued = cardinality(hashes))
       OR EXISTS (SELECT 1 FROM invitations WHERE batch_id = batch) THEN
        RAISE EXCEPTION 'invitations are issued once, with the batch made for them'
            USING ERRCODE = 'restrict_violation';
    END IF;
    INSERT INTO invitations (batch_id, token_hash)
    SELECT batch, hash FROM unnest(hashes) WITH ORDINALITY AS t(hash, ord) ORDER BY ord;
END;
$$;
REVOKE ALL ON FUNCTION issue_invitations(uuid, bytea[]) FROM PUBLIC;

-- A survivor withdraws by receipt only: the survivor app's role may not delete (or read)
-- submissions itself. Deletes the row unless a release counted it. A row the mixing job is
-- moving is looked for again (each statement of a volatile function sees what committed
-- before it); a lock held longer than lock_timeout is an error the caller turns into "try
-- again in a minute".
CREATE FUNCTION withdraw_submission(receipt bytea) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET lock_timeout = '2s' AS $$
DECLARE
    counted boolean;
BEGIN
    FOR attempt IN 1..3 LOOP
        DELETE FROM submissions WHERE receipt_hash = receipt AND NOT included_in_release;
        IF FOUND THEN
            RETURN 'deleted';
        END IF;
        SELECT included_in_release INTO counted FROM submissions WHERE receipt_hash = receipt;
        IF counted THEN
            RETURN 'counted';
        END IF;
    END LOOP;
    RETURN 'unknown';
END;
$$;
REVOKE ALL ON FUNCTION withdraw_submission(bytea) FROM PUBLIC;

-- The ISO week of receipt comes from the database's clock, not from each web host's: every
-- submission of a period that has ended is then already stored when its release is counted.
CREATE FUNCTION current_iso_week() RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT date_trunc('week', now() AT TIME ZONE 'UTC')::date
$$;
ALTER TABLE submissions ALTER COLUMN received_week SET DEFAULT current_iso_week();

-- Mixing: the job `mix-submissions` rewrites every week that holds a row it has not mixed yet,
-- all of that week's rows at once in random order, so that their system columns (xmin, ctid),
-- their physical order and a pg_dump neither order nor date them within the week. A row's
-- "mixed" flag says no more than its xmin already does (that it arrived after the last mix).
ALTER TABLE submissions ADD COLUMN mixed boolean NOT NULL DEFAULT false;
CREATE INDEX submissions_unmixed ON submissions (received_week) WHERE NOT mixed;

-- The old versions that a mix, a spend or an ended SMS conversation leaves behind keep their
-- transaction ids until vacuumed: vacuum these tables after every few changes.
ALTER TABLE submissions SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 0);
ALTER TABLE invitations SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 0);
ALTER TABLE sms_sessions SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 0);

-- Replies kept for retried SMS webhooks lived in their own table, a row per message with its
-- text (so its language) and hour, for a day: rows that dated SMS answers. A conversation now
-- keeps only its last message's key and reply, on its own row, which goes when it ends.
DROP TABLE sms_replies;
ALTER TABLE sms_sessions
    ADD COLUMN last_message bytea CHECK (octet_length(last_message) = 32),
    ADD COLUMN last_reply   text CHECK (length(last_reply) <= 1600);

-- Releases no longer carry the channel mix or the number of quarantined envelopes: both were
-- exact counts (PRIVACY.md, Against differencing). Stored releases are immutable, so readers
-- ignore those keys where old releases still hold them.

-- Secrets that several processes must share (the phone HMAC key, the SMS code key, the
-- session secret) stay out of the database; a fingerprint of each lets a process that was
-- given a different one refuse to start, rather than silently fail to read what the others
-- wrote (an SMS code made on one host that no survivor app can find).
CREATE TABLE secret_fingerprints (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Z_]+$'),
    fingerprint bytea NOT NULL CHECK (octet_length(fingerprint) = 16)
);

-- The privacy unit across programs. By default every program may serve the same survivors, so
-- all releases of an organisation compose. An admin may declare groups of programs that serve
-- different people: programs with the same group name form one group, and groups compose in
-- parallel. A program with no group may share survivors with any program.
ALTER TABLE programs
    ADD COLUMN privacy_group text CHECK (privacy_group ~ '^[a-z0-9][a-z0-9-]{0,39}$');
