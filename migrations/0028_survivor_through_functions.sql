-- The survivor app reads no count that moves with survivors' actions (PRIVACY.md, Metadata and
-- Against differencing). Its role read and deleted the unspent tokens and kept the SMS
-- conversations itself, so `SELECT batch_id, count(*) FROM invitations GROUP BY batch_id` said
-- how many links of each batch were used (which staff are denied by design), count(*) on
-- sms_sessions how many conversations were in progress, and EXPLAIN on either showed their
-- size in its costs: a taken-over survivor app learnt that history.
--
-- Now the role has no privilege on either table. What the survivor app does with them goes
-- through the functions below, which run as the schema's owner (SECURITY DEFINER): each is
-- given the token hash or phone HMAC it is about and answers with that row's facts only. A
-- SECURITY DEFINER function is never inlined into its caller's query, so EXPLAIN of a call
-- shows a function scan, not the tables it reads. Each reads its rows through their unique
-- index, never by a sequential scan (`enable_seqscan = off`): the pages a call reads, which
-- EXPLAIN (ANALYZE, BUFFERS) counts and its time follows, are then the same however many rows
-- the table holds, where the planner would scan a small table whole. The functions of the post
-- path are plpgsql, whose statements keep their plans for the session: PostgreSQL before 18
-- plans a SQL function's statements at every call, which doubled a post's time in the
-- database. The worker keeps its own grants (expiry, the purge of idle conversations, mixing,
-- counting); staff never had these tables.

REVOKE ALL ON invitations, sms_sessions FROM feedback_survivor;
-- Nor does it store or read anything else but through them: a taken-over survivor app cannot
-- insert answers without a token, and reads no batch.
REVOKE INSERT ON submissions FROM feedback_survivor;
REVOKE ALL ON invitation_batches FROM feedback_survivor;

-- Spending a token sets the invitation of any conversation begun with it to NULL (the foreign
-- key's ON DELETE SET NULL): through this index, not a scan of every conversation.
CREATE INDEX sms_sessions_by_invitation ON sms_sessions (invitation_id);

-- A withdrawal finds its submission by receipt the same way, however few rows there are.
ALTER FUNCTION withdraw_submission(bytea) SET enable_seqscan = off;

-- Whether a batch's tokens can take answers now: neither revoked nor expired (open links never
-- expire). A small SQL function, inlined wherever it is used.
CREATE FUNCTION batch_takes_answers(revoked_on date, expires_on date) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT revoked_on IS NULL AND (expires_on IS NULL OR expires_on >= utc_today())
$$;

-- Links ---------------------------------------------------------------------------------------

-- The invitation a token hash names, if it can take answers now, with everything a survey page,
-- a post or an SMS start needs: its kind, program and survey, the program's languages and
-- latest notes, whether comments are on, and the organisation's current key (none: not open
-- yet). Used, expired, revoked and unknown tokens all find nothing.
CREATE FUNCTION invitation_by_token(token bytea, asked text)
    RETURNS TABLE (kind text, organisation_id uuid, program_id uuid, survey_id uuid,
                   languages text[], comments_enabled boolean, key_id uuid, public_key bytea,
                   notes jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 1
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT b.kind, b.organisation_id, b.program_id, b.survey_id,
           p.languages, o.comments_enabled, k.id, k.public_key, p.latest_notes
      FROM invitations i
      JOIN invitation_batches b ON b.id = i.batch_id
      JOIN programs p ON p.id = b.program_id
      JOIN organisations o ON o.id = b.organisation_id
      LEFT JOIN collection_keys k
             ON k.organisation_id = b.organisation_id AND k.retired_week IS NULL
     WHERE i.token_hash = token AND b.medium = asked
       AND batch_takes_answers(b.revoked_on, b.expires_on);
END;
$$;

-- Store one submission through a link (the no-JavaScript post), spending a single-use token
-- (deleting its row) in the same statement; false, and nothing stored, if the token cannot take
-- answers, or was spent meanwhile (a concurrent post of the same token waits on the row lock,
-- then finds it gone). The transaction writes nothing else; the week is the database's.
CREATE FUNCTION store_submission(token bytea, via text, sealed bytea, receipt bytea)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
DECLARE
    stored boolean;
BEGIN
    WITH invitation AS (
        SELECT i.id, b.kind, b.organisation_id, b.program_id, b.survey_id
          FROM invitations i
          JOIN invitation_batches b ON b.id = i.batch_id
         WHERE i.token_hash = token AND b.medium = 'link'
           AND batch_takes_answers(b.revoked_on, b.expires_on)
    ), spent AS (
        DELETE FROM invitations i
         USING invitation v
         WHERE i.id = v.id AND v.kind = 'single'
        RETURNING i.id
    ), storable AS (
        SELECT * FROM invitation v WHERE v.kind = 'open' OR v.id IN (SELECT id FROM spent)
    ), inserted AS (  -- returns nothing: nothing here reads submissions
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel, open_link,
                                 ciphertext, receipt_hash)
        SELECT organisation_id, program_id, survey_id, via, kind = 'open', sealed, receipt
          FROM storable
    )
    SELECT EXISTS (SELECT 1 FROM storable) INTO stored;
    RETURN stored;
END;
$$;

-- Store browser-sealed posts, as many as are given, in one statement (and the caller's one
-- commit): for each post (the arrays' same position), find a link token that can take
-- answers, check that the key is its organisation's current one (after a rotation, a page
-- loaded before it is refused and loads again with the new key), spend a single-use token,
-- insert, and report by position; no row for a post whose token can take no answers. Nothing
-- is stored for a post unless every check passes; within a batch, a single-use token is spent
-- by its first post only, and the others find it spent.
CREATE FUNCTION store_sealed_batch(tokens bytea[], key_ids uuid[], sealed bytea[],
                                   receipts bytea[])
    RETURNS TABLE (ord bigint, stored boolean, key_known boolean, open_link boolean,
                   notes jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT * FROM unnest(tokens, key_ids, sealed, receipts)
                 WITH ORDINALITY AS t(token_hash, key_id, ciphertext, receipt_hash, ord)
    ),
    found AS (
        SELECT input.ord, input.key_id, input.ciphertext, input.receipt_hash,
               i.id, b.kind, b.organisation_id, b.program_id, b.survey_id,
               EXISTS (SELECT 1 FROM collection_keys k
                        WHERE k.id = input.key_id AND k.organisation_id = b.organisation_id
                          AND k.retired_week IS NULL) AS key_known,
               row_number() OVER (PARTITION BY i.id ORDER BY input.ord) AS nth
          FROM input
          JOIN invitations i ON i.token_hash = input.token_hash
          JOIN invitation_batches b ON b.id = i.batch_id AND b.medium = 'link'
         WHERE batch_takes_answers(b.revoked_on, b.expires_on)
    ),
    spent AS (
        DELETE FROM invitations
         USING found f
         WHERE invitations.id = f.id AND f.nth = 1 AND f.kind = 'single' AND f.key_known
        RETURNING invitations.id
    ),
    storable AS (
        SELECT * FROM found f
         WHERE f.key_known
           AND (f.kind = 'open' OR (f.nth = 1 AND f.id IN (SELECT id FROM spent)))
    ),
    inserted AS (  -- returns nothing: nothing here reads submissions
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel,
                                 open_link, ciphertext, receipt_hash)
        SELECT organisation_id, program_id, survey_id, 'web', kind = 'open',
               ciphertext, receipt_hash
          FROM storable
    )
    SELECT f.ord,
           f.ord IN (SELECT ord FROM storable),
           f.key_known, f.kind = 'open', p.latest_notes
      FROM found f
      JOIN programs p ON p.id = f.program_id;
END;
$$;

-- SMS conversations ---------------------------------------------------------------------------
-- Each is found by its number's HMAC (the phone key). The webhook handles a message in one
-- transaction under an advisory lock on the number; sms_conversation locks the row too, until
-- the caller's transaction ends.

-- The number's conversation, locked for this message, with the program's languages and whether
-- it keeps partial answers, the organisation's current key (each answer seals to it), the
-- sealed moment it goes idle and whether it holds partial answers (the app opens the moment:
-- an idle conversation is forgotten, or left for the worker to store if it keeps some).
CREATE FUNCTION sms_conversation(phone bytea)
    RETURNS TABLE (id uuid, organisation_id uuid, program_id uuid, survey_id uuid,
                   public_key bytea, language text, languages text[], step integer,
                   retries integer, fragments bytea[], keep_partial boolean,
                   idle_after bytea, kept boolean)
    LANGUAGE sql SECURITY DEFINER ROWS 1
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
    SELECT s.id, s.organisation_id, s.program_id, s.survey_id, k.public_key, s.language,
           p.languages, s.step, s.retries, s.fragments, p.keep_partial_sms,
           s.idle_after, s.partial IS NOT NULL
      FROM sms_sessions s
      JOIN programs p ON p.id = s.program_id
      JOIN collection_keys k ON k.organisation_id = s.organisation_id
                            AND k.retired_week IS NULL
     WHERE s.phone_hmac = phone
       FOR UPDATE OF s
$$;

-- A new conversation for the SMS code whose hash is given, replacing any earlier one of this
-- number; its id, or NULL, and nothing changed, for a code that can take answers no more.
CREATE FUNCTION sms_start(phone bytea, code bytea, chosen text, idle bytea) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
DECLARE
    invitation record;
    conversation uuid;
BEGIN
    SELECT i.id, b.organisation_id, b.program_id, b.survey_id INTO invitation
      FROM invitations i
      JOIN invitation_batches b ON b.id = i.batch_id
     WHERE i.token_hash = code AND b.medium = 'sms'
       AND batch_takes_answers(b.revoked_on, b.expires_on);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    DELETE FROM sms_sessions WHERE phone_hmac = phone;
    INSERT INTO sms_sessions (phone_hmac, organisation_id, program_id, survey_id, invitation_id,
                              language, idle_after)
    VALUES (phone, invitation.organisation_id, invitation.program_id, invitation.survey_id,
            invitation.id, chosen, idle)
    RETURNING id INTO conversation;
    RETURN conversation;
END;
$$;

-- The conversation's progress after a message: language, question, retries, the answers so far
-- (sealed fragments, and where the program keeps them, a sealed envelope) and its new sealed
-- idle moment.
CREATE FUNCTION sms_save(phone bytea, conversation uuid, language text, step integer,
                         retries integer, fragments bytea[], partial bytea, idle_after bytea)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
    UPDATE sms_sessions s
       SET language = sms_save.language, step = sms_save.step, retries = sms_save.retries,
           fragments = sms_save.fragments, partial = sms_save.partial,
           idle_after = sms_save.idle_after
     WHERE s.phone_hmac = phone AND s.id = conversation;
$$;

-- Forget the number's conversation (STOP, or gone idle), with its sealed answers.
CREATE FUNCTION sms_forget(phone bytea) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
    DELETE FROM sms_sessions WHERE phone_hmac = phone;
$$;

-- End the conversation and store its answers, spending a single-use code (deleting its row), in
-- one statement of the caller's transaction, which writes nothing else; false, and nothing
-- stored, if the code was spent, revoked or expired meanwhile. The conversation ends either way.
CREATE FUNCTION sms_submit(phone bytea, conversation uuid, sealed bytea) RETURNS boolean
    LANGUAGE sql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
    WITH ended AS (
        DELETE FROM sms_sessions s
         WHERE s.phone_hmac = phone AND s.id = conversation
        RETURNING s.organisation_id, s.program_id, s.survey_id, s.invitation_id
    ), invitation AS (
        SELECT i.id, b.kind, e.organisation_id, e.program_id, e.survey_id
          FROM ended e
          JOIN invitations i ON i.id = e.invitation_id
          JOIN invitation_batches b ON b.id = i.batch_id
         WHERE batch_takes_answers(b.revoked_on, b.expires_on)
    ), spent AS (  -- a concurrent spend leaves nothing to delete: nothing is stored
        DELETE FROM invitations i
         USING invitation v
         WHERE i.id = v.id AND v.kind = 'single'
        RETURNING i.id
    ), storable AS (
        SELECT * FROM invitation v WHERE v.kind = 'open' OR v.id IN (SELECT id FROM spent)
    ), inserted AS (  -- returns nothing: nothing here reads submissions
        INSERT INTO submissions (organisation_id, program_id, survey_id, channel, open_link,
                                 ciphertext)
        SELECT organisation_id, program_id, survey_id, 'sms', kind = 'open', sealed
          FROM storable
    )
    SELECT EXISTS (SELECT 1 FROM storable)
$$;

-- The gateway messages the number's ongoing conversation has handled, and its last reply (for a
-- retried or replayed webhook); no row when there is no conversation.
CREATE FUNCTION sms_handled(phone bytea) RETURNS TABLE (handled bytea[], last_reply text)
    LANGUAGE sql STABLE SECURITY DEFINER ROWS 1
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
    SELECT s.handled, s.last_reply FROM sms_sessions s WHERE s.phone_hmac = phone
$$;

-- Keep a message's key (the newest `kept` of them) and its reply as the last one, on the
-- conversation's own row; false when there is no conversation (STOP ended it).
CREATE FUNCTION sms_remember_reply(phone bytea, message bytea, reply text, kept integer)
    RETURNS boolean
    LANGUAGE sql SECURITY DEFINER
    SET search_path = public, pg_temp SET enable_seqscan = off
AS $$
    UPDATE sms_sessions s
       SET handled = (s.handled || message)[greatest(1, cardinality(s.handled) + 2 - kept):],
           last_reply = reply
     WHERE s.phone_hmac = phone
    RETURNING true
$$;

-- Only the survivor app calls them.
REVOKE ALL ON FUNCTION
    invitation_by_token(bytea, text), store_submission(bytea, text, bytea, bytea),
    store_sealed_batch(bytea[], uuid[], bytea[], bytea[]),
    sms_conversation(bytea), sms_start(bytea, bytea, text, bytea),
    sms_save(bytea, uuid, text, integer, integer, bytea[], bytea, bytea), sms_forget(bytea),
    sms_submit(bytea, uuid, bytea), sms_handled(bytea),
    sms_remember_reply(bytea, bytea, text, integer)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    invitation_by_token(bytea, text), store_submission(bytea, text, bytea, bytea),
    store_sealed_batch(bytea[], uuid[], bytea[], bytea[]),
    sms_conversation(bytea), sms_start(bytea, bytea, text, bytea),
    sms_save(bytea, uuid, text, integer, integer, bytea[], bytea, bytea), sms_forget(bytea),
    sms_submit(bytea, uuid, bytea), sms_handled(bytea),
    sms_remember_reply(bytea, bytea, text, integer)
    TO feedback_survivor;

-- refresh_latest_notes runs as its owner (migration 0014) when the notes' triggers call it, and
-- was left callable by every role, the survivor app's included. Only the staff role writes
-- notes.
REVOKE ALL ON FUNCTION refresh_latest_notes(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_latest_notes(uuid) TO feedback_staff;
